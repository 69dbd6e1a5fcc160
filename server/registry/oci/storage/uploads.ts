import { createHash, type Hash, randomBytes, randomUUID } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { readJson } from '../../../store/json-doc.ts';
import {
  type CompletedPart,
  MAX_PARTS,
  MIN_PART_SIZE,
  type ObjectStore,
  PreconditionFailedError,
} from '../../../store/object-store.ts';
import { OciError } from '../errors.ts';
import { type Digest, keys } from '../names.ts';
import type { BlobPointer, BlobStore } from './blobs.ts';
import { BlobTooLargeError, HashingStream, LengthMismatchError, STREAM_CHUNK } from './hashing.ts';

/**
 * An upload session as stored (`oci/uploads/<id>.json`), so any replica can continue it.
 *
 * Bytes received so far live in two places: complete multipart parts (each exactly `partSize`,
 * S3's ≥ 5 MiB rule) and one `pending` object holding the tail that does not fill a part yet.
 * A single streamed PATCH (what docker and skopeo send) therefore becomes one pending object that
 * completion publishes as the blob without any copy; only chunked uploads go through multipart.
 */
export interface UploadState {
  id: string;
  repository: string;
  createdAt: string;
  updatedAt: string;
  offset: number;
  partSize: number;
  multipartId?: string;
  parts: (CompletedPart & { size: number })[];
  pending?: { key: string; size: number };
}

/** The running SHA-256 of an upload, valid while `offset` matches the stored state. */
interface LiveHash {
  hash: Hash;
  offset: number;
}

export interface UploadLimits {
  maxBlobBytes: number;
}

/** Counts the upload requests in progress (a prom-client Gauge in the server). */
export interface InFlightGauge {
  inc(): void;
  dec(): void;
}

/**
 * Upload sessions. The SHA-256 state is kept in this process only (Node's Hash cannot be exported):
 * when a session continues on another replica or after a restart, the digest is verified at
 * completion by reading the assembled blob back once. Correctness never depends on the cache.
 */
export class UploadManager {
  private readonly store: ObjectStore;
  private readonly blobs: BlobStore;
  private readonly limits: UploadLimits;
  private readonly hashes = new Map<string, LiveHash>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly inFlight: InFlightGauge | undefined;
  readonly partSize: number;

  constructor(store: ObjectStore, blobs: BlobStore, limits: UploadLimits, inFlight?: InFlightGauge) {
    this.store = store;
    this.blobs = blobs;
    this.limits = limits;
    this.inFlight = inFlight;
    const forLimit = Math.ceil(limits.maxBlobBytes / (MAX_PARTS - 1) / (1024 * 1024)) * 1024 * 1024;
    this.partSize = Math.max(8 * 1024 * 1024, MIN_PART_SIZE, forLimit);
  }

  async start(repository: string): Promise<UploadState> {
    const now = new Date().toISOString();
    const state: UploadState = {
      id: randomUUID(),
      repository,
      createdAt: now,
      updatedAt: now,
      offset: 0,
      partSize: this.partSize,
      parts: [],
    };
    await this.store.put(keys.upload(state.id), JSON.stringify(state), {
      ifNoneMatch: '*',
      contentType: 'application/json',
      durable: false, // see save()
    });
    this.hashes.set(state.id, { hash: createHash('sha256'), offset: 0 });
    return state;
  }

  async state(repository: string, id: string): Promise<{ value: UploadState; etag: string }> {
    // A session document cut short by a power cut (it is written without fsync) reads as unknown.
    const doc = /^[0-9a-f-]{36}$/.test(id)
      ? await readJson<UploadState>(this.store, keys.upload(id)).catch((error: unknown) => {
          if (error instanceof SyntaxError) return null;
          throw error;
        })
      : null;
    if (!doc || doc.value.repository !== repository) {
      throw new OciError('BLOB_UPLOAD_UNKNOWN', 'upload unknown');
    }
    return doc;
  }

  /**
   * Appends a request body; `start` (from Content-Range) must equal the current offset, and the
   * body must be exactly `expected` bytes when the range gives it (else nothing is recorded).
   */
  append(
    repository: string,
    id: string,
    body: Readable,
    start?: number,
    length?: number,
    expected?: number,
  ): Promise<UploadState> {
    return this.serialized(id, async () => {
      const doc = await this.state(repository, id);
      const state = doc.value;
      if (start !== undefined && start !== state.offset) {
        body.resume();
        throw rangeError(state);
      }
      // Only explicit chunks (Content-Range) become parts; a lone streamed PATCH stays one object.
      await this.write(state, body, false, start === undefined ? undefined : length, expected);
      await this.save(state, doc.etag);
      return state;
    });
  }

  /** Finishes an upload with an optional last body, verifies the digest, and publishes the blob. */
  complete(
    repository: string,
    id: string,
    digest: Digest,
    body: Readable | null,
    length?: number,
    expected?: number,
  ): Promise<BlobPointer> {
    return this.serialized(id, async () => {
      const doc = await this.state(repository, id);
      const state = doc.value;
      if (body) await this.write(state, body, true, length, expected);
      const dataKey = await this.assemble(state);
      const live = this.hashes.get(id);
      let actual: string;
      if (digest.algorithm === 'sha256' && live && live.offset === state.offset) {
        actual = live.hash.digest('hex');
      } else {
        actual = await this.rehash(dataKey, digest.algorithm);
      }
      this.hashes.delete(id);
      await this.store.delete(keys.upload(id));
      if (actual !== digest.hex) {
        await this.store.delete(dataKey);
        throw new OciError('DIGEST_INVALID', 'provided digest did not match uploaded content');
      }
      return this.blobs.commit(digest, dataKey, state.offset);
    });
  }

  /** POST ?digest= (or PUT on a fresh session): the body streams straight into its final object. */
  async monolithic(digest: Digest, body: Readable): Promise<BlobPointer> {
    this.inFlight?.inc();
    try {
      return await this.monolithicUpload(digest, body);
    } finally {
      this.inFlight?.dec();
    }
  }

  private async monolithicUpload(digest: Digest, body: Readable): Promise<BlobPointer> {
    const dataKey = keys.uploadData(randomUUID());
    const hashing = new HashingStream(digest.algorithm, this.limits.maxBlobBytes);
    try {
      await this.store.put(dataKey, pipeTo(body, hashing));
    } catch (error) {
      await this.store.delete(dataKey);
      throw translate(error);
    }
    if (hashing.hash.digest('hex') !== digest.hex) {
      await this.store.delete(dataKey);
      throw new OciError('DIGEST_INVALID', 'provided digest did not match uploaded content');
    }
    return this.blobs.commit(digest, dataKey, hashing.bytes);
  }

  async cancel(repository: string, id: string): Promise<void> {
    const { value: state } = await this.state(repository, id);
    await this.discard(state);
  }

  /** Removes a session and everything it wrote (also used by the expiry sweep). */
  async discard(state: UploadState): Promise<void> {
    this.hashes.delete(state.id);
    if (state.multipartId)
      await this.store.abortMultipart(keys.uploadData(state.id), state.multipartId).catch(() => {});
    if (state.pending) await this.store.delete(state.pending.key);
    await this.store.delete(keys.upload(state.id));
  }

  /**
   * Streams `body` into the session: straight into a new pending object when nothing is pending
   * and no part exists yet, otherwise through part-sized buffers (at most one part in memory).
   */
  private async write(
    state: UploadState,
    body: Readable,
    final: boolean,
    length?: number,
    expected?: number,
  ): Promise<void> {
    const live = this.hashes.get(state.id);
    const limit = this.limits.maxBlobBytes - state.offset;
    const hashing =
      live && live.offset === state.offset
        ? new HashingStream(live.hash, limit, expected)
        : new HashingStream('sha256', limit, expected);
    if (!(live && live.offset === state.offset)) this.hashes.delete(state.id);
    const source = pipeTo(body, hashing);
    try {
      const partSized = length !== undefined && length > 0 && (final || length >= MIN_PART_SIZE);
      if (!state.pending && partSized && (state.parts.length > 0 || !final)) {
        // A chunk of known length that S3 would take as a part: stream it straight in, unbuffered.
        const dataKey = keys.uploadData(state.id);
        state.multipartId ??= await this.store.createMultipart(dataKey);
        const partNumber = state.parts.length + 1;
        if (partNumber > MAX_PARTS) throw new OciError('SIZE_INVALID', 'too many chunks', { status: 416 });
        const { etag } = await this.store.uploadPart(dataKey, state.multipartId, partNumber, source, length);
        state.parts.push({ partNumber, etag, size: length });
      } else if (!state.pending && state.parts.length === 0) {
        const key = keys.uploadPending(state.id, randomBytes(6).toString('hex'));
        await this.store.put(key, source);
        if (hashing.bytes > 0) state.pending = { key, size: hashing.bytes };
        else await this.store.delete(key);
      } else {
        await this.writeParts(state, source, final);
      }
    } catch (error) {
      this.hashes.delete(state.id);
      throw translate(error);
    }
    state.offset += hashing.bytes;
    if (live && live.offset + hashing.bytes === state.offset) live.offset = state.offset;
  }

  private async writeParts(state: UploadState, source: Readable, final: boolean): Promise<void> {
    const dataKey = keys.uploadData(state.id);
    state.multipartId ??= await this.store.createMultipart(dataKey);
    const previous = state.pending;
    let buffered: Buffer[] = [];
    let bufferedBytes = 0;
    const flushPart = async (part: Buffer) => {
      const partNumber = state.parts.length + 1;
      const { etag } = await this.store.uploadPart(
        dataKey,
        state.multipartId as string,
        partNumber,
        part,
        part.length,
      );
      state.parts.push({ partNumber, etag, size: part.length });
    };
    const consume = async (stream: Readable) => {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        buffered.push(chunk);
        bufferedBytes += chunk.length;
        while (bufferedBytes >= state.partSize) {
          const all = Buffer.concat(buffered, bufferedBytes);
          await flushPart(all.subarray(0, state.partSize));
          const rest = all.subarray(state.partSize);
          buffered = rest.length ? [rest] : [];
          bufferedBytes = rest.length;
        }
      }
    };
    if (previous) {
      const object = await this.store.get(previous.key);
      if (!object) throw new OciError('BLOB_UPLOAD_UNKNOWN', 'upload data is gone');
      await consume(object.body);
    }
    await consume(source);
    const tail = Buffer.concat(buffered, bufferedBytes);
    delete state.pending;
    if (tail.length > 0) {
      if (final) {
        await flushPart(tail);
      } else {
        const key = keys.uploadPending(state.id, randomBytes(6).toString('hex'));
        await this.store.put(key, tail);
        state.pending = { key, size: tail.length };
      }
    }
    if (previous) await this.store.delete(previous.key);
  }

  /** Turns the session's bytes into one object and returns its key. */
  private async assemble(state: UploadState): Promise<string> {
    if (state.parts.length === 0) {
      if (state.pending) return state.pending.key;
      const key = keys.uploadData(state.id);
      await this.store.put(key, Buffer.alloc(0));
      return key;
    }
    if (state.pending) await this.writeParts(state, emptyStream(), true);
    const key = keys.uploadData(state.id);
    await this.store.completeMultipart(
      key,
      state.multipartId as string,
      state.parts.map(({ partNumber, etag }) => ({ partNumber, etag })),
    );
    return key;
  }

  private async rehash(key: string, algorithm: Digest['algorithm']): Promise<string> {
    const object = await this.store.get(key);
    if (!object) throw new OciError('BLOB_UPLOAD_UNKNOWN', 'upload data is gone');
    const hash = createHash(algorithm);
    for await (const chunk of object.body as AsyncIterable<Buffer>) hash.update(chunk);
    return hash.digest('hex');
  }

  private async save(state: UploadState, etag: string): Promise<void> {
    state.updatedAt = new Date().toISOString();
    try {
      // Not fsynced: waiting for it would also wait for the flush of the chunk just appended
      // (ext4 commits them together). A power cut that undoes it fails the upload (416 or unknown
      // session) and the client starts again; the bytes are verified at completion either way.
      await this.store.put(keys.upload(state.id), JSON.stringify(state), {
        ifMatch: etag,
        contentType: 'application/json',
        durable: false,
      });
    } catch (error) {
      // Another replica appended concurrently: this request's bytes are orphaned (GC removes them).
      if (error instanceof PreconditionFailedError) throw rangeError(state);
      throw error;
    }
  }

  /** Runs one request's work on a session after the previous one; appends and completions count as in flight. */
  private async serialized<T>(id: string, work: () => Promise<T>): Promise<T> {
    this.inFlight?.inc();
    const previous = this.locks.get(id) ?? Promise.resolve();
    const run = previous.then(work, work);
    const settled = run.catch(() => {});
    this.locks.set(id, settled);
    settled.then(() => {
      if (this.locks.get(id) === settled) this.locks.delete(id);
    });
    try {
      return await run;
    } finally {
      this.inFlight?.dec();
    }
  }
}

function rangeError(state: UploadState): OciError {
  return new OciError('BLOB_UPLOAD_INVALID', 'chunk out of order', {
    status: 416,
    headers: { Range: `0-${Math.max(0, state.offset - 1)}`, 'Docker-Upload-UUID': state.id },
  });
}

function translate(error: unknown): unknown {
  if (error instanceof BlobTooLargeError) return new OciError('SIZE_INVALID', error.message, { status: 413 });
  if (error instanceof LengthMismatchError) return new OciError('SIZE_INVALID', error.message);
  return error;
}

function pipeTo(body: Readable, through: HashingStream): Readable {
  pipeline(body, through).catch((error: unknown) => through.destroy(error as Error));
  return through;
}

function emptyStream(): Readable {
  const stream = new PassThrough({ highWaterMark: STREAM_CHUNK });
  stream.end();
  return stream;
}
