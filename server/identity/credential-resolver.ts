import { createHash } from 'node:crypto';
import type { Credentials } from '../http/authorization.ts';
import type { Metrics } from '../observability/metrics.ts';
import { type CredentialRef, credentialKey, type IdentityClient, type Principal } from './principal.ts';

/** The registry's own robot accounts (`namespace+name`), checked where they live. */
export interface RobotVerifier {
  /** The robot for a right token (its principal carries a `robot` credential reference). */
  verify(fullName: string, token: string): Promise<Principal | null>;
  /** The robot still exists with the same token. */
  revalidate(credential: Extract<CredentialRef, { type: 'robot' }>): Promise<Principal | null>;
}

interface Cached {
  principal: Principal | null;
  until: number;
}

/** Refusals are remembered this long at most: a token just issued must work almost at once. */
const NEGATIVE_MILLIS = 1000;
const MAX_ENTRIES = 10_000;

/**
 * The one place that turns a credential into a Principal, and the one cache of credential answers.
 *
 * - `basic` (username + password, username + API token, robot + robot token), `token` (an API token
 *   as cargo and Bearer clients send it): checked by the IdentityClient (the AuthService, in this
 *   process or over RestAuth) or the RobotVerifier.
 * - `current` re-checks a principal obtained earlier — from a refresh token, an API v1 session, a
 *   registry JWT — against the user as it is now: gone, disabled, token revoked, password changed
 *   since, admin flag removed. Those credentials are therefore refused, or see their new rights, at
 *   most `cacheSeconds` after the change (`registry.credentialCacheSeconds`).
 *
 * Answers are cached for `cacheSeconds` (refusals for one second), keyed by SHA-256 of the
 * credential, never the credential itself; concurrent checks of one credential share one call.
 * Throttling errors (TooManyAttemptsError) are never cached.
 */
export class CredentialResolver {
  private readonly identity: IdentityClient;
  private readonly robots: RobotVerifier | undefined;
  private readonly metrics: Metrics;
  private readonly cacheMillis: number;
  private readonly cache = new Map<string, Cached>();
  private readonly inFlight = new Map<string, Promise<Principal | null>>();

  constructor(
    identity: IdentityClient,
    options: { cacheSeconds: number; metrics: Metrics; robots?: RobotVerifier },
  ) {
    this.identity = identity;
    this.robots = options.robots;
    this.metrics = options.metrics;
    this.cacheMillis = options.cacheSeconds * 1000;
  }

  /** Whatever an Authorization header carries: Basic or a token. null for none or a wrong one. */
  fromCredentials(credentials: Credentials, clientAddress: string): Promise<Principal | null> {
    if (credentials.type === 'basic')
      return this.basic(credentials.username, credentials.password, clientAddress);
    if (credentials.type === 'token') return this.token(credentials.token);
    return Promise.resolve(null);
  }

  /** A user's password or API token, or a robot's token (`namespace+name`). */
  basic(username: string, secret: string, clientAddress: string): Promise<Principal | null> {
    if (username.length === 0 || username.length > 256 || secret.length > 4096) return Promise.resolve(null);
    return this.cached(digest('basic', username, secret), async () => {
      if (!username.includes('+')) return this.identity.verifyPassword(username, secret, clientAddress);
      const robot = (await this.robots?.verify(username, secret)) ?? null;
      this.metrics.authentication('robot', robot !== null);
      return robot && (await this.ownerActive(robot)) ? robot : null;
    });
  }

  /** An API token (cargo's `Authorization: <token>`, `Bearer <token>` on API v1 and /auth/api/v1). */
  token(token: string): Promise<Principal | null> {
    if (token.length > 4096) return Promise.resolve(null);
    return this.cached(digest('token', token), () => this.identity.verifyToken(token));
  }

  /**
   * The principal as it is now, for one checked earlier: null when its credential no longer holds.
   * Anonymous principals stay anonymous; principals without a credential reference (from before
   * references existed) are refused, so their holders sign in again.
   */
  async current(principal: Principal): Promise<Principal | null> {
    if (principal.kind === 'anonymous') return principal;
    const credential = principal.credential;
    if (!credential) return null;
    const key = `current\0${credentialKey(credential)}\0${principal.scopes?.join(' ') ?? '*'}`;
    return this.cached(key, async () => {
      if (credential.type !== 'robot') return this.identity.revalidate(credential, principal.scopes);
      const robot = (await this.robots?.revalidate(credential)) ?? null;
      return robot && (await this.ownerActive(robot)) ? robot : null;
    });
  }

  /**
   * A robot acts for its namespace: a user's robots stop when that user is disabled or deleted, a
   * group's robots when the group is deleted.
   */
  private async ownerActive(robot: Principal): Promise<boolean> {
    const namespace = robot.name.slice(0, robot.name.indexOf('+'));
    const owner = await this.identity.revalidate({ type: 'account', user: namespace }, null);
    return owner !== null || (await this.identity.groupExists(namespace));
  }

  private async cached(key: string, check: () => Promise<Principal | null>): Promise<Principal | null> {
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.principal;
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const run = check().then((principal) => {
      if (this.cacheMillis > 0) {
        if (this.cache.size >= MAX_ENTRIES) this.sweep(Date.now());
        const ttl = principal ? this.cacheMillis : Math.min(this.cacheMillis, NEGATIVE_MILLIS);
        this.cache.set(key, { principal, until: Date.now() + ttl });
      }
      return principal;
    });
    this.inFlight.set(key, run);
    try {
      return await run;
    } finally {
      this.inFlight.delete(key);
    }
  }

  private sweep(now: number): void {
    for (const [key, entry] of this.cache) if (entry.until <= now) this.cache.delete(key);
    if (this.cache.size >= MAX_ENTRIES) this.cache.clear();
  }
}

function digest(...parts: string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(`${part.length}:`).update(part);
  return hash.digest('base64');
}
