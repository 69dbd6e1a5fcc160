import { buffer } from 'node:stream/consumers';
import type { ObjectStore } from '../../store/object-store.ts';
import { ByteCache } from './byte-cache.ts';
import { type IndexLine, parseIndexFile } from './index-file.ts';

/**
 * Reads of index files and .crate files through bounded in-memory caches. An index file is looked
 * up by its current store ETag (one HEAD per read), so every process sees a new version at once;
 * a .crate key names its checksum, so a cached copy never goes stale.
 */
export class StoredFiles {
  private readonly store: ObjectStore;
  private readonly indexCache = new ByteCache(32 * 1024 * 1024, 1024 * 1024);
  private readonly crateCache = new ByteCache(128 * 1024 * 1024, 16 * 1024 * 1024);

  constructor(store: ObjectStore) {
    this.store = store;
  }

  /** The index file's bytes and ETag, or null when the crate has none. */
  async index(key: string): Promise<{ body: Buffer; etag: string } | null> {
    const info = await this.store.head(key);
    if (!info) return null;
    const cached = this.indexCache.get(`${key}\n${info.etag}`);
    if (cached) return { body: cached, etag: info.etag };
    const object = await this.store.get(key);
    if (!object) return null;
    const body = await buffer(object.body);
    this.indexCache.set(`${key}\n${object.etag}`, body);
    return { body, etag: object.etag };
  }

  async indexLines(key: string): Promise<IndexLine[] | null> {
    const file = await this.index(key);
    return file ? parseIndexFile(file.body.toString('utf8')) : null;
  }

  /** A .crate's bytes (small enough to hold: the publish limit bounds them), or null. */
  async crate(key: string): Promise<Buffer | null> {
    const cached = this.crateCache.get(key);
    if (cached) return cached;
    const object = await this.store.get(key);
    if (!object) return null;
    const body = await buffer(object.body);
    this.crateCache.set(key, body);
    return body;
  }

  rememberCrate(key: string, body: Buffer): void {
    this.crateCache.set(key, body);
  }
}
