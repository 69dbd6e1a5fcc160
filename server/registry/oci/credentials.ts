import { createHash } from 'node:crypto';
import type { IdentityClient, Principal } from '../../identity/principal.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { RobotStore } from './robots.ts';

/**
 * Turns credentials into a Principal: robots are the registry's own, everything else asks the
 * AuthService (password, or an API token used as password, which is how SSO users `docker login`).
 * Positive answers are cached briefly, keyed by a hash of the credentials, so a burst of token
 * requests does not run bcrypt each time.
 */
export class CredentialChecker {
  private readonly identity: IdentityClient;
  private readonly robots: RobotStore;
  private readonly metrics: Metrics;
  private readonly cacheMs: number;
  private readonly cache = new Map<string, { principal: Principal; until: number }>();
  private readonly inFlight = new Map<string, Promise<Principal | null>>();

  constructor(identity: IdentityClient, robots: RobotStore, metrics: Metrics, cacheSeconds: number) {
    this.identity = identity;
    this.robots = robots;
    this.metrics = metrics;
    this.cacheMs = cacheSeconds * 1000;
  }

  async check(username: string, secret: string): Promise<Principal | null> {
    const cacheKey = createHash('sha256').update(username).update('\0').update(secret).digest('base64');
    const cached = this.cache.get(cacheKey);
    if (cached && cached.until > Date.now()) return cached.principal;
    // Concurrent requests with the same credentials (a client's parallel token requests) share one check.
    const pending = this.inFlight.get(cacheKey);
    if (pending) return pending;
    const check = this.verify(username, secret, cacheKey).finally(() => this.inFlight.delete(cacheKey));
    this.inFlight.set(cacheKey, check);
    return check;
  }

  private async verify(username: string, secret: string, cacheKey: string): Promise<Principal | null> {
    const principal = username.includes('+')
      ? await this.robots.verify(username, secret)
      : await this.identity.verifyPassword(username, secret);
    this.metrics.authentication(username.includes('+') ? 'robot' : 'password', principal !== null);
    if (principal && this.cacheMs > 0) {
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(cacheKey, { principal, until: Date.now() + this.cacheMs });
    }
    return principal;
  }

  /** A bearer API token (API v1 programmatic use). */
  async checkToken(token: string): Promise<Principal | null> {
    const principal = await this.identity.verifyToken(token);
    this.metrics.authentication('token', principal !== null);
    return principal;
  }
}

/** Decodes `Authorization: Basic …`; null when absent or malformed. */
export function parseBasic(header: string | undefined): { username: string; password: string } | null {
  if (!header || !/^basic /i.test(header)) return null;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
