import type { RegistryConfig } from '../config/types.ts';
import { PasswordQueueFullError } from '../identity/password-pool.ts';
import type { IdentityClient, Principal } from '../identity/principal.ts';
import { TooManyAttemptsError } from '../identity/rate-limit.ts';
import { sha256Hex } from '../identity/secrets.ts';
import type { Metrics } from '../observability/metrics.ts';

/**
 * The registry's view of a remote AuthService, over its RestAuth API as a RestAuth service (HTTP
 * Basic with `registry.serviceName`/`servicePassword`).
 *
 * Answers, positive and negative, are cached for `registry.credentialCacheSeconds` (default 10):
 * that is the bound on staleness. A token revoked, a password changed or a user deleted on the
 * AuthService is refused by every registry replica at most that many seconds later. Cache keys are
 * SHA-256 digests, so no credential is kept in clear in memory longer than a request.
 */
export function createRemoteIdentityClient(config: RegistryConfig, metrics: Metrics): IdentityClient {
  if (!config.authUrl || !config.serviceName || !config.servicePassword)
    throw new Error('registry.authUrl, registry.serviceName and registry.servicePassword are required');
  return new RemoteIdentityClient(
    config.authUrl,
    config.serviceName,
    config.servicePassword,
    config.credentialCacheSeconds,
    metrics,
  );
}

class RemoteIdentityClient implements IdentityClient {
  private readonly base: string;
  private readonly authorization: string;
  private readonly cacheMs: number;
  private readonly metrics: Metrics;
  private readonly cache = new Map<string, { value: unknown; expiresAt: number }>();

  constructor(
    authUrl: string,
    serviceName: string,
    servicePassword: string,
    cacheSeconds: number,
    metrics: Metrics,
  ) {
    this.base = `${authUrl.replace(/\/+$/, '')}/restauth`;
    this.authorization = `Basic ${Buffer.from(`${serviceName}:${servicePassword}`).toString('base64')}`;
    this.cacheMs = cacheSeconds * 1000;
    this.metrics = metrics;
  }

  async verifyToken(token: string): Promise<Principal | null> {
    const principal = await this.cached(`token:${sha256Hex(token)}`, () => this.verify({ token }));
    this.metrics.authentication('token', principal !== null);
    return principal;
  }

  async verifyPassword(username: string, secret: string, clientAddress?: string): Promise<Principal | null> {
    const key = `password:${sha256Hex(`${username}\0${secret}`)}`;
    const principal = await this.cached(key, () =>
      this.verify({ username, password: secret }, clientAddress),
    );
    this.metrics.authentication('password', principal !== null);
    return principal;
  }

  async userExists(name: string): Promise<boolean> {
    return this.cached(
      `user:${name}`,
      async () => (await this.call('GET', `/users/${encodeURIComponent(name)}`)).ok,
    );
  }

  async groupExists(name: string): Promise<boolean> {
    return this.cached(
      `group:${name}`,
      async () => (await this.call('GET', `/groups/${encodeURIComponent(name)}`)).ok,
    );
  }

  async groupMembers(name: string): Promise<string[] | null> {
    return this.cached(`members:${name}`, async () => {
      const response = await this.call('GET', `/groups/${encodeURIComponent(name)}/users`);
      return response.ok ? ((await response.json()) as string[]) : null;
    });
  }

  private async verify(body: Record<string, string>, clientAddress?: string): Promise<Principal | null> {
    const response = await this.call('POST', '/verify', body, clientAddress);
    if (response.status === 200) return (await response.json()) as Principal;
    if (response.status === 429)
      throw new TooManyAttemptsError(Number(response.headers.get('retry-after')) || 60);
    return null;
  }

  /**
   * Any status other than 2xx/404/429 is the AuthService failing (or misconfigured): an error, not a
   * "no". A 503 with Retry-After is its password queue being full (it checks this service's
   * password too): PasswordQueueFullError, which the registry answers as 503 in its own format.
   */
  private async call(
    method: string,
    path: string,
    body?: unknown,
    clientAddress?: string,
  ): Promise<Response> {
    const response = await fetch(this.base + path, {
      method,
      headers: {
        authorization: this.authorization,
        ...(body ? { 'content-type': 'application/json' } : {}),
        ...(clientAddress ? { 'x-forwarded-for': clientAddress } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(10_000),
    });
    if (response.ok || response.status === 404 || response.status === 429) return response;
    await response.body?.cancel();
    const retryAfter = Number(response.headers.get('retry-after'));
    if (response.status === 503 && retryAfter > 0) throw new PasswordQueueFullError(retryAfter);
    throw new Error(`AuthService answered ${response.status} to ${method} ${path}`);
  }

  private async cached<T>(key: string, load: () => Promise<T>): Promise<T> {
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > now) return hit.value as T;
    const value = await load();
    if (this.cacheMs > 0) {
      if (this.cache.size >= 10_000) this.evict(now);
      this.cache.set(key, { value, expiresAt: now + this.cacheMs });
    }
    return value;
  }

  private evict(now: number): void {
    for (const [key, entry] of this.cache) if (entry.expiresAt <= now) this.cache.delete(key);
    if (this.cache.size >= 10_000) this.cache.clear();
  }
}
