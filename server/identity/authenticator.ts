import type { Metrics } from '../observability/metrics.ts';
import { type AuditSink, Directory, type TokenEntry, type UserRecord } from './directory.ts';
import { normalizeName } from './names.ts';
import type { CredentialRef, IdentityClient, Principal } from './principal.ts';
import { type LoginOrigin, type LoginThrottle, TooManyAttemptsError } from './rate-limit.ts';
import { looksLikeToken } from './secrets.ts';

/**
 * Credential checks shared by every entry point (RestAuth, Ktra, the token API, an in-process
 * registry): throttling of password guesses, the authentication metric, and principals.
 */
export class Authenticator implements IdentityClient {
  readonly directory: Directory;
  private readonly throttle: LoginThrottle;
  private readonly metrics: Metrics;
  private readonly audit: AuditSink;

  constructor(directory: Directory, throttle: LoginThrottle, metrics: Metrics, audit: AuditSink = () => {}) {
    this.directory = directory;
    this.throttle = throttle;
    this.metrics = metrics;
    this.audit = audit;
  }

  /**
   * The user for a right password; throws TooManyAttemptsError when the rate limit refuses the
   * check. `origin` is the end user's address (a string), or where a RestAuth call came from.
   */
  async checkPassword(
    username: string,
    password: string,
    origin: LoginOrigin | string,
  ): Promise<UserRecord | null> {
    const user = normalizeName(username);
    const from = typeof origin === 'string' ? { address: origin } : origin;
    const admission = await this.throttle.admit(user, from);
    if (!admission.allowed) {
      // Refused without a check: counted apart, so failures stay what was actually tried.
      this.metrics.authentications.inc({ method: 'password', result: 'throttled' });
      const { retryAfterSeconds, limit } = admission;
      this.audit('login.throttled', { user, ...from, limit, retryAfterSeconds });
      throw new TooManyAttemptsError(retryAfterSeconds);
    }
    try {
      const record = await this.directory.checkPassword(user, password);
      if (!record) {
        // Failed password checks, with who and from where: what fail2ban-style tooling looks for.
        this.audit('login.failed', { user, ...from });
        await admission.failed();
      }
      this.metrics.authentication('password', record !== null);
      return record;
    } finally {
      admission.end();
    }
  }

  async verifyToken(token: string): Promise<Principal | null> {
    // The groups document does not depend on the token: read it alongside, one round trip saved.
    const groups = this.directory.groups();
    groups.catch(() => {}); // awaited below only for a valid token
    const found = await this.directory.checkToken(token);
    this.metrics.authentication('token', found !== null);
    return found
      ? this.directory.principalFor(found.user, tokenCredential(found), found.entry.scopes, groups)
      : null;
  }

  /**
   * A username with a password, or with one of that user's API tokens (what `docker login` sends
   * for people who sign in through SSO and have no password).
   */
  async verifyPassword(
    username: string,
    secret: string,
    origin: LoginOrigin | string = {},
  ): Promise<Principal | null> {
    if (looksLikeToken(secret)) {
      const found = await this.directory.checkToken(secret);
      const ok = found !== null && found.user.name === normalizeName(username);
      this.metrics.authentication('token', ok);
      return ok ? this.directory.principalFor(found.user, tokenCredential(found), found.entry.scopes) : null;
    }
    const user = await this.checkPassword(username, secret, origin);
    return user ? this.directory.principalFor(user, Directory.passwordCredential(user), null) : null;
  }

  /** Not counted as an authentication: nothing secret is checked, only that nothing was revoked. */
  revalidate(credential: CredentialRef, scopes: string[] | null): Promise<Principal | null> {
    return this.directory.revalidate(credential, scopes);
  }

  async userExists(name: string): Promise<boolean> {
    return (await this.directory.getUser(name)) !== null;
  }

  async groupExists(name: string): Promise<boolean> {
    return (await this.directory.membersOf(name)) !== null;
  }

  async groupMembers(name: string): Promise<string[] | null> {
    return this.directory.membersOf(name);
  }
}

function tokenCredential(found: { user: UserRecord; entry: TokenEntry }): CredentialRef {
  return { type: 'token', user: found.user.name, tokenId: found.entry.id };
}
