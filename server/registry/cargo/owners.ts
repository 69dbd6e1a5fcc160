import type { Principal } from '../../identity/principal.ts';
import { readJson } from '../../store/json-doc.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import { canonicalName } from './names.ts';
import { storeKeys } from './paths.ts';

/** What the registry knows about a crate beyond its index file. */
export interface CrateMeta {
  /** The spelling of the first publish; later publishes must use it exactly. */
  name: string;
  /** User logins and AuthService group names that may publish, yank and change owners. */
  owners: { users: string[]; groups: string[] };
  description: string | null;
  created: string;
  updated: string;
  /** The newest version's links and words (crates.io's crate fields); absent on older crates. */
  homepage?: string | null;
  documentation?: string | null;
  repository?: string | null;
  keywords?: string[];
  categories?: string[];
  /** What each publish kept beyond its index line, by version; absent for earlier publishes. */
  versions?: Record<string, VersionDetails>;
}

/** What crates.io keeps of one publish that the index line does not carry. */
export interface VersionDetails {
  description: string | null;
  homepage: string | null;
  documentation: string | null;
  repository: string | null;
  license: string | null;
  license_file: string | null;
  authors: string[];
  keywords: string[];
  categories: string[];
  /** From the packaged Cargo.toml (the publish JSON has no edition). */
  edition: string | null;
  crate_size: number;
  /** Who published it (a user or robot login). */
  published_by: string | null;
  /** Whether a rendered README is stored (storeKeys.readme). */
  readme: boolean;
}

/** `cargo owner --add group:NAME` names an AuthService group; anything else is a user login. */
export const GROUP_PREFIX = 'group:';

export async function readMeta(store: ObjectStore, name: string): Promise<CrateMeta | null> {
  const doc = await readJson<CrateMeta>(store, storeKeys.meta(canonicalName(name)));
  return doc ? doc.value : null;
}

export function isOwner(meta: CrateMeta, principal: Principal, superusers: readonly string[]): boolean {
  if (principal.admin || superusers.includes(principal.name)) return true;
  if (principal.kind !== 'anonymous' && meta.owners.users.includes(principal.name)) return true;
  return principal.groups.some((group) => meta.owners.groups.includes(group));
}

/** Owners as the Web API lists them: `{id, login, name}`; groups show as `group:NAME`. */
export function listOwners(meta: CrateMeta): { id: number; login: string; name: string | null }[] {
  const logins = [...meta.owners.users, ...meta.owners.groups.map((g) => `${GROUP_PREFIX}${g}`)];
  return logins.map((login, index) => ({ id: index + 1, login, name: login }));
}
