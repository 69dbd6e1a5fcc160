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
  /**
   * Token scopes (`publish-new`, `pull`, `crate:serde*`, …; server/identity/scopes.ts); `null` means
   * unrestricted (password, session or unscoped token).
   */
  scopes: string[] | null;
  /** How the credential was checked. */
  via: 'password' | 'token' | 'session' | 'none';
  /** Whether the AuthService considers this principal an administrator. */
  admin: boolean;
  /**
   * The credential this principal stands on, so that anything derived from it later (a refresh
   * token, an API v1 session, a registry JWT) can be checked again against the current user: see
   * IdentityClient.revalidate. Absent for anonymous principals.
   */
  credential?: CredentialRef;
}

/**
 * What re-checks a credential without the secret itself: the user must still exist and be enabled,
 * and a password must not have changed since (`passwordChangedAt` equal), a token must still be
 * listed, a robot's token must still be the same (`tokenDigest`: a prefix of its SHA-256).
 */
export type CredentialRef =
  | { type: 'password'; user: string; passwordChangedAt: string | null }
  | { type: 'token'; user: string; tokenId: string }
  | { type: 'account'; user: string }
  | { type: 'robot'; name: string; tokenDigest: string };

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
  /**
   * The principal as the user is now (groups, admin flag), for a credential checked earlier; null
   * when the user is gone or disabled, the token revoked or expired, or the password changed since.
   * Robot references are the registry's own and are not answered here (null).
   */
  revalidate(credential: CredentialRef, scopes: string[] | null): Promise<Principal | null>;
  userExists(name: string): Promise<boolean>;
  groupExists(name: string): Promise<boolean>;
  /** Every member of a group, members of its metagroups included; `null` when there is no such group. */
  groupMembers(name: string): Promise<string[] | null>;
}

/** A stable text for a credential reference: the key its revalidation is cached under. */
export function credentialKey(credential: CredentialRef): string {
  switch (credential.type) {
    case 'password':
      return `password\0${credential.user}\0${credential.passwordChangedAt ?? ''}`;
    case 'token':
      return `token\0${credential.user}\0${credential.tokenId}`;
    case 'account':
      return `account\0${credential.user}`;
    case 'robot':
      return `robot\0${credential.name}\0${credential.tokenDigest}`;
  }
}
