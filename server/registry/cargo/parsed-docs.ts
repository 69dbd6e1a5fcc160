import { buffer } from 'node:stream/consumers';
import type { ObjectStore } from '../../store/object-store.ts';

/**
 * Parsed small documents by store ETag, for the read API: each read costs one `head` (a stat on
 * fs, a HEAD on S3), and the body is fetched and parsed again only when the ETag changed, so an
 * answer is as fresh as an uncached read while a crate page's six calls parse the crate's metadata
 * once. Values are shared between callers: they must not be changed. Bounded in bytes read.
 */
export class ParsedDocs {
  private readonly store: ObjectStore;
  private readonly maxBytes: number;
  private readonly entries = new Map<string, { etag: string; value: unknown; size: number }>();
  private bytes = 0;

  constructor(store: ObjectStore, { maxBytes = 64 * 1024 * 1024 }: { maxBytes?: number } = {}) {
    this.store = store;
    this.maxBytes = maxBytes;
  }

  async read<T>(key: string, parse: (body: Buffer) => T): Promise<T | null> {
    const info = await this.store.head(key);
    const cached = this.entries.get(key);
    if (!info) {
      if (cached) this.drop(key, cached.size);
      return null;
    }
    if (cached && cached.etag === info.etag) {
      // Most recently used last (a Map keeps insertion order).
      this.entries.delete(key);
      this.entries.set(key, cached);
      return cached.value as T;
    }
    const object = await this.store.get(key);
    if (!object) return null;
    const body = await buffer(object.body);
    const value = parse(body);
    if (cached) this.drop(key, cached.size);
    if (body.length <= this.maxBytes / 16) {
      this.entries.set(key, { etag: object.etag, value, size: body.length });
      this.bytes += body.length;
      for (const [oldest, entry] of this.entries) {
        if (this.bytes <= this.maxBytes && this.entries.size <= 10_000) break;
        this.drop(oldest, entry.size);
      }
    }
    return value;
  }

  private drop(key: string, size: number): void {
    this.entries.delete(key);
    this.bytes -= size;
  }
}

export const parseJson = <T>(body: Buffer): T => JSON.parse(body.toString('utf8')) as T;
