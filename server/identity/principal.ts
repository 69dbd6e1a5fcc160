/**
 * Who a request is, as the AuthService answers it. Registries get a Principal from an
 * IdentityClient and decide what it may do; they never read the AuthService's storage.
 */
export interface Principal {
  /** `user` for people (password or OIDC), `robot` for `namespace+name` accounts, `anonymous` otherwise. */
  kind: 'user' | 'robot' | 'anonymous';
  name: string;
  /** Names of the groups the principal belongs to, nested groups already expanded. */
  groups: string[];
  /** Token scopes (`publish-new`, `push`, …); `null` means unrestricted (password or unscoped token). */
  scopes: string[] | null;
  /** How the credential was checked. */
  via: 'password' | 'token' | 'session' | 'none';
  /** Whether the AuthService considers this principal an administrator. */
  admin: boolean;
}

export const ANONYMOUS: Principal = Object.freeze({
  kind: 'anonymous',
  name: '',
  groups: [],
  scopes: null,
  via: 'none',
  admin: false,
}) as Principal;

/** What a registry needs from the AuthService. Implemented in-process and over the RestAuth API. */
export interface IdentityClient {
  /** An API token, as sent by cargo (`Authorization: <token>`) or as a Bearer token. */
  verifyToken(token: string): Promise<Principal | null>;
  /**
   * A username with a password or with one of the user's API tokens (how `docker login` works for
   * SSO users). `clientAddress` is the end user's address, for the AuthService's rate limit.
   * Throws TooManyAttemptsError (server/identity/rate-limit.ts) when that limit refuses the check.
   */
  verifyPassword(username: string, secret: string, clientAddress?: string): Promise<Principal | null>;
  userExists(name: string): Promise<boolean>;
  groupExists(name: string): Promise<boolean>;
  /** Every member of a group, members of its metagroups included; `null` when there is no such group. */
  groupMembers(name: string): Promise<string[] | null>;
}
