import { readJson } from '../../../store/json-doc.ts';
import {
  type GetOptions,
  type GetResult,
  type ObjectStore,
  PreconditionFailedError,
} from '../../../store/object-store.ts';
import { type Digest, decodeRepository, keys } from '../names.ts';
import { DocCache } from './doc-cache.ts';

/** The content-addressed pointer to a blob's bytes; immutable while it exists. */
export interface BlobPointer {
  dataKey: string;
  size: number;
  createdAt: string;
}

/** A repository's link to a blob: it carries the pointer's fields so a blob GET is one read. */
export type BlobLink = BlobPointer;

/**
 * Blobs are stored once (one pointer per digest) and made visible per repository by links. The
 * pointer is created last and only if absent, so readers never see a blob that is not complete and
 * verified, and two pushes of the same content keep one copy.
 */
export class BlobStore {
  private readonly store: ObjectStore;
  private readonly cache: DocCache;
  constructor(store: ObjectStore, cache = new DocCache(store)) {
    this.store = store;
    this.cache = cache;
  }

  async pointer(digest: Digest): Promise<BlobPointer | null> {
    return (await readJson<BlobPointer>(this.store, keys.blob(digest)))?.value ?? null;
  }

  /**
   * Publishes verified bytes under their digest. When the digest already has a pointer the new copy
   * is redundant: it is deleted and the existing pointer wins.
   */
  async commit(digest: Digest, dataKey: string, size: number): Promise<BlobPointer> {
    const pointer: BlobPointer = { dataKey, size, createdAt: new Date().toISOString() };
    try {
      await this.store.put(keys.blob(digest), JSON.stringify(pointer), {
        ifNoneMatch: '*',
        contentType: 'application/json',
      });
      return pointer;
    } catch (error) {
      if (!(error instanceof PreconditionFailedError)) throw error;
      const existing = await this.pointer(digest);
      if (existing && (await this.store.head(existing.dataKey))) {
        if (existing.dataKey !== dataKey) await this.store.delete(dataKey);
        return existing;
      }
      // The old pointer lost its data (a GC in progress): take its place.
      await this.store.put(keys.blob(digest), JSON.stringify(pointer), { contentType: 'application/json' });
      return pointer;
    }
  }

  async link(repository: string, digest: Digest, pointer: BlobPointer): Promise<void> {
    await this.store.put(keys.blobRef(digest, repository), '');
    await this.store.put(keys.link(repository, digest), JSON.stringify(pointer), {
      contentType: 'application/json',
    });
  }

  /**
   * The repository's link to a blob. Served within `registry.oci.metadataCacheMillis` of the store
   * confirming it; `fresh` asks the store now (what a write is about to rely on).
   */
  async linked(
    repository: string,
    digest: Digest,
    options: { fresh?: boolean } = {},
  ): Promise<BlobLink | null> {
    return this.cache.readJson<BlobLink>(keys.link(repository, digest), options);
  }

  async unlink(repository: string, digest: Digest): Promise<boolean> {
    const existed = (await this.store.head(keys.link(repository, digest))) !== null;
    if (existed) await this.store.delete(keys.link(repository, digest));
    await this.store.delete(keys.blobRef(digest, repository));
    return existed;
  }

  /** Repositories that link a blob (at most `limit`). */
  async repositoriesWith(digest: Digest, limit = 50): Promise<string[]> {
    const prefix = keys.blobRefsPrefix(digest);
    const page = await this.store.list({ prefix, maxKeys: limit });
    return page.objects.map((object) => decodeRepository(object.key.slice(prefix.length)));
  }

  async read(link: BlobLink, options: GetOptions = {}): Promise<GetResult | null> {
    return this.store.get(link.dataKey, options);
  }
}
