import type { Principal } from '../../identity/principal.ts';
import { updateJson } from '../../store/json-doc.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import { decodeRepository, keys, namespaceOf } from './names.ts';
import { DocCache } from './storage/doc-cache.ts';

export type RepositoryRole = 'read' | 'write' | 'admin';
export type Visibility = 'public' | 'private';

/** A repository's own record: visibility and explicit grants (Quay's model). */
export interface Repository {
  name: string;
  namespace: string;
  visibility: Visibility;
  description: string;
  createdAt: string;
  /** Grants to users and robots (`namespace+robot`), by name. */
  users: Record<string, RepositoryRole>;
  /** Grants to AuthService groups (Quay's teams). */
  teams: Record<string, RepositoryRole>;
}

const RANK: Record<RepositoryRole, number> = { read: 1, write: 2, admin: 3 };

/** Registry actions and the role each needs. `delete` is its own action, granted with write. */
export const ACTION_ROLE: Record<string, RepositoryRole> = {
  pull: 'read',
  push: 'write',
  delete: 'write',
  '*': 'admin',
};

export interface PolicyOptions {
  superusers: string[];
  anonymousPull: boolean;
}

export function isSuperuser(principal: Principal, options: PolicyOptions): boolean {
  return principal.kind === 'user' && (principal.admin || options.superusers.includes(principal.name));
}

/** Whether the principal owns the namespace: its own name, or a group it belongs to. */
export function ownsNamespace(principal: Principal, namespace: string): boolean {
  if (principal.kind !== 'user') return false;
  return principal.name === namespace || principal.groups.includes(namespace);
}

/** The strongest role a principal holds on an existing repository, or null. */
export function roleOn(
  principal: Principal,
  repository: Repository,
  options: PolicyOptions,
): RepositoryRole | null {
  if (isSuperuser(principal, options) || ownsNamespace(principal, repository.namespace)) return 'admin';
  let best: RepositoryRole | null = null;
  const consider = (role: RepositoryRole | undefined) => {
    if (role && (!best || RANK[role] > RANK[best])) best = role;
  };
  if (principal.kind !== 'anonymous') {
    consider(repository.users[principal.name]);
    if (principal.kind === 'user') for (const group of principal.groups) consider(repository.teams[group]);
  }
  if (repository.visibility === 'public' && (principal.kind !== 'anonymous' || options.anonymousPull)) {
    consider('read');
  }
  return best;
}

export function roleAllows(role: RepositoryRole | null, needed: RepositoryRole): boolean {
  return role !== null && RANK[role] >= RANK[needed];
}

/** Actions (of those requested) the principal may perform; `repository` null means it does not exist yet. */
export function permittedActions(
  principal: Principal,
  name: string,
  repository: Repository | null,
  requested: string[],
  options: PolicyOptions,
): string[] {
  if (!repository) {
    // Push-to-create: whoever may create repositories in the namespace gets write on the new one.
    const canCreate = isSuperuser(principal, options) || ownsNamespace(principal, namespaceOf(name));
    return canCreate ? requested.filter((action) => action in ACTION_ROLE) : [];
  }
  const role = roleOn(principal, repository, options);
  return requested.filter((action) => {
    const needed = ACTION_ROLE[action];
    return needed !== undefined && roleAllows(role, needed);
  });
}

/** The repositories' records in the store. */
export class RepositoryStore {
  private readonly store: ObjectStore;
  private readonly cache: DocCache;
  constructor(store: ObjectStore, cache = new DocCache(store)) {
    this.store = store;
    this.cache = cache;
  }

  async get(name: string): Promise<Repository | null> {
    return this.cache.readJson<Repository>(keys.repository(name));
  }

  /** Creates the record if absent (private by default); returns the record either way. */
  async ensure(
    name: string,
    initial: Partial<Pick<Repository, 'visibility' | 'description'>> = {},
  ): Promise<Repository> {
    const result = await updateJson<Repository>(this.store, keys.repository(name), (current) =>
      current
        ? undefined
        : {
            name,
            namespace: namespaceOf(name),
            visibility: initial.visibility ?? 'private',
            description: initial.description ?? '',
            createdAt: new Date().toISOString(),
            users: {},
            teams: {},
          },
    );
    return result as Repository;
  }

  async update(
    name: string,
    change: (repository: Repository) => Repository | undefined,
  ): Promise<Repository | null> {
    return updateJson<Repository>(this.store, keys.repository(name), (current) =>
      current ? change(structuredClone(current)) : undefined,
    );
  }

  /** Every repository name, in key order. */
  async names(): Promise<string[]> {
    const names: string[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await this.store.list({
        prefix: keys.repositoriesPrefix,
        delimiter: '/',
        ...(continuationToken ? { continuationToken } : {}),
      });
      for (const prefix of page.prefixes) {
        names.push(decodeRepository(prefix.slice(keys.repositoriesPrefix.length, -1)));
      }
      continuationToken = page.nextContinuationToken;
    } while (continuationToken);
    return names.sort();
  }

  /** Deletes the record and everything under the repository's prefix (blobs stay until GC). */
  async delete(name: string): Promise<void> {
    const prefix = keys.repositoryPrefix(name);
    let continuationToken: string | undefined;
    do {
      const page = await this.store.list({ prefix, ...(continuationToken ? { continuationToken } : {}) });
      for (const object of page.objects)
        if (object.key !== keys.repository(name)) await this.store.delete(object.key);
      continuationToken = page.nextContinuationToken;
    } while (continuationToken);
    await this.store.delete(keys.repository(name));
  }
}
