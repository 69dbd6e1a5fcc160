import { createHash } from 'node:crypto';
import type { IdentityClient, Principal } from '../../identity/principal.ts';

/**
 * Remembers the AuthService's answer for a token for `registry.credentialCacheSeconds` (the bound
 * on revocation delay the configuration documents), so a burst of cargo requests does not ask the
 * AuthService once per request. Tokens are keyed by their SHA-256, never kept in clear.
 */
export class TokenCache implements IdentityClient {
  private readonly identity: IdentityClient;
  private readonly ttlMillis: number;
  private readonly answers = new Map<string, { principal: Principal | null; until: number }>();

  constructor(identity: IdentityClient, ttlSeconds: number) {
    this.identity = identity;
    this.ttlMillis = ttlSeconds * 1000;
  }

  async verifyToken(token: string): Promise<Principal | null> {
    if (this.ttlMillis === 0) return this.identity.verifyToken(token);
    const key = createHash('sha256').update(token).digest('hex');
    const now = Date.now();
    const known = this.answers.get(key);
    if (known && known.until > now) return known.principal;
    const principal = await this.identity.verifyToken(token);
    if (this.answers.size >= 10_000) this.answers.clear();
    // A refusal is remembered briefly only: a token just issued must work almost at once.
    this.answers.set(key, {
      principal,
      until: now + (principal ? this.ttlMillis : Math.min(this.ttlMillis, 1000)),
    });
    return principal;
  }

  verifyPassword(username: string, secret: string, clientAddress?: string): Promise<Principal | null> {
    return this.identity.verifyPassword(username, secret, clientAddress);
  }
  userExists(name: string): Promise<boolean> {
    return this.identity.userExists(name);
  }
  groupExists(name: string): Promise<boolean> {
    return this.identity.groupExists(name);
  }
  groupMembers(name: string): Promise<string[] | null> {
    return this.identity.groupMembers(name);
  }
}
