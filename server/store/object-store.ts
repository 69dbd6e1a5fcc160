import type { Readable, Writable } from 'node:stream';

/**
 * The one storage abstraction of wharf: every piece of state (users, tokens, crate index files,
 * blobs, manifests) is an object in a flat key space. Two drivers implement it: `fs` (the embedded
 * default) and `s3`. Both must pass test/store/contract.ts.
 *
 * Keys are `/`-separated, non-empty segments of printable ASCII; `.` and `..` segments are refused.
 * A key must not also be the "folder" of other keys (`a` beside `a/b`): fs handles it, but MinIO
 * then leaves `a/b` out of listings, so key layouts keep objects and folders apart (`a.json`, `a/b`).
 */
export interface ObjectStore {
  /** Driver name for logs and metrics: `fs` or `s3`. */
  readonly kind: string;

  /**
   * Writes a whole object atomically: readers see the old object or the new one, never a part.
   * With `ifMatch`, the write happens only if the current ETag is that one; with `ifNoneMatch: '*'`,
   * only if the key does not exist. A failed condition throws {@link PreconditionFailedError}.
   */
  put(key: string, body: Body, options?: PutOptions): Promise<PutResult>;

  /**
   * Streams an object (or a byte range of it); `null` when the key does not exist. With
   * `ifNoneMatch`, an object whose ETag is still that one is not sent: the result says
   * `notModified` and its body is empty (a conditional GET, 304 on S3: one request to revalidate).
   */
  get(key: string, options?: GetOptions): Promise<GetResult | null>;

  /** Metadata only; `null` when the key does not exist. */
  head(key: string): Promise<ObjectInfo | null>;

  /** Removes an object; removing a missing key is not an error. */
  delete(key: string): Promise<void>;

  /** Keys in ascending binary order. With `delimiter` ('/' only), deeper keys fold into `prefixes`. */
  list(options?: ListOptions): Promise<ListResult>;

  /**
   * Multipart upload: parts are invisible until {@link completeMultipart} joins them, in part-number
   * order, into the object at `key`. Every part but the last must be at least {@link MIN_PART_SIZE}
   * bytes (S3's rule, enforced by both drivers so that fs tests catch what S3 would refuse).
   */
  createMultipart(key: string, options?: { contentType?: string }): Promise<string>;
  uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Body,
    length?: number,
  ): Promise<PutResult>;
  completeMultipart(key: string, uploadId: string, parts: CompletedPart[]): Promise<PutResult>;
  abortMultipart(key: string, uploadId: string): Promise<void>;

  /** A time-limited URL a client may GET directly, or `null` when the driver has none (fs). */
  presignGet(key: string, expiresInSeconds: number): Promise<string | null>;

  /** Throws when the backend does not answer; used by `/readyz`. */
  ping(): Promise<void>;

  close(): Promise<void>;
}

export type Body = Buffer | Uint8Array | string | Readable;

export interface PutOptions {
  ifMatch?: string;
  ifNoneMatch?: '*';
  contentType?: string;
  /** The body's size when known: a body of any other length is refused and nothing is written. */
  contentLength?: number;
  /**
   * `false` for state that is cheap to lose, such as an upload session's progress: the write stays
   * atomic, but a power cut may undo it (fs skips the fsync; S3 is durable anyway). Default `true`.
   */
  durable?: boolean;
}

export interface PutResult {
  etag: string;
}

export interface GetOptions {
  /** Inclusive byte range, as HTTP's `Range: bytes=start-end`; `end` defaults to the last byte. */
  range?: { start: number; end?: number };
  /** An ETag the caller already holds the bytes of: when it is still current, nothing is sent. */
  ifNoneMatch?: string;
}

export interface ObjectInfo {
  key: string;
  size: number;
  etag: string;
  lastModified: Date;
  contentType?: string;
}

export interface GetResult extends ObjectInfo {
  body: Readable;
  /**
   * Set when `ifNoneMatch` named the current ETag: `body` is empty, `etag` is that ETag, `size` and
   * `lastModified` are those of the object when the driver learns them (S3 answers 304 without them).
   */
  notModified?: true;
  /** The range actually served, when one was asked for. */
  range?: { start: number; end: number };
  /**
   * Instead of reading `body` (use one or the other): writes the bytes into `destination` through
   * a few reused buffers and resolves once it has taken them all, without ending it. For big
   * downloads; drivers that read local files offer it (fs), others leave it out.
   */
  copyTo?(destination: Writable): Promise<void>;
}

export interface ListOptions {
  prefix?: string;
  delimiter?: '/';
  /** Opaque token from a previous page. */
  continuationToken?: string;
  /** Return only keys after this one. */
  startAfter?: string;
  /** Page size, at most 1000. */
  maxKeys?: number;
}

export interface ListResult {
  objects: ObjectInfo[];
  prefixes: string[];
  nextContinuationToken?: string;
}

export interface CompletedPart {
  partNumber: number;
  etag: string;
}

export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const MAX_PARTS = 10_000;

/** A conditional write lost: someone else changed (or created) the object first. */
export class PreconditionFailedError extends Error {
  readonly key: string;
  constructor(key: string) {
    super(`precondition failed for ${key}`);
    this.name = 'PreconditionFailedError';
    this.key = key;
  }
}

/** A ranged read that starts past the end of the object. */
export class InvalidRangeError extends Error {
  readonly size: number;
  constructor(key: string, size: number) {
    super(`range not satisfiable for ${key} (size ${size})`);
    this.name = 'InvalidRangeError';
    this.size = size;
  }
}

/** A multipart call naming an upload that does not exist (completed, aborted or never created). */
export class NoSuchUploadError extends Error {
  constructor(uploadId: string) {
    super(`no such multipart upload ${uploadId}`);
    this.name = 'NoSuchUploadError';
  }
}

const KEY_SEGMENT = /^[\x21-\x7e]+$/;

/** Refuses keys that could escape a directory or that S3 and fs would treat differently. */
export function assertValidKey(key: string): void {
  if (key.length === 0 || key.length > 1024) throw new Error(`invalid object key length: ${key.length}`);
  for (const segment of key.split('/')) {
    if (!KEY_SEGMENT.test(segment) || segment === '.' || segment === '..') {
      throw new Error(`invalid object key: ${JSON.stringify(key)}`);
    }
  }
}

/** Every object under a prefix, across as many list pages as the store answers with. */
export async function listAllObjects(store: ObjectStore, prefix: string): Promise<ObjectInfo[]> {
  const objects: ObjectInfo[] = [];
  let continuationToken: string | undefined;
  do {
    const page = await store.list({ prefix, ...(continuationToken ? { continuationToken } : {}) });
    objects.push(...page.objects);
    continuationToken = page.nextContinuationToken;
  } while (continuationToken);
  return objects;
}
