/**
 * API token scopes: which scope allows which operation, on every surface. This table is the only
 * place that says it; server/access/authorize.ts consults it for every decision, and docs/identity.md
 * shows it to people. Credentials without scopes (passwords, sessions, unscoped tokens) may do
 * whatever the account may do; a scoped token may do only what one of its scopes allows here, and
 * never what this table reserves for unrestricted credentials (creating credentials, administration).
 */

/** Scopes of the Cargo registry: crates.io's endpoint scopes, plus `download` for private registries. */
export const CARGO_SCOPES = ['publish-new', 'publish-update', 'yank', 'change-owners', 'download'] as const;
/** Scopes of the OCI registry: Docker's actions, plus `repo-admin` for API v1 management. */
export const OCI_SCOPES = ['pull', 'push', 'delete', 'repo-admin'] as const;
/** Every scope a token may carry (besides `crate:` patterns). */
export const TOKEN_SCOPES = [...CARGO_SCOPES, ...OCI_SCOPES] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

/** Only unrestricted credentials (password, session, token without scopes). */
const UNRESTRICTED = null;

/**
 * Operations and the scopes of which any one allows it; `null`: no scope does. Order and wording
 * are what docs/identity.md shows (test/identity/scopes.test.ts checks the two agree).
 */
export const OPERATIONS = {
  'cargo.read': {
    scopes: CARGO_SCOPES,
    what: 'read a private Cargo registry: config.json, index files, downloads, search, owner lists',
  },
  'cargo.publish-new': { scopes: ['publish-new'], what: 'publish the first version of a crate' },
  'cargo.publish-update': { scopes: ['publish-update'], what: 'publish a new version of an existing crate' },
  'cargo.yank': { scopes: ['yank'], what: 'yank or unyank a version' },
  'cargo.change-owners': { scopes: ['change-owners'], what: 'add or remove crate owners' },
  'oci.pull': {
    scopes: ['pull', 'push'],
    what: 'pull manifests, blobs, tags, referrers; list the catalog; read repositories in API v1',
  },
  'oci.push': {
    scopes: ['push'],
    what: 'push blobs and manifests (creating the repository in an owned namespace)',
  },
  'oci.delete': { scopes: ['delete'], what: 'delete manifests, tags and blobs (/v2/ and API v1)' },
  'oci.manage': {
    scopes: ['repo-admin'],
    what: 'API v1: create repositories, change description and visibility, grant permissions, delete repositories',
  },
  'account.read': { scopes: TOKEN_SCOPES, what: 'who am I (/auth/api/v1/me, API v1 /user/), list my tokens' },
  'account.credentials': {
    scopes: UNRESTRICTED,
    what: 'create or revoke API tokens, create or regenerate robot accounts',
  },
  'account.admin': {
    scopes: UNRESTRICTED,
    what: 'administer users, RestAuth services, superuser API v1 endpoints (an administrator or superuser)',
  },
} as const satisfies Record<string, { scopes: readonly TokenScope[] | null; what: string }>;

export type Operation = keyof typeof OPERATIONS;

/** A crate-name pattern of a crate-scoped token: a crate name, or a prefix ending in `*` (crates.io). */
const CRATE_PATTERN = /^(?:[A-Za-z][A-Za-z0-9_-]{0,63}\*?|\*)$/;
export const CRATE_SCOPE_PREFIX = 'crate:';

export function isCratePattern(pattern: string): boolean {
  return CRATE_PATTERN.test(pattern);
}

/**
 * The scope list a new token is stored with. Crate patterns (`serde*`) limit the Cargo scopes to the
 * crates they match; a token that names crates but no scopes gets every Cargo scope, and only those:
 * it is a Cargo token. Throws a message for anything unknown.
 */
export function tokenScopes(
  scopes: readonly string[] | null,
  cratePatterns: readonly string[] = [],
): string[] | null {
  for (const scope of scopes ?? [])
    if (!(TOKEN_SCOPES as readonly string[]).includes(scope))
      throw new ScopeError(
        `unknown scope ${JSON.stringify(scope)}; known scopes: ${TOKEN_SCOPES.join(', ')}`,
      );
  for (const pattern of cratePatterns)
    if (!isCratePattern(pattern))
      throw new ScopeError(
        `invalid crate scope ${JSON.stringify(pattern)}: a crate name, or a prefix ending in * (e.g. serde*)`,
      );
  if (cratePatterns.length === 0) return scopes === null ? null : [...new Set(scopes)];
  const base = scopes ?? CARGO_SCOPES;
  if (!base.some((scope) => (CARGO_SCOPES as readonly string[]).includes(scope)))
    throw new ScopeError('crate scopes need at least one Cargo scope (publish-new, publish-update, yank, …)');
  return [...new Set([...base, ...cratePatterns.map((pattern) => CRATE_SCOPE_PREFIX + pattern)])];
}

export class ScopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScopeError';
  }
}

/**
 * Why a credential with these scopes may not perform the operation, or null when it may; `crate`
 * for Cargo operations on one crate (crate patterns). `null` scopes: unrestricted.
 */
export function scopeRefusal(
  scopes: readonly string[] | null,
  operation: Operation,
  crate?: string,
): string | null {
  if (scopes === null) return null;
  const { scopes: allowedBy, what } = OPERATIONS[operation] as {
    scopes: readonly string[] | null;
    what: string;
  };
  if (allowedBy === null)
    return `a scoped token may not ${what}: use a password, a session or a token without scopes`;
  if (!scopes.some((scope) => allowedBy.includes(scope)))
    return allowedBy.length === 1
      ? `this token lacks the \`${allowedBy[0]}\` scope (${what})`
      : `this token has none of the scopes ${allowedBy.map((s) => `\`${s}\``).join(', ')} (${what})`;
  if (crate !== undefined && !crateMatches(scopes, crate))
    return `this token is limited to the crates ${cratePatternsOf(scopes).join(', ')}; it may not act on \`${crate}\``;
  return null;
}

export function scopesAllow(scopes: readonly string[] | null, operation: Operation, crate?: string): boolean {
  return scopeRefusal(scopes, operation, crate) === null;
}

/** The crate patterns of a scope list; empty when the token is not limited to some crates. */
export function cratePatternsOf(scopes: readonly string[] | null): string[] {
  return (scopes ?? [])
    .filter((s) => s.startsWith(CRATE_SCOPE_PREFIX))
    .map((s) => s.slice(CRATE_SCOPE_PREFIX.length));
}

function crateMatches(scopes: readonly string[], crate: string): boolean {
  const patterns = cratePatternsOf(scopes);
  if (patterns.length === 0) return true;
  return patterns.some((pattern) =>
    pattern.endsWith('*') ? crate.startsWith(pattern.slice(0, -1)) : crate === pattern,
  );
}
