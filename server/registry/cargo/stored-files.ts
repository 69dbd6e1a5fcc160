import { buffer } from 'node:stream/consumers';
import type { ObjectStore } from '../../store/object-store.ts';
import { ByteCache } from './byte-cache.ts';
import { type IndexLine, parseIndexFile } from './index-file.ts';

/**
 * Reads of index files and .crate files through bounded in-memory caches. An index file is looked
 * up by its current store ETag; that ETag is asked of the store again after `revalidateMillis`
 * (0: on every read), and at once after this process changed the file, so a publish is visible
 * immediately on the replica that took it and within `revalidateMillis` on the others. A .crate key
 * names its checksum, so a cached copy never goes stale.
 */
export class StoredFiles {
  private readonly store: ObjectStore;
  private readonly revalidateMillis: number;
  private readonly etags = new Map<string, { etag: string | null; checkedAt: number }>();
  private readonly indexCache = new ByteCache(32 * 1024 * 1024, 1024 * 1024);
  private readonly crateCache = new ByteCache(128 * 1024 * 1024, 16 * 1024 * 1024);
  /** `name@version` → index line: a published version's name, version and checksum never change. */
  private readonly published = new Map<string, IndexLine>();
  /** Parsed lines of the most recently read index files, by ETag. */
  private readonly parsed = new Map<string, { etag: string; lines: IndexLine[] }>();

  constructor(store: ObjectStore, { revalidateMillis = 0 }: { revalidateMillis?: number } = {}) {
    this.store = store;
    this.revalidateMillis = revalidateMillis;
  }

  /** The current ETag of an index file (null: no such file), as of at most `revalidateMillis` ago. */
  async indexEtag(key: string): Promise<string | null> {
    const now = Date.now();
    const known = this.etags.get(key);
    if (known && now - known.checkedAt < this.revalidateMillis) return known.etag;
    const info = await this.store.head(key);
    if (this.revalidateMillis > 0) {
      if (this.etags.size >= 100_000) this.etags.clear();
      this.etags.set(key, { etag: info?.etag ?? null, checkedAt: now });
    }
    return info?.etag ?? null;
  }

  /** This process changed an index file: the next read asks the store. */
  forget(key: string): void {
    this.etags.delete(key);
  }

  /** The index file's bytes and ETag, or null when the crate has none. */
  async index(key: string): Promise<{ body: Buffer; etag: string } | null> {
    const etag = await this.indexEtag(key);
    if (!etag) return null;
    const cached = this.indexCache.get(`${key}\n${etag}`);
    if (cached) return { body: cached, etag };
    const object = await this.store.get(key);
    if (!object) {
      this.forget(key);
      return null;
    }
    const body = await buffer(object.body);
    this.indexCache.set(`${key}\n${object.etag}`, body);
    return { body, etag: object.etag };
  }

  /** The index file's lines, parsed once per ETag (shared: callers must not change them). */
  async indexLines(key: string): Promise<IndexLine[] | null> {
    const file = await this.index(key);
    if (!file) return null;
    const known = this.parsed.get(key);
    if (known?.etag === file.etag) return known.lines;
    const lines = parseIndexFile(file.body.toString('utf8'));
    if (this.parsed.size >= 1_000) this.parsed.delete(this.parsed.keys().next().value as string);
    this.parsed.set(key, { etag: file.etag, lines });
    return lines;
  }

  /**
   * The index line of one published version, for downloads: answered from memory once seen, since
   * only `yanked` may change and yanked versions stay downloadable.
   */
  async version(indexKey: string, name: string, version: string): Promise<IndexLine | null> {
    const id = `${name.toLowerCase()}@${version}`;
    const known = this.published.get(id);
    if (known) return known;
    const lines = await this.indexLines(indexKey);
    const line = lines?.find((l) => l.vers === version && l.name.toLowerCase() === name.toLowerCase());
    if (!line) return null;
    if (this.published.size >= 100_000) this.published.clear();
    this.published.set(id, line);
    return line;
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
