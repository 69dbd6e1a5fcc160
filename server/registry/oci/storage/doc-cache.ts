import { buffer } from 'node:stream/consumers';
import type { ObjectStore } from '../../../store/object-store.ts';

/**
 * Small-object reads for the hot path (tags, repository records, manifests). Each read costs one
 * `head` (a stat on fs, a HEAD on S3) and the body is re-fetched only when the ETag changed, so the
 * answer is as fresh as an uncached read while repeated reads stay cheap. Bounded in entries and bytes.
 */
export class DocCache {
  private readonly store: ObjectStore;
  private readonly entries = new Map<string, { etag: string; body: Buffer }>();
  private bytes = 0;
  private readonly maxBytes: number;

  constructor(store: ObjectStore, maxBytes = 32 * 1024 * 1024) {
    this.store = store;
    this.maxBytes = maxBytes;
  }

  async read(key: string): Promise<Buffer | null> {
    const info = await this.store.head(key);
    if (!info) {
      this.forget(key);
      return null;
    }
    const cached = this.entries.get(key);
    if (cached && cached.etag === info.etag) {
      // Refresh recency (Map keeps insertion order: oldest first).
      this.entries.delete(key);
      this.entries.set(key, cached);
      return cached.body;
    }
    const object = await this.store.get(key);
    if (!object) {
      this.forget(key);
      return null;
    }
    const body = await buffer(object.body);
    this.forget(key);
    if (body.length <= this.maxBytes / 16) {
      this.entries.set(key, { etag: object.etag, body });
      this.bytes += body.length;
      for (const [oldest, entry] of this.entries) {
        if (this.bytes <= this.maxBytes && this.entries.size <= 100_000) break;
        this.entries.delete(oldest);
        this.bytes -= entry.body.length;
      }
    }
    return body;
  }

  async readJson<T>(key: string): Promise<T | null> {
    const body = await this.read(key);
    return body ? (JSON.parse(body.toString('utf8')) as T) : null;
  }

  forget(key: string): void {
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      this.bytes -= entry.body.length;
    }
  }
}
