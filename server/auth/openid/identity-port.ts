import type { Principal } from '../../identity/principal.ts';

/**
 * What OpenID login needs from the identity domain (users and tokens), and nothing more. The
 * AuthService implements it on its user directory; keeping it this small keeps the OIDC code
 * independent of how users and tokens are stored.
 */
export interface OpenIdIdentityPort {
  /** Whether a wharf account with this name exists (local or federated). */
  userExists(account: string): Promise<boolean>;
  /** Creates a federated account: no password (password login stays off), tokens only. */
  createFederatedUser(account: string): Promise<void>;
  /**
   * Issues the account's Ktra token, revoking the previous one at once: one active Ktra token per
   * user, shared with the password users' `/ktra/api/v1/login`.
   */
  issueKtraToken(account: string): Promise<string>;
  /** Whether this token is the account's active Ktra token (not revoked, not replaced). */
  isActiveKtraToken(account: string, token: string): Promise<boolean>;
  /** Who the account is for authorization (wharf groups, admin), or null when missing or disabled. */
  principalOf(account: string): Promise<Principal | null>;
}
