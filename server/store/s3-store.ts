import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Logger } from 'pino';
import type { S3Config } from '../config/types.ts';
import {
  assertValidKey,
  type Body,
  type CompletedPart,
  type GetOptions,
  type GetResult,
  InvalidRangeError,
  type ListOptions,
  type ListResult,
  MAX_PARTS,
  NoSuchUploadError,
  type ObjectInfo,
  type ObjectStore,
  PreconditionFailedError,
  type PutOptions,
  type PutResult,
} from './object-store.ts';
import { verifyConditionalWrites } from './s3-conditional-probe.ts';
import { copyPresignedRange } from './s3-download.ts';
import { BodyLengthError, exactLength, isStream, partsOf } from './stream-parts.ts';

/** Size of the parts a streamed put is cut into; also the largest body sent as one PutObject. */
export const STREAM_PART_SIZE = 8 * 1024 * 1024;
/** Parts of one streamed put uploading at once: memory per put is about (this + 1) parts. */
const PARTS_IN_FLIGHT = 2;
/** Downloads from this size on go through copyPresignedRange when the caller takes `copyTo`. */
const SOCKET_DOWNLOAD_BYTES = 8 * 1024 * 1024;
/** S3's ceiling for one object. */
const MAX_OBJECT_SIZE = 5 * 1024 ** 4;

/**
 * The S3 driver (AWS S3, MinIO, Ceph RGW, R2...). Every store key lives at `<prefix><key>` in the
 * bucket. A put is atomic because S3 only ever publishes a PutObject whose body arrived whole, or a
 * multipart upload once CompleteMultipartUpload joins its parts; a streamed body therefore goes out
 * as a multipart upload completed only when the stream has ended with the announced length.
 * ETags are kept exactly as S3 returns them (quoted), so they round-trip into If-Match.
 */
export class S3ObjectStore implements ObjectStore {
  readonly kind = 's3';
  readonly bucket: string;
  readonly prefix: string;
  /** The endpoint as configured (or AWS's default), for messages. */
  readonly endpointName: string;
  private readonly client: S3Client;
  /**
   * Sends requests whose body is a one-shot stream: the SDK cannot rewind a stream to retry, so
   * retrying would send a truncated body. Those requests get one attempt; the caller may retry.
   */
  private readonly streamingClient: S3Client;
  private readonly presignDownloads: boolean;
  /** Signs download URLs for the endpoint clients use, which may differ from wharf's own. */
  private readonly presignClient: S3Client;

  constructor(config: S3Config) {
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.presignDownloads = config.presignDownloads;
    this.endpointName = config.endpoint ?? `AWS S3 (${config.region})`;
    const clientConfig: S3ClientConfig = {
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      // Without keys in the configuration, the SDK's default chain applies (AWS_ACCESS_KEY_ID,
      // profiles, web identity, instance metadata).
      ...(config.accessKeyId && config.secretAccessKey
        ? { credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey } }
        : {}),
      // Flexible checksums would send streamed bodies aws-chunked with trailers, which many
      // S3-compatible servers refuse; buffered bodies carry Content-MD5 instead (see putBuffer).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: 10_000 },
    };
    this.client = new S3Client(clientConfig);
    this.streamingClient = new S3Client({ ...clientConfig, maxAttempts: 1 });
    this.presignClient = config.publicEndpoint
      ? new S3Client({ ...clientConfig, endpoint: config.publicEndpoint })
      : this.client;
  }

  /**
   * Opens the store and checks, before anything relies on it, that the bucket answers and that the
   * endpoint honours conditional writes; throws a ConfigError naming the endpoint otherwise.
   */
  static async open(config: S3Config, logger: Logger): Promise<S3ObjectStore> {
    const store = new S3ObjectStore(config);
    try {
      await verifyConditionalWrites({
        client: store.client,
        bucket: store.bucket,
        prefix: store.prefix,
        endpoint: store.endpointName,
      });
    } catch (error) {
      await store.close();
      throw error;
    }
    logger.info(
      { store: 's3', bucket: store.bucket, endpoint: store.endpointName, prefix: store.prefix },
      'object store opened (conditional writes verified)',
    );
    return store;
  }

  private objectKey(key: string): string {
    assertValidKey(key);
    return this.prefix + key;
  }

  async put(key: string, body: Body, options: PutOptions = {}): Promise<PutResult> {
    const objectKey = this.objectKey(key);
    if (!isStream(body)) {
      const data =
        typeof body === 'string'
          ? Buffer.from(body)
          : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
      if (options.contentLength !== undefined && data.length !== options.contentLength) {
        throw new BodyLengthError(data.length, options.contentLength, true);
      }
      return this.putBuffer(key, objectKey, data, options);
    }
    const length = options.contentLength;
    if (length !== undefined && (length < 0 || length > MAX_OBJECT_SIZE)) {
      throw new Error(`contentLength ${length} is outside 0..${MAX_OBJECT_SIZE}`);
    }
    const sizeOf = partSizes(length);
    const parts = partsOf(body, sizeOf, length, takePartBuffer);
    try {
      const first = await parts.next();
      if (first.done) throw new Error('unreachable: partsOf always yields a last part');
      // A body that fits in one part is sent whole: one request, and the SDK may retry it.
      if (first.value.last) return await this.putBuffer(key, objectKey, first.value.data, options);
      return await this.putMultipart(key, objectKey, first.value.data, parts, options);
    } catch (error) {
      body.destroy();
      throw error;
    } finally {
      await parts.return(undefined);
    }
  }

  private async putBuffer(
    key: string,
    objectKey: string,
    data: Buffer,
    options: PutOptions,
  ): Promise<PutResult> {
    const digest = createHash('md5').update(data).digest();
    try {
      const result = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          Body: data,
          ContentLength: data.length,
          ContentMD5: digest.toString('base64'),
          ContentType: options.contentType,
          IfMatch: options.ifMatch,
          IfNoneMatch: options.ifNoneMatch,
        }),
      );
      return { etag: requireEtag(result.ETag, key) };
    } catch (error) {
      const failure = conditionalWriteError(error, key, options);
      if (failure instanceof PreconditionFailedError && retried(error)) {
        // An earlier attempt may have been applied with its answer lost, and this retry then failed
        // on our own write. If the object is exactly our body (S3's ETag of a plain PUT is its MD5),
        // the put did happen: report it, so that updateJson does not apply its change twice.
        const current = await this.head(key);
        if (current && current.etag === `"${digest.toString('hex')}"`) return { etag: current.etag };
      }
      throw failure;
    }
  }

  /**
   * Uploads a stream part by part (a few parts in flight, so memory stays flat whatever its size)
   * and completes the upload, with the put's condition, only once the stream has ended whole.
   * Anything that goes wrong aborts the upload, so nothing of it is ever visible.
   */
  private async putMultipart(
    key: string,
    objectKey: string,
    firstPart: Buffer,
    rest: AsyncGenerator<{ data: Buffer; last: boolean }>,
    options: PutOptions,
  ): Promise<PutResult> {
    const { UploadId: uploadId } = await this.client.send(
      new CreateMultipartUploadCommand({
        Bucket: this.bucket,
        Key: objectKey,
        ContentType: options.contentType,
      }),
    );
    if (!uploadId) throw new Error(`${this.endpointName} returned no multipart upload id for ${key}`);
    const completed: CompletedPart[] = [];
    let completing = false;
    const inFlight = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    // No Content-MD5 on parts: the SigV4 signature already covers each part's SHA-256 (checked by
    // S3), and an MD5 of every byte was the costliest step of a push (2.5 s of CPU per GiB here).
    const upload = (partNumber: number, data: Buffer) => {
      const sending = this.client
        .send(
          new UploadPartCommand({
            Bucket: this.bucket,
            Key: objectKey,
            UploadId: uploadId,
            PartNumber: partNumber,
            Body: data,
            ContentLength: data.length,
          }),
        )
        .then(
          (result) => {
            completed.push({ partNumber, etag: requireEtag(result.ETag, key) });
            returnPartBuffer(data); // sent whole: the SDK holds it no longer
          },
          (error: unknown) => {
            failure ??= { error };
          },
        )
        .finally(() => inFlight.delete(sending));
      inFlight.add(sending);
    };
    try {
      let partNumber = 1;
      upload(partNumber, firstPart);
      for await (const part of rest) {
        if (part.data.length === 0) break; // the stream ended exactly on a part boundary
        partNumber++;
        if (partNumber > MAX_PARTS) throw new Error(`${key}: body needs more than ${MAX_PARTS} parts`);
        while (inFlight.size >= PARTS_IN_FLIGHT && !failure) await Promise.race(inFlight);
        if (failure) throw failure.error;
        upload(partNumber, part.data);
      }
      await Promise.all(inFlight);
      if (failure) throw failure.error;
      completed.sort((a, b) => a.partNumber - b.partNumber);
      completing = true;
      const result = await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: objectKey,
          UploadId: uploadId,
          MultipartUpload: { Parts: completed.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
          IfMatch: options.ifMatch,
          IfNoneMatch: options.ifNoneMatch,
        }),
      );
      return { etag: requireEtag(result.ETag, key) };
    } catch (error) {
      if (completing && retried(error)) {
        // As in putBuffer: a completion whose answer was lost and whose retry then failed (412, or
        // NoSuchUpload since the upload is gone) did happen if the object is exactly ours. S3's ETag
        // of a multipart object is the MD5 of its parts' MD5s (their ETags), then "-" and the count.
        const joined = createHash('md5')
          .update(Buffer.concat(completed.map((part) => Buffer.from(part.etag.replaceAll('"', ''), 'hex'))))
          .digest('hex');
        const current = await this.head(key).catch(() => null);
        if (current?.etag === `"${joined}-${completed.length}"`) return { etag: current.etag };
      }
      await Promise.allSettled(inFlight);
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId }))
        .catch(() => undefined); // what stays behind is removed by the bucket's lifecycle rule
      throw conditionalWriteError(error, key, options);
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<GetResult | null> {
    const objectKey = this.objectKey(key);
    const range = options.range;
    if (
      range &&
      !(Number.isInteger(range.start) && range.start >= 0 && (range.end ?? range.start) >= range.start)
    ) {
      // S3 ignores a malformed Range header and sends the whole object; refuse it here instead.
      const info = await this.head(key);
      if (!info) return null;
      throw new InvalidRangeError(key, info.size);
    }
    try {
      const result = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          ...(range ? { Range: `bytes=${range.start}-${range.end ?? ''}` } : {}),
          ...(options.ifNoneMatch !== undefined ? { IfNoneMatch: options.ifNoneMatch } : {}),
        }),
      );
      const served = parseContentRange(result.ContentRange);
      const size = served?.size ?? result.ContentLength ?? 0;
      const object: GetResult = {
        key,
        size,
        etag: requireEtag(result.ETag, key),
        lastModified: result.LastModified ?? new Date(0),
        body: result.Body as Readable,
        ...(result.ContentType ? { contentType: result.ContentType } : {}),
      };
      if (range) {
        if (served) object.range = { start: served.start, end: served.end };
        else if (range.start === 0 && size > 0) object.range = { start: 0, end: size - 1 };
        else {
          // Some servers answer a range over an empty object with the whole (empty) object.
          object.body.destroy();
          throw new InvalidRangeError(key, size);
        }
      }
      const first = object.range?.start ?? 0;
      const last = object.range?.end ?? size - 1;
      if (last - first + 1 >= SOCKET_DOWNLOAD_BYTES) {
        // A big download is read again through a plain socket, pinned to this version (s3-download.ts).
        object.copyTo = async (destination) => {
          object.body.destroy();
          const url = await getSignedUrl(
            this.client,
            new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }),
            { expiresIn: 600 },
          );
          await copyPresignedRange(url, { start: first, end: last }, object.etag, destination);
        };
      }
      return object;
    } catch (error) {
      if (isNotFound(error)) return null;
      // The SDK surfaces 304 Not Modified as an error: it is the answer to a conditional GET.
      if (options.ifNoneMatch !== undefined && statusOf(error) === 304)
        return notModified(key, options.ifNoneMatch, error as S3ServiceException);
      if (
        error instanceof S3ServiceException &&
        (error.$metadata.httpStatusCode === 416 || error.name === 'InvalidRange')
      ) {
        const info = await this.head(key);
        if (!info) return null;
        throw new InvalidRangeError(key, info.size);
      }
      throw error;
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const result = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
      );
      return {
        key,
        size: result.ContentLength ?? 0,
        etag: requireEtag(result.ETag, key),
        lastModified: result.LastModified ?? new Date(0),
        ...(result.ContentType ? { contentType: result.ContentType } : {}),
      };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  async list(options: ListOptions = {}): Promise<ListResult> {
    const maxKeys = Math.min(Math.max(options.maxKeys ?? 1000, 1), 1000);
    const result = await this.client.send(
      new ListObjectsV2Command({
        Bucket: this.bucket,
        Prefix: this.prefix + (options.prefix ?? ''),
        Delimiter: options.delimiter,
        ContinuationToken: options.continuationToken,
        StartAfter: options.startAfter === undefined ? undefined : this.prefix + options.startAfter,
        MaxKeys: maxKeys,
      }),
    );
    const strip = (full: string) => full.slice(this.prefix.length);
    const objects = (result.Contents ?? []).flatMap((object) =>
      object.Key === undefined
        ? []
        : [
            {
              key: strip(object.Key),
              size: object.Size ?? 0,
              etag: requireEtag(object.ETag, object.Key),
              lastModified: object.LastModified ?? new Date(0),
            },
          ],
    );
    const prefixes = (result.CommonPrefixes ?? []).flatMap((p) =>
      p.Prefix === undefined ? [] : [strip(p.Prefix)],
    );
    const page: ListResult = { objects, prefixes };
    if (result.IsTruncated && result.NextContinuationToken) {
      // Only an exactly full page can be a false "truncated" (see hasMoreAfter).
      const full = objects.length + prefixes.length >= maxKeys;
      if (!full || (await this.hasMoreAfter(options, page)))
        page.nextContinuationToken = result.NextContinuationToken;
    }
    return page;
  }

  /**
   * MinIO answers "truncated" whenever a page is exactly full, even when nothing follows; callers
   * would then fetch an empty page (and the OCI catalog would link to one). A one-key look-ahead
   * past the page's last entry settles it.
   */
  private async hasMoreAfter(options: ListOptions, page: ListResult): Promise<boolean> {
    const lastObject = page.objects.at(-1)?.key ?? '';
    const lastPrefix = page.prefixes.at(-1) ?? '';
    // Everything under a folded prefix sorts before the prefix followed by DEL (keys are printable ASCII).
    const last = lastPrefix > lastObject ? `${lastPrefix}\x7f` : lastObject;
    if (!last) return true;
    const ahead = await this.client.send(
      new ListObjectsV2Command({
        Bucket: this.bucket,
        Prefix: this.prefix + (options.prefix ?? ''),
        Delimiter: options.delimiter,
        StartAfter: this.prefix + last,
        MaxKeys: 1,
      }),
    );
    return (ahead.Contents?.length ?? 0) + (ahead.CommonPrefixes?.length ?? 0) > 0;
  }

  async createMultipart(key: string, options: { contentType?: string } = {}): Promise<string> {
    const result = await this.client.send(
      new CreateMultipartUploadCommand({
        Bucket: this.bucket,
        Key: this.objectKey(key),
        ContentType: options.contentType,
      }),
    );
    if (!result.UploadId) throw new Error(`${this.endpointName} returned no multipart upload id for ${key}`);
    return result.UploadId;
  }

  async uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Body,
    length?: number,
  ): Promise<PutResult> {
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PARTS) {
      throw new Error(`part number must be 1..${MAX_PARTS}`);
    }
    const objectKey = this.objectKey(key);
    const target = { Bucket: this.bucket, Key: objectKey, UploadId: uploadId, PartNumber: partNumber };
    try {
      if (!isStream(body)) {
        const data =
          typeof body === 'string'
            ? Buffer.from(body)
            : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
        if (length !== undefined && data.length !== length)
          throw new BodyLengthError(data.length, length, true);
        const result = await this.client.send(
          new UploadPartCommand({ ...target, Body: data, ContentLength: data.length, ContentMD5: md5(data) }),
        );
        return { etag: requireEtag(result.ETag, key) };
      }
      if (length !== undefined) return { etag: await this.uploadStreamedPart(key, target, body, length) };
      // S3 needs a part's length before its body: spool an unsized stream to disk, not to memory.
      const spool = path.join(tmpdir(), `wharf-part-${randomUUID()}`);
      try {
        await pipeline(body, createWriteStream(spool));
        const { size } = await stat(spool);
        return { etag: await this.uploadStreamedPart(key, target, createReadStream(spool), size) };
      } finally {
        await rm(spool, { force: true });
      }
    } catch (error) {
      throw multipartError(error, uploadId);
    }
  }

  /** Streams one part straight through, cutting the request off if the body is not `length` bytes. */
  private async uploadStreamedPart(
    key: string,
    target: { Bucket: string; Key: string; UploadId: string; PartNumber: number },
    body: Readable,
    length: number,
  ): Promise<string> {
    const checked = exactLength(body, length);
    const abort = new AbortController();
    let bodyError: unknown;
    // The SDK pipes the body into the request; a failing body must abort the request, or the server
    // would wait for the missing bytes.
    checked.on('error', (error) => {
      bodyError = error;
      abort.abort(error);
    });
    try {
      const result = await this.streamingClient.send(
        new UploadPartCommand({ ...target, Body: checked, ContentLength: length }),
        { abortSignal: abort.signal },
      );
      return requireEtag(result.ETag, key);
    } catch (error) {
      throw bodyError ?? error;
    }
  }

  async completeMultipart(key: string, uploadId: string, parts: CompletedPart[]): Promise<PutResult> {
    if (parts.length === 0) throw new Error('a multipart upload needs at least one part');
    try {
      const result = await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.objectKey(key),
          UploadId: uploadId,
          MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
        }),
      );
      return { etag: requireEtag(result.ETag, key) };
    } catch (error) {
      throw multipartError(error, uploadId);
    }
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.objectKey(key),
          UploadId: uploadId,
        }),
      );
    } catch (error) {
      // Aborting what is already gone is not an error, as with delete.
      if (!(multipartError(error, uploadId) instanceof NoSuchUploadError)) throw error;
    }
  }

  async presignGet(key: string, expiresInSeconds: number): Promise<string | null> {
    if (!this.presignDownloads) return null;
    return getSignedUrl(
      this.presignClient,
      new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
      {
        expiresIn: expiresInSeconds,
      },
    );
  }

  async ping(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }

  async close(): Promise<void> {
    this.client.destroy();
    this.streamingClient.destroy();
    if (this.presignClient !== this.client) this.presignClient.destroy();
  }
}

/**
 * Part buffers reused across streamed puts: a new 8 MiB allocation per part, freed only when the
 * garbage collector gets to it, kept a push's resident memory growing with its throughput (a 1 GiB
 * push on MinIO peaked at 250 MB). Enough for the parts in flight and the one filling.
 */
const partPool: Buffer[] = [];
const PART_POOL_LIMIT = PARTS_IN_FLIGHT + 1;

function takePartBuffer(size: number): Buffer {
  return (size === STREAM_PART_SIZE ? partPool.pop() : undefined) ?? Buffer.allocUnsafeSlow(size);
}

function returnPartBuffer(data: Buffer): void {
  if (
    data.length === STREAM_PART_SIZE &&
    data.buffer.byteLength === STREAM_PART_SIZE &&
    partPool.length < PART_POOL_LIMIT
  )
    partPool.push(data);
}

/**
 * Part sizes for a streamed put: with a known length, the smallest size (at least
 * {@link STREAM_PART_SIZE}) that stays within S3's part limit; with an unknown length, sizes that
 * double every 1000 parts, so that up to S3's 5 TiB object limit fits in {@link MAX_PARTS} parts.
 */
export function partSizes(length: number | undefined): (index: number) => number {
  if (length !== undefined) {
    const mib = 1024 * 1024;
    const size = Math.max(STREAM_PART_SIZE, Math.ceil(length / MAX_PARTS / mib) * mib);
    return () => size;
  }
  return (index) => STREAM_PART_SIZE * 2 ** Math.floor(index / 1000);
}

/** A 304's answer: S3 sends the ETag and Last-Modified back, but no length. */
function notModified(key: string, etag: string, error: S3ServiceException): GetResult {
  const headers = (error.$response?.headers ?? {}) as Record<string, string | undefined>;
  const lastModified = headers['last-modified'] ? new Date(headers['last-modified']) : new Date(0);
  return {
    key,
    size: Number(headers['content-length'] ?? 0),
    etag: headers.etag ?? etag,
    lastModified: Number.isNaN(lastModified.getTime()) ? new Date(0) : lastModified,
    body: Readable.from([]),
    notModified: true,
  };
}

function md5(data: Buffer): string {
  return createHash('md5').update(data).digest('base64');
}

function requireEtag(etag: string | undefined, key: string): string {
  if (!etag) throw new Error(`the S3 endpoint returned no ETag for ${key}`);
  return etag;
}

function parseContentRange(
  header: string | undefined,
): { start: number; end: number; size: number } | undefined {
  const match = header && /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header);
  if (!match) return undefined;
  return { start: Number(match[1]), end: Number(match[2]), size: Number(match[3]) };
}

function retried(error: unknown): boolean {
  return error instanceof S3ServiceException && (error.$metadata.attempts ?? 1) > 1;
}

function statusOf(error: unknown): number | undefined {
  return error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
}

function isNotFound(error: unknown): boolean {
  return (
    error instanceof S3ServiceException &&
    (error.name === 'NoSuchKey' || error.name === 'NotFound' || error.$metadata.httpStatusCode === 404)
  );
}

/**
 * A lost condition surfaces as 412 PreconditionFailed; S3 may also answer 409
 * ConditionalRequestConflict to one of two racing conditional writes, and 404 NoSuchKey to If-Match
 * on a key that does not exist. All three mean: someone else's version is (or is not) there.
 */
export function conditionalWriteError(error: unknown, key: string, options: PutOptions): unknown {
  const conditional = options.ifMatch !== undefined || options.ifNoneMatch !== undefined;
  if (!conditional || !(error instanceof S3ServiceException)) return error;
  const status = statusOf(error);
  if (status === 412 || error.name === 'PreconditionFailed') return new PreconditionFailedError(key);
  if (status === 409 && error.name === 'ConditionalRequestConflict') return new PreconditionFailedError(key);
  if (options.ifMatch !== undefined && error.name === 'NoSuchKey') return new PreconditionFailedError(key);
  return error;
}

function multipartError(error: unknown, uploadId: string): unknown {
  if (error instanceof S3ServiceException && error.name === 'NoSuchUpload')
    return new NoSuchUploadError(uploadId);
  return error;
}
