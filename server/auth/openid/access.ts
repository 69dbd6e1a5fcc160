import type { OpenIdProviderConfig } from '../../config/types.ts';

/** Who the provider says the user is: the `identity` part of `issuer:identity`, and their groups. */
export interface FederatedUser {
  provider: string;
  subject: string;
  identity: string;
  groups: string[];
}

/** Reads the configured username and groups claims (userinfo first, then the ID token). */
export function federatedUserFrom(
  settings: OpenIdProviderConfig,
  subject: string,
  userinfo: Record<string, unknown>,
  idTokenClaims: Record<string, unknown>,
): FederatedUser | null {
  const identity = userinfo[settings.usernameClaim] ?? idTokenClaims[settings.usernameClaim];
  if (typeof identity !== 'string' || identity.length === 0) return null;
  const rawGroups = userinfo[settings.groupsClaim] ?? idTokenClaims[settings.groupsClaim];
  const groups = Array.isArray(rawGroups)
    ? rawGroups.filter((group): group is string => typeof group === 'string')
    : [];
  return { provider: settings.name, subject, identity, groups };
}

/**
 * Ktra's rule: allowed when listed in authorizedUsers or member of any authorizedGroups; when
 * both lists are empty, everyone is allowed (a warning says so at start-up). Users compare without
 * case (GitLab usernames are case-insensitive); group paths compare exactly.
 */
export function isAuthorized(settings: OpenIdProviderConfig, user: FederatedUser): boolean {
  if (settings.authorizedUsers.length === 0 && settings.authorizedGroups.length === 0) return true;
  const identity = user.identity.toLowerCase();
  if (settings.authorizedUsers.some((allowed) => allowed.toLowerCase() === identity)) return true;
  return user.groups.some((group) => settings.authorizedGroups.includes(group));
}

/** The wharf account of a federated user, or null when the identity cannot be an account name. */
export function accountNameFor(settings: OpenIdProviderConfig, user: FederatedUser): string | null {
  const name = (settings.accountPrefix + user.identity).toLowerCase();
  return /^[a-z0-9][a-z0-9._-]{0,63}$/.test(name) ? name : null;
}
