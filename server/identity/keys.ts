/**
 * Where identity state lives in the object store. Every document is JSON, changed only through
 * updateJson (conditional writes), so two AuthService replicas on one bucket never lose an update.
 *
 *   auth/users/<name>.json         one user: password hash, flags, properties, direct groups, tokens
 *   auth/tokens/<sha256>.json      token lookup: SHA-256 of the token -> owner (the user doc decides)
 *   auth/groups.json               every group with its members and subgroups (one doc: nesting needs
 *                                  the whole graph, and it changes rarely)
 *   auth/service-groups/<name>.json  the groups of one RestAuth service with `groups: own`, same shape
 *   auth/services/<name>.json      RestAuth services managed through the admin API
 *   auth/throttle/<sha256>.json    failed-password counter of one key (account, address, or both) in
 *                                  the current window; swept two windows after its last write
 */
export const USERS_PREFIX = 'auth/users/';
export const TOKENS_PREFIX = 'auth/tokens/';
export const SERVICES_PREFIX = 'auth/services/';
export const THROTTLE_PREFIX = 'auth/throttle/';
export const GROUPS_KEY = 'auth/groups.json';
export const SERVICE_GROUPS_PREFIX = 'auth/service-groups/';

/**
 * A user's document. Registry-style names are their own key; RestAuth-style names (spaces,
 * non-ASCII letters) are percent-encoded, which leaves registry-style names unchanged.
 */
export const userKey = (name: string) => `${USERS_PREFIX}${encodeURIComponent(name)}.json`;
export const userNameOfKey = (key: string) =>
  decodeURIComponent(key.slice(USERS_PREFIX.length, -'.json'.length));
export const serviceGroupsKey = (service: string) => `${SERVICE_GROUPS_PREFIX}${service}.json`;
export const tokenKey = (hash: string) => `${TOKENS_PREFIX}${hash}.json`;
export const serviceKey = (name: string) => `${SERVICES_PREFIX}${name}.json`;
export const throttleKey = (hash: string) => `${THROTTLE_PREFIX}${hash}.json`;
