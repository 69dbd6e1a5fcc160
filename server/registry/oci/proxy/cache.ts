import { createHash, randomUUID } from 'node:crypto';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { readJson } from '../../../store/json-doc.ts';
import type { ObjectStore } from '../../../store/object-store.ts';
import { SingleFlight } from '../../single-flight.ts';
import { OciError } from '../errors.ts';
import { type Digest, keys, parseDigest } from '../names.ts';
import type { OciProxySettings } from '../settings.ts';
import type { PullRecorder } from '../storage/activity.ts';
import type { BlobLink, BlobPointer, BlobStore } from '../storage/blobs.ts';
import { HashingStream } from '../storage/hashing.ts';
import { MANIFEST_TYPES, type ManifestStore, type StoredManifest } from '../storage/manifests.ts';
import { BlobBroadcast } from './broadcast.ts';
import type { ProxyMetrics } from './metrics.ts';
import {
  header,
  MANIFEST_ACCEPT,
  UpstreamError,
  UpstreamRegistry,
  type UpstreamResponse,
} from './upstream.ts';

/** A proxy tag as stored: the digest upstream named, and when upstream was last asked about it. */
interface ProxyTag {
  digest: string;
  checkedAt: number;
}

/** A manifest answer; `warning` is set when it is served stale because upstream failed. */
export interface ProxiedManifest {
  manifest: StoredManifest;
  warning?: string;
}

/**
 * Where a blob answer comes from: the store (`stored`, served like any blob), the bytes streaming
 * in from upstream while it is fetched (`streaming`), or upstream's HEAD (`remote`).
 */
export type ProxiedBlob =
  | { kind: 'stored'; link: BlobLink }
  | { kind: 'streaming'; size: number | undefined; body: Readable }
  | { kind: 'remote'; size: number };

/** One blob being fetched from upstream, shared by the requests for it meanwhile. */
interface BlobFlight {
  /** The repository it is fetched for (and linked into). */
  local: string;
  /** Resolves once upstream answered with the bytes; rejects if it did not. */
  started: Promise<BlobBroadcast>;
  /** Resolves once the blob is verified, committed and linked. */
  done: Promise<void>;
}

export interface ProxyDependencies {
  store: ObjectStore;
  blobs: BlobStore;
  manifests: ManifestStore;
  pulls: PullRecorder;
  metrics: ProxyMetrics;
  logger: Logger;
  maxManifestBytes: number;
  maxBlobBytes: number;
}

/**
 * One pull-through cache: the repositories of a namespace are those of an upstream registry. Content
 * lands in the same stores as pushed images (a layer is stored once whoever brought it). Manifests by
 * tag are revalidated with a HEAD after `manifestTtlSeconds` (Docker Hub does not count HEADs as
 * pulls), by digest they never change. A blob streams to the clients that ask for it while it is
 * written to the store, and becomes visible only once its digest is verified.
 *
 * Concurrent requests for one uncached manifest or blob share one upstream fetch in this process;
 * other replicas fetch on their own (the store keeps one copy: the blob pointer is created once).
 */
export class ProxyCache {
  readonly settings: OciProxySettings;
  readonly upstream: UpstreamRegistry;
  private readonly deps: ProxyDependencies;
  private readonly manifestFlights = new SingleFlight<
    ProxiedManifest & { result: 'miss' | 'revalidated' | 'stale' }
  >();
  private readonly blobFlights = new Map<string, BlobFlight>();
  private readonly patterns: RegExp[];

  constructor(settings: OciProxySettings, deps: ProxyDependencies) {
    this.settings = settings;
    this.deps = deps;
    this.upstream = new UpstreamRegistry(settings, (status) =>
      deps.metrics.upstreamResponses.inc({ proxy: settings.namespace, status }),
    );
    this.patterns = settings.repositories.map(patternToRegExp);
  }

  /**
   * The repository a request names, as stored here and as upstream knows it: `dockerhub/nginx` is
   * `dockerhub/library/nginx` here and `library/nginx` upstream when the proxy has `library`.
   */
  map(name: string): { local: string; upstream: string } {
    let upstream = name.slice(this.settings.namespace.length + 1);
    if (upstream === '') throw new OciError('NAME_INVALID', 'a proxy namespace needs a repository name');
    if (this.settings.library && !upstream.includes('/')) upstream = `library/${upstream}`;
    if (this.patterns.length > 0 && !this.patterns.some((pattern) => pattern.test(upstream)))
      throw new OciError('DENIED', `${upstream} is not among the repositories this proxy may fetch`, {
        detail: { upstream },
      });
    return { local: `${this.settings.namespace}/${upstream}`, upstream };
  }

  async manifest(name: string, reference: string): Promise<ProxiedManifest> {
    const { local, upstream } = this.map(name);
    const digest = parseDigest(reference);
    const count = (result: string) =>
      this.deps.metrics.requests.inc({ proxy: this.settings.namespace, what: 'manifest', result });
    if (digest) {
      const stored = await this.deps.manifests.get(local, digest.text);
      if (stored) {
        count('hit');
        this.deps.pulls.record(local, stored.digest);
        return { manifest: stored };
      }
    }
    const tagState = digest
      ? null
      : (await readJson<ProxyTag>(this.deps.store, keys.proxyTag(local, reference)))?.value;
    const cached = tagState ? await this.deps.manifests.get(local, tagState.digest) : null;
    if (tagState && cached && Date.now() - tagState.checkedAt < this.settings.manifestTtlSeconds * 1000) {
      count('hit');
      this.deps.pulls.record(local, cached.digest);
      return { manifest: cached };
    }
    const answer = await this.manifestFlights
      .run(`${local}:${reference}`, () => this.fetchManifest(local, upstream, reference, digest, cached))
      .catch((error: unknown) => {
        count('miss');
        throw toOciError(error, 'MANIFEST_UNKNOWN');
      });
    count(answer.result);
    this.deps.pulls.record(local, answer.manifest.digest);
    return answer.warning
      ? { manifest: answer.manifest, warning: answer.warning }
      : { manifest: answer.manifest };
  }

  private async fetchManifest(
    local: string,
    upstream: string,
    reference: string,
    digest: Digest | null,
    cached: StoredManifest | null,
  ): Promise<ProxiedManifest & { result: 'miss' | 'revalidated' | 'stale' }> {
    const path = `manifests/${reference}`;
    try {
      if (cached) {
        const head = await this.upstream.fetch('HEAD', upstream, path, { accept: MANIFEST_ACCEPT });
        await head.body.dump().catch(() => {});
        if (head.status === 200 && header(head.headers, 'docker-content-digest') === cached.digest.text) {
          await this.saveTag(local, reference, cached.digest);
          return { manifest: cached, result: 'revalidated' };
        }
        if (head.status !== 200 && head.status !== 404)
          throw new UpstreamError(`the upstream answered ${head.status} to HEAD ${path}`, head.status);
      }
      const response = await this.upstream.fetch('GET', upstream, path, { accept: MANIFEST_ACCEPT });
      if (response.status !== 200) {
        await response.body.dump().catch(() => {});
        throw new UpstreamError(
          `the upstream answered ${response.status} for ${upstream}:${reference}`,
          response.status,
        );
      }
      const manifest = await this.storeManifest(local, reference, digest, response);
      return { manifest, result: 'miss' };
    } catch (error) {
      // A tag upstream no longer has is gone; any other failure serves what is cached (stale).
      if (cached && error instanceof UpstreamError && error.status !== 404) {
        const failure = error;
        const why = failure.status
          ? `upstream answered ${failure.status}`
          : failure.timeout
            ? 'upstream timed out'
            : 'upstream unreachable';
        this.deps.logger.warn(
          { proxy: this.settings.namespace, repository: upstream, reference, err: error },
          'serving a stale manifest',
        );
        return { manifest: cached, warning: `110 wharf "Response is stale: ${why}"`, result: 'stale' };
      }
      throw error;
    }
  }

  private async storeManifest(
    local: string,
    reference: string,
    digest: Digest | null,
    response: UpstreamResponse,
  ): Promise<StoredManifest> {
    const body = await readLimited(response.body, this.deps.maxManifestBytes);
    const contentType = header(response.headers, 'content-type')?.split(';')[0]?.trim() ?? '';
    let mediaType = contentType;
    try {
      const document = JSON.parse(body.toString('utf8')) as { mediaType?: unknown };
      if (typeof document?.mediaType === 'string') mediaType = document.mediaType;
    } catch {
      throw new UpstreamError('the upstream manifest is not JSON', 502);
    }
    if (!MANIFEST_TYPES.has(mediaType))
      throw new OciError(
        'MANIFEST_UNKNOWN',
        `the upstream manifest has an unsupported media type ${JSON.stringify(mediaType)}`,
        { status: 404 },
      );
    const upstreamDigest = parseDigest(header(response.headers, 'docker-content-digest') ?? '');
    const expected = digest ?? upstreamDigest ?? sha256(body);
    if (createHash(expected.algorithm).update(body).digest('hex') !== expected.hex)
      throw new UpstreamError(`the upstream manifest does not match its digest ${expected.text}`, 502);
    await this.deps.manifests.put(
      local,
      digest ? { digest } : { tag: reference, digest: expected },
      body,
      mediaType,
      async () => {},
      { checkReferences: false },
    );
    if (!digest) await this.saveTag(local, reference, expected);
    return { digest: expected, mediaType, size: body.length, body };
  }

  private async saveTag(local: string, tag: string, digest: Digest): Promise<void> {
    const state: ProxyTag = { digest: digest.text, checkedAt: Date.now() };
    await this.deps.store.put(keys.proxyTag(local, tag), JSON.stringify(state), {
      contentType: 'application/json',
    });
  }

  /**
   * A blob of a proxied repository. `mode`: `head` never fetches the bytes; `whole` waits until the
   * blob is stored (range requests); `stream` reads along while the blob is fetched (every client
   * of this repository asking meanwhile, not only the one that started the fetch).
   */
  async blob(name: string, digest: Digest, mode: 'head' | 'whole' | 'stream'): Promise<ProxiedBlob> {
    const { local, upstream } = this.map(name);
    const proxy = this.settings.namespace;
    const stored = await this.storedBlob(local, upstream, digest);
    if (stored) {
      this.deps.metrics.requests.inc({ proxy, what: 'blob', result: 'hit' });
      return stored;
    }
    this.deps.metrics.requests.inc({ proxy, what: 'blob', result: 'miss' });
    if (mode === 'head') {
      const response = await this.upstream.fetch('HEAD', upstream, `blobs/${digest.text}`).catch((error) => {
        throw toOciError(error, 'BLOB_UNKNOWN');
      });
      await response.body.dump().catch(() => {});
      const size = Number(header(response.headers, 'content-length'));
      if (response.status !== 200 || !Number.isSafeInteger(size))
        throw toOciError(
          new UpstreamError(`the upstream answered ${response.status}`, response.status),
          'BLOB_UNKNOWN',
        );
      return { kind: 'remote', size };
    }
    let flight = this.blobFlights.get(digest.text);
    if (!flight) {
      flight = this.fetchBlob(local, upstream, digest);
      this.blobFlights.set(digest.text, flight);
      const started = flight;
      started.done.then(
        () => this.blobFlights.delete(digest.text),
        () => this.blobFlights.delete(digest.text),
      );
    }
    // Readers of the same repository stream along; a request for another repository waits, then
    // is linked only once upstream confirms this repository has the blob (storedBlob below).
    if (mode === 'stream' && flight.local === local) {
      const broadcast = await flight.started.catch((error: unknown) => {
        throw toOciError(error, 'BLOB_UNKNOWN');
      });
      const body = broadcast.reader();
      if (body) return { kind: 'streaming', size: broadcast.size, body };
    }
    await flight.done.catch((error: unknown) => {
      throw toOciError(error, 'BLOB_UNKNOWN');
    });
    // Fetched for this repository (or, by a concurrent request, for another one: confirmed upstream).
    const after = await this.storedBlob(local, upstream, digest);
    if (!after) throw new OciError('BLOB_UNKNOWN', 'blob unknown', { detail: { digest: digest.text } });
    return after;
  }

  /**
   * The blob as this repository holds it; one stored for another repository is linked here once
   * upstream confirms this repository has it (a digest alone must not open other repositories' blobs).
   */
  private async storedBlob(local: string, upstream: string, digest: Digest): Promise<ProxiedBlob | null> {
    const link = await this.deps.blobs.linked(local, digest);
    if (link) return { kind: 'stored', link };
    const pointer = await this.deps.blobs.pointer(digest);
    if (!pointer || !(await this.deps.store.head(pointer.dataKey))) return null;
    const response = await this.upstream.fetch('HEAD', upstream, `blobs/${digest.text}`).catch((error) => {
      throw toOciError(error, 'BLOB_UNKNOWN');
    });
    await response.body.dump().catch(() => {});
    if (response.status !== 200)
      throw toOciError(
        new UpstreamError(`the upstream answered ${response.status}`, response.status),
        'BLOB_UNKNOWN',
      );
    await this.deps.blobs.link(local, digest, pointer);
    return { kind: 'stored', link: pointer };
  }

  /**
   * GETs a blob into the store: hashed while it is written, committed only if the digest (and the
   * announced length) match. `started` resolves once upstream answered, with the broadcast the
   * clients read along from (broadcast.ts); `done` once the blob is committed and linked here.
   */
  private fetchBlob(local: string, upstream: string, digest: Digest): BlobFlight {
    let announce: (broadcast: BlobBroadcast) => void = () => {};
    const started = new Promise<BlobBroadcast>((resolve) => {
      announce = resolve;
    });
    const done = this.fillBlob(local, upstream, digest, announce);
    const flight = { local, started: Promise.race([started, done.then(() => started)]), done };
    // Whoever waits on them learns of a failure; an unread one must not crash the process.
    flight.started.catch(() => {});
    done.catch(() => {});
    return flight;
  }

  private async fillBlob(
    local: string,
    upstream: string,
    digest: Digest,
    announce: (broadcast: BlobBroadcast) => void,
  ): Promise<void> {
    const response = await this.upstream.fetch('GET', upstream, `blobs/${digest.text}`);
    if (response.status !== 200) {
      await response.body.dump().catch(() => {});
      throw new UpstreamError(
        `the upstream answered ${response.status} for blob ${digest.text}`,
        response.status,
      );
    }
    const length = Number(header(response.headers, 'content-length'));
    const size = Number.isSafeInteger(length) && length >= 0 ? length : undefined;
    if (size !== undefined && size > this.deps.maxBlobBytes) {
      await response.body.dump().catch(() => {});
      throw new OciError('SIZE_INVALID', `the upstream blob is larger than ${this.deps.maxBlobBytes} bytes`, {
        status: 413,
      });
    }
    const broadcast = new BlobBroadcast(size);
    announce(broadcast);
    const hashing = new HashingStream(digest.algorithm, this.deps.maxBlobBytes, size);
    const verify = new VerifyingTee(hashing, digest, broadcast);
    const dataKey = keys.uploadData(randomUUID());
    const proxy = this.settings.namespace;
    let pointer: BlobPointer;
    try {
      try {
        const written = this.deps.store.put(dataKey, verify);
        await Promise.all([pipeline(response.body, hashing, verify), written]);
      } catch (error) {
        await this.deps.store.delete(dataKey).catch(() => {});
        throw error instanceof OciError || error instanceof UpstreamError
          ? error
          : new UpstreamError(
              `fetching blob ${digest.text} from upstream failed: ${(error as Error).message}`,
              502,
            );
      } finally {
        this.deps.metrics.upstreamBytes.inc({ proxy }, hashing.bytes);
      }
      pointer = await this.deps.blobs.commit(digest, dataKey, hashing.bytes);
      await this.deps.blobs.link(local, digest, pointer);
    } catch (error) {
      broadcast.fail(error as Error);
      throw error;
    }
    broadcast.commit((offset) => this.readCommitted(pointer, offset));
  }

  /** The committed blob from `offset` on (null: nothing left), for a reader that fell behind. */
  private async readCommitted(pointer: BlobPointer, offset: number): Promise<Readable | null> {
    if (offset >= pointer.size) return null;
    const data = await this.deps.store.get(pointer.dataKey, { range: { start: offset } });
    if (!data) throw new Error(`blob data ${pointer.dataKey} vanished while it was read`);
    return data.body;
  }

  async close(): Promise<void> {
    await this.upstream.close();
  }
}

/**
 * Passes the bytes on to the store and appends them to the broadcast; the stream fails at its end
 * when the digest does not match, so the store write (and every reader) fails with it.
 */
class VerifyingTee extends Transform {
  private readonly hashing: HashingStream;
  private readonly digest: Digest;
  private readonly broadcast: BlobBroadcast;

  constructor(hashing: HashingStream, digest: Digest, broadcast: BlobBroadcast) {
    super({ highWaterMark: 64 * 1024 });
    this.hashing = hashing;
    this.digest = digest;
    this.broadcast = broadcast;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.broadcast.append(chunk);
    const wait = this.broadcast.backpressure();
    if (wait) wait.then(() => callback(null, chunk));
    else callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const actual = this.hashing.hash.digest('hex');
    if (actual !== this.digest.hex) {
      callback(new UpstreamError(`the upstream blob does not match its digest ${this.digest.text}`, 502));
      return;
    }
    callback();
  }
}

/**
 * An upstream failure in the OCI error format, with the upstream's status when it gave one. The
 * upstream refusing the proxy's own credentials (401, 403) is a gateway failure, 502 with the
 * upstream's code: a 401 from wharf would tell the client its wharf credentials are wrong (Docker
 * then asks for a login again), a 403 that wharf denies it. Neither is the client's to fix.
 */
export function toOciError(error: unknown, notFound: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN'): unknown {
  if (!(error instanceof UpstreamError)) return error;
  const status = error.status;
  if (status === 404) return new OciError(notFound, `not found upstream: ${error.message}`);
  if (status === 429)
    return new OciError('TOOMANYREQUESTS', `the upstream registry is rate-limiting: ${error.message}`);
  if (status === 401)
    return new OciError(
      'UNAUTHORIZED',
      `the upstream registry refused this proxy's upstream credentials (its username and password in registry.oci.proxies, not yours): ${error.message}`,
      { status: 502 },
    );
  if (status === 403)
    return new OciError(
      'DENIED',
      `the upstream registry denied this proxy's upstream account access (registry.oci.proxies credentials, not yours): ${error.message}`,
      { status: 502 },
    );
  if (status === null) return new OciError('UNKNOWN', error.message, { status: error.timeout ? 504 : 502 });
  return new OciError('UNKNOWN', error.message, { status: status >= 500 && status < 600 ? status : 502 });
}

/** `*` is one path component, `**` any number of them. */
function patternToRegExp(pattern: string): RegExp {
  const source = pattern
    .split(/(\*\*|\*)/)
    .map((part) =>
      part === '**' ? '.*' : part === '*' ? '[^/]*' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'),
    )
    .join('');
  return new RegExp(`^${source}$`);
}

async function readLimited(body: AsyncIterable<Buffer>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) throw new UpstreamError(`the upstream manifest is larger than ${limit} bytes`, 502);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

function sha256(body: Buffer): Digest {
  const hex = createHash('sha256').update(body).digest('hex');
  return { algorithm: 'sha256', hex, text: `sha256:${hex}` };
}
