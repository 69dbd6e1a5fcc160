import type { RegistryConfig } from '../config/types.ts';
import { PasswordQueueFullError } from '../identity/password-pool.ts';
import type { CredentialRef, IdentityClient, Principal } from '../identity/principal.ts';
import { TooManyAttemptsError } from '../identity/rate-limit.ts';

/**
 * The registry's view of a remote AuthService, over its RestAuth API as a RestAuth service (HTTP
 * Basic with `registry.serviceName`/`servicePassword`).
 *
 * Credential answers are not cached here: the registry's CredentialResolver
 * (server/identity/credential-resolver.ts) is the one cache of credentials, bounded by
 * `registry.credentialCacheSeconds`. Existence of users and groups (permission grants, crate owners)
 * is cached here for the same time.
 */
export function createRemoteIdentityClient(config: RegistryConfig): IdentityClient {
  if (!config.authUrl || !config.serviceName || !config.servicePassword)
    throw new Error('registry.authUrl, registry.serviceName and registry.servicePassword are required');
  return new RemoteIdentityClient(
    `${config.authUrl.replace(/\/+$/, '')}${config.authRestAuthPrefix}`,
    config.serviceName,
    config.servicePassword,
    config.credentialCacheSeconds,
  );
}

class RemoteIdentityClient implements IdentityClient {
  private readonly base: string;
  private readonly authorization: string;
  private readonly cacheMs: number;
  private readonly cache = new Map<string, { value: unknown; expiresAt: number }>();

  /** `restAuthUrl`: the AuthService's RestAuth API (authUrl + its path prefix). */
  constructor(restAuthUrl: string, serviceName: string, servicePassword: string, cacheSeconds: number) {
    this.base = restAuthUrl;
    this.authorization = `Basic ${Buffer.from(`${serviceName}:${servicePassword}`).toString('base64')}`;
    this.cacheMs = cacheSeconds * 1000;
  }

  verifyToken(token: string): Promise<Principal | null> {
    return this.verify({ token });
  }

  verifyPassword(username: string, secret: string, clientAddress?: string): Promise<Principal | null> {
    return this.verify({ username, password: secret }, clientAddress);
  }

  /** RestAuth extension: `POST /verify {credential, scopes}` answers the principal as it is now. */
  revalidate(credential: CredentialRef, scopes: string[] | null): Promise<Principal | null> {
    if (credential.type === 'robot') return Promise.resolve(null);
    return this.verify({ credential, scopes });
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

  private async verify(body: Record<string, unknown>, clientAddress?: string): Promise<Principal | null> {
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
