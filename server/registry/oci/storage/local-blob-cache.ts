import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Counter, Gauge } from 'prom-client';
import type { Metrics } from '../../../observability/metrics.ts';
import { FsObjectStore } from '../../../store/fs-store.ts';
import { type GetResult, listAllObjects, type ObjectStore } from '../../../store/object-store.ts';
import type { Digest } from '../names.ts';
import type { BlobLink } from './blobs.ts';
import { HashingStream } from './hashing.ts';

/** `registry.oci.blobCache`: blob bytes kept on this replica's disk (docs/oci.md, "Local blob cache"). */
export interface BlobCacheSettings {
  /** Where; unset means no cache. */
  directory?: string;
  /** Least recently pulled blobs are dropped beyond this. */
  maxBytes: number;
  /** Smaller blobs (configs, attestations) are not worth a file: they are read from the store. */
  minBlobBytes: number;
}

/** Copies into the cache at the same time; a miss while all are busy is served and not copied. */
const CONCURRENT_FILLS = 2;

/**
 * Blob bytes pulled from S3 kept on this replica's local disk, so the next pulls of a hot layer (a
 * kubelet on every node, CI pulling the same base image) are served at local-file speed without a
 * store request. Blobs are content-addressed, so a copy is never stale: a cached blob is served only
 * after the repository's link to it was found, exactly as one read from the store would be, and the
 * same digest can only ever stand for the same bytes.
 *
 * A miss is served from the store as before; once that response is over, a copy is made in the
 * background (a second read of the store, not the client's stream, so a slow or vanished client
 * costs the copy nothing), its digest verified before it is published by rename. The least recently pulled blobs are dropped
 * beyond `maxBytes`. The files are a cache: nothing is synced, and what a restart finds is used
 * again (a half-written copy never has a name).
 */
export class LocalBlobCache {
  private readonly local: FsObjectStore;
  private readonly source: ObjectStore;
  private readonly settings: BlobCacheSettings;
  private readonly logger: Logger;
  /** Cached blobs by key, least recently used first (a use moves an entry to the end). */
  private readonly entries = new Map<string, number>();
  private bytes = 0;
  /** Bytes of the copies in progress. */
  private reserved = 0;
  private readonly fills = new Map<string, Promise<void>>();
  /** Blobs whose stored bytes did not match their digest: not copied again on every pull. */
  private readonly mismatched = new Set<string>();
  private readonly reads: Counter<'result'>;
  private readonly copies: Counter<'result'>;
  private readonly size: Gauge;

  private constructor(
    local: FsObjectStore,
    source: ObjectStore,
    settings: BlobCacheSettings,
    logger: Logger,
    metrics: Metrics,
  ) {
    this.local = local;
    this.source = source;
    this.settings = settings;
    this.logger = logger;
    this.reads = new Counter({
      name: 'wharf_oci_blob_cache_reads_total',
      help: 'Blob GETs by whether the local blob cache had the bytes (hit) or the store served them (miss)',
      labelNames: ['result'],
      registers: [metrics.registry],
    });
    this.copies = new Counter({
      name: 'wharf_oci_blob_cache_copies_total',
      help: 'Background copies of blobs into the local cache, by result (stored, failed, digest_mismatch)',
      labelNames: ['result'],
      registers: [metrics.registry],
    });
    this.size = new Gauge({
      name: 'wharf_oci_blob_cache_bytes',
      help: 'Bytes of blobs in the local blob cache',
      registers: [metrics.registry],
    });
  }

  /** Opens the cache directory and takes in what an earlier run left there, oldest first. */
  static async open(
    directory: string,
    source: ObjectStore,
    settings: BlobCacheSettings,
    logger: Logger,
    metrics: Metrics,
  ): Promise<LocalBlobCache> {
    const cache = new LocalBlobCache(await FsObjectStore.open(directory), source, settings, logger, metrics);
    const found = await listAllObjects(cache.local, '');
    found.sort((a, b) => a.lastModified.getTime() - b.lastModified.getTime());
    for (const object of found) cache.remember(object.key, object.size);
    await cache.evict();
    return cache;
  }

  /**
   * The blob's bytes (a `range` of them) from local disk, or null when they are not here: then the
   * caller serves them from the store, and after a full read of a big enough blob a copy into the
   * cache starts once `response` is over (so a cold pull does not share the bucket with it).
   */
  async read(
    digest: Digest,
    link: BlobLink,
    range: { start: number; end?: number } | undefined,
    response: Pick<EventEmitter, 'once'>,
  ): Promise<GetResult | null> {
    const key = keyOf(digest);
    const cached = this.entries.get(key);
    let found: GetResult | null = null;
    if (cached === link.size) {
      // A file gone or cut short on disk (someone else's doing) is a miss, never a short answer.
      found = await this.local.get(key, range ? { range } : {}).catch(() => null);
      if (found && found.size !== link.size) {
        found.body.destroy(); // closes the file
        found = null;
      }
    }
    if (found) {
      this.remember(key, link.size); // now the most recently pulled
      this.reads.inc({ result: 'hit' });
      return found;
    }
    if (cached !== undefined) await this.drop(key);
    this.reads.inc({ result: 'miss' });
    if (!range) response.once('close', () => this.copy(digest, link));
    return null;
  }

  private copy(digest: Digest, link: BlobLink): void {
    const key = keyOf(digest);
    if (link.size < this.settings.minBlobBytes) return;
    if (this.fills.has(key) || this.fills.size >= CONCURRENT_FILLS || this.mismatched.has(key)) return;
    // Room is taken before the copy starts, so the directory never holds more than maxBytes,
    // half-written copies included (a volume's size limit can be set just above it).
    if (this.reserved + link.size > this.settings.maxBytes) return;
    this.reserved += link.size;
    const fill = this.copyIn(key, digest, link)
      .catch((error: unknown) => {
        this.copies.inc({ result: 'failed' });
        this.logger.warn({ err: error, digest: digest.text }, 'could not copy a blob into the local cache');
      })
      .finally(() => {
        this.reserved -= link.size;
        this.fills.delete(key);
      });
    this.fills.set(key, fill);
  }

  private async copyIn(key: string, digest: Digest, link: BlobLink): Promise<void> {
    await this.evict();
    const object = await this.source.get(link.dataKey);
    if (!object) return; // deleted meanwhile (GC): nothing to keep
    const hashing = new HashingStream(digest.algorithm, Number.POSITIVE_INFINITY, link.size);
    object.body.on('error', (error) => hashing.destroy(error));
    await this.local.put(key, object.body.pipe(hashing), { contentLength: link.size, durable: false });
    if (hashing.hash.digest('hex') !== digest.hex) {
      // The store holds other bytes than the digest says: serve them as they are, never keep them.
      await this.local.delete(key);
      if (this.mismatched.size >= 10_000) this.mismatched.clear();
      this.mismatched.add(key);
      this.copies.inc({ result: 'digest_mismatch' });
      this.logger.error(
        { digest: digest.text, dataKey: link.dataKey },
        'stored blob does not match its digest',
      );
      return;
    }
    this.remember(key, link.size);
    this.copies.inc({ result: 'stored' });
  }

  private remember(key: string, size: number): void {
    this.bytes -= this.entries.get(key) ?? 0;
    this.entries.delete(key);
    this.entries.set(key, size);
    this.bytes += size;
    this.size.set(this.bytes);
  }

  private async drop(key: string): Promise<void> {
    const size = this.entries.get(key);
    if (size === undefined) return;
    this.entries.delete(key);
    this.bytes -= size;
    this.size.set(this.bytes);
    // A download reading the file keeps its open handle: removing the name does not cut it short.
    await this.local.delete(key);
  }

  /** Drops the least recently pulled blobs until the cached ones and the copies in progress fit. */
  private async evict(): Promise<void> {
    for (const key of this.entries.keys()) {
      if (this.bytes + this.reserved <= this.settings.maxBytes) return;
      await this.drop(key);
    }
  }
}

function keyOf(digest: Digest): string {
  return `${digest.algorithm}/${digest.hex}`;
}
