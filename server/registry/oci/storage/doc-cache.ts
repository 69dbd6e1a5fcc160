import { buffer } from 'node:stream/consumers';
import type {
  Body,
  CompletedPart,
  GetOptions,
  GetResult,
  ListOptions,
  ListResult,
  ObjectInfo,
  ObjectStore,
  PutOptions,
  PutResult,
} from '../../../store/object-store.ts';

export interface DocCacheOptions {
  /**
   * How long an entry is served without asking the store (`registry.oci.metadataCacheMillis`),
   * counted from when the request that last confirmed it was sent. 0: every read revalidates.
   */
  freshMillis?: number;
  /** Bound on the bytes held; least recently used entries go first. */
  maxBytes?: number;
}

interface Entry {
  etag: string;
  body: Buffer;
  /** When the request that returned or confirmed this version was sent. */
  confirmedAt: number;
}

const MAX_ENTRIES = 100_000;

/**
 * Small-object reads for the OCI hot path: tags, repository records (their grants decide
 * permissions), manifests, blob links, referrer descriptors.
 *
 * Staleness is bounded: an entry is served from memory for at most `freshMillis` after the store
 * last confirmed it; the next read then revalidates it with one conditional GET (304: same bytes;
 * 200: new ones; 404: gone, and forgotten). So another replica's change (a tag moved, a manifest or
 * link deleted, a repository made private) is seen within `freshMillis`; a change made through this
 * replica's {@link watching} store is seen at once, since every write and delete through it forgets
 * the key. Keys that do not exist are never cached: what another replica pushes is visible at once.
 * Concurrent reads of one key share one request. Content-addressed documents (manifests by digest,
 * links) never change while they exist, so for them only existence is ever stale.
 *
 * Bounded in bytes (LRU) and entries; a document over 1/16 of the bound is not kept.
 */
export class DocCache {
  private readonly store: ObjectStore;
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<Buffer | null>>();
  private bytes = 0;
  private readonly maxBytes: number;
  private readonly freshMillis: number;

  constructor(store: ObjectStore, options: DocCacheOptions = {}) {
    this.store = store;
    this.maxBytes = options.maxBytes ?? 32 * 1024 * 1024;
    this.freshMillis = options.freshMillis ?? 0;
  }

  /**
   * The document, or `null` when it does not exist. `fresh`: revalidated by a request sent after
   * this call began, whatever the bound (for checks a write relies on, such as a manifest's blobs).
   */
  async read(key: string, options: { fresh?: boolean } = {}): Promise<Buffer | null> {
    const cached = this.entries.get(key);
    if (!options.fresh && cached && performance.now() - cached.confirmedAt < this.freshMillis) {
      // Refresh recency (Map keeps insertion order: oldest first).
      this.entries.delete(key);
      this.entries.set(key, cached);
      return cached.body;
    }
    const inFlight = options.fresh ? undefined : this.pending.get(key);
    if (inFlight) return inFlight;
    const loading: Promise<Buffer | null> = this.revalidate(
      key,
      cached,
      () => this.pending.get(key) === loading,
    );
    this.pending.set(key, loading);
    try {
      return await loading;
    } finally {
      if (this.pending.get(key) === loading) this.pending.delete(key);
    }
  }

  async readJson<T>(key: string, options: { fresh?: boolean } = {}): Promise<T | null> {
    const body = await this.read(key, options);
    return body ? (JSON.parse(body.toString('utf8')) as T) : null;
  }

  /** Drops a key, and any revalidation in flight for it: the next read asks the store. */
  forget(key: string): void {
    this.pending.delete(key);
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      this.bytes -= entry.body.length;
    }
  }

  /**
   * The store with this cache watching it: a put, delete or multipart completion through it
   * forgets the key, so the replica that writes never serves what it replaced.
   */
  watching(): ObjectStore {
    return new WatchedStore(this.store, this);
  }

  /** `current()` turns false when a write through this replica forgot the key while the request was out: its answer is then not kept. */
  private async revalidate(
    key: string,
    cached: Entry | undefined,
    current: () => boolean,
  ): Promise<Buffer | null> {
    const sentAt = performance.now();
    const object = await this.store.get(key, cached ? { ifNoneMatch: cached.etag } : {});
    if (!object) {
      if (current()) this.forget(key);
      return null;
    }
    if (object.notModified && cached) {
      if (current() && this.entries.get(key) === cached) cached.confirmedAt = sentAt;
      return cached.body;
    }
    const body = await buffer(object.body);
    if (current()) this.remember(key, { etag: object.etag, body, confirmedAt: sentAt });
    return body;
  }

  private remember(key: string, entry: Entry): void {
    this.forgetEntry(key);
    if (entry.body.length > this.maxBytes / 16) return;
    this.entries.set(key, entry);
    this.bytes += entry.body.length;
    for (const [oldest, old] of this.entries) {
      if (this.bytes <= this.maxBytes && this.entries.size <= MAX_ENTRIES) break;
      this.entries.delete(oldest);
      this.bytes -= old.body.length;
    }
  }

  private forgetEntry(key: string): void {
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      this.bytes -= entry.body.length;
    }
  }
}

/** Passes every call through; writes forget their key on the cache (even when they fail: a timed-out write may have landed). */
class WatchedStore implements ObjectStore {
  private readonly inner: ObjectStore;
  private readonly cache: DocCache;

  constructor(inner: ObjectStore, cache: DocCache) {
    this.inner = inner;
    this.cache = cache;
  }

  get kind(): string {
    return this.inner.kind;
  }

  private async writing<T>(key: string, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } finally {
      this.cache.forget(key);
    }
  }

  put(key: string, body: Body, options?: PutOptions): Promise<PutResult> {
    return this.writing(key, () => this.inner.put(key, body, options));
  }

  delete(key: string): Promise<void> {
    return this.writing(key, () => this.inner.delete(key));
  }

  completeMultipart(key: string, uploadId: string, parts: CompletedPart[]): Promise<PutResult> {
    return this.writing(key, () => this.inner.completeMultipart(key, uploadId, parts));
  }

  get(key: string, options?: GetOptions): Promise<GetResult | null> {
    return this.inner.get(key, options);
  }

  head(key: string): Promise<ObjectInfo | null> {
    return this.inner.head(key);
  }

  list(options?: ListOptions): Promise<ListResult> {
    return this.inner.list(options);
  }

  createMultipart(key: string, options?: { contentType?: string }): Promise<string> {
    return this.inner.createMultipart(key, options);
  }

  uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Body,
    length?: number,
  ): Promise<PutResult> {
    return this.inner.uploadPart(key, uploadId, partNumber, body, length);
  }

  abortMultipart(key: string, uploadId: string): Promise<void> {
    return this.inner.abortMultipart(key, uploadId);
  }

  presignGet(key: string, expiresInSeconds: number): Promise<string | null> {
    return this.inner.presignGet(key, expiresInSeconds);
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
