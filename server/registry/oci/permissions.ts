import { updateJson } from '../../store/json-doc.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import { decodeRepository, keys, namespaceOf } from './names.ts';
import { DocCache } from './storage/doc-cache.ts';

export type RepositoryRole = 'read' | 'write' | 'admin';
export type Visibility = 'public' | 'private';

/**
 * A repository's own record: visibility and explicit grants (Quay's model). Who may do what with it
 * is decided by server/access/policy.ts.
 */
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
