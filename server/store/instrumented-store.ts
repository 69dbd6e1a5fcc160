import { Readable } from 'node:stream';
import { Histogram, type Registry } from 'prom-client';
import {
  type Body,
  type CompletedPart,
  type GetOptions,
  type GetResult,
  InvalidRangeError,
  type ListOptions,
  type ListResult,
  NoSuchUploadError,
  type ObjectInfo,
  type ObjectStore,
  PreconditionFailedError,
  type PutOptions,
  type PutResult,
} from './object-store.ts';
import { BodyLengthError } from './stream-parts.ts';

/**
 * What a store call ended with: `ok`; `conflict`, a conditional write that lost (expected between
 * replicas, retried by updateJson); `refused`, a request the store answered as wrong (a range past
 * the end, an unknown multipart upload); `aborted`, a write whose body failed or had the wrong length
 * (a client that hung up mid-push, an upload over its limit): the producer's doing, not the store's;
 * `error`, anything else: the backend failed or did not answer. Alert on `error`.
 */
export type StoreResult = 'ok' | 'conflict' | 'refused' | 'aborted' | 'error';

/**
 * Operation names in metrics. A write whose body is a stream (`put_stream`, `upload_part_stream`)
 * lasts as long as its producer, often a client's upload, so it is kept apart from buffered writes,
 * whose duration is the store's own latency.
 */
export type StoreOperation =
  | 'get'
  | 'get_if_none_match'
  | 'head'
  | 'put'
  | 'put_stream'
  | 'delete'
  | 'list'
  | 'create_multipart'
  | 'upload_part'
  | 'upload_part_stream'
  | 'complete_multipart'
  | 'abort_multipart'
  | 'presign_get'
  | 'ping';

export class StoreMetrics {
  readonly duration: Histogram<'operation' | 'result'>;

  constructor(registry: Registry) {
    this.duration = new Histogram({
      name: 'wharf_store_operation_duration_seconds',
      help: 'Object store calls by operation (get, get_if_none_match, head, put, put_stream, delete, list, multipart steps, ping) and result (ok, conflict, refused, aborted, error); a get lasts until the object opens, not until it is read',
      labelNames: ['operation', 'result'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    });
  }
}

/**
 * Wraps any driver: every call is timed and its result counted, so latency and errors per operation
 * come out the same for fs and s3 without either driver knowing about metrics.
 */
export class InstrumentedStore implements ObjectStore {
  private readonly inner: ObjectStore;
  private readonly metrics: StoreMetrics;

  constructor(inner: ObjectStore, metrics: StoreMetrics) {
    this.inner = inner;
    this.metrics = metrics;
  }

  get kind(): string {
    return this.inner.kind;
  }

  put(key: string, body: Body, options?: PutOptions): Promise<PutResult> {
    return this.timed(
      body instanceof Readable ? 'put_stream' : 'put',
      () => this.inner.put(key, body, options),
      body,
    );
  }

  get(key: string, options?: GetOptions): Promise<GetResult | null> {
    // A conditional get (a cache revalidating) is counted apart: mostly 304s, no body.
    const operation = options?.ifNoneMatch === undefined ? 'get' : 'get_if_none_match';
    return this.timed(operation, () => this.inner.get(key, options));
  }

  head(key: string): Promise<ObjectInfo | null> {
    return this.timed('head', () => this.inner.head(key));
  }

  delete(key: string): Promise<void> {
    return this.timed('delete', () => this.inner.delete(key));
  }

  list(options?: ListOptions): Promise<ListResult> {
    return this.timed('list', () => this.inner.list(options));
  }

  createMultipart(key: string, options?: { contentType?: string }): Promise<string> {
    return this.timed('create_multipart', () => this.inner.createMultipart(key, options));
  }

  uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Body,
    length?: number,
  ): Promise<PutResult> {
    return this.timed(
      body instanceof Readable ? 'upload_part_stream' : 'upload_part',
      () => this.inner.uploadPart(key, uploadId, partNumber, body, length),
      body,
    );
  }

  completeMultipart(key: string, uploadId: string, parts: CompletedPart[]): Promise<PutResult> {
    return this.timed('complete_multipart', () => this.inner.completeMultipart(key, uploadId, parts));
  }

  abortMultipart(key: string, uploadId: string): Promise<void> {
    return this.timed('abort_multipart', () => this.inner.abortMultipart(key, uploadId));
  }

  presignGet(key: string, expiresInSeconds: number): Promise<string | null> {
    return this.timed('presign_get', () => this.inner.presignGet(key, expiresInSeconds));
  }

  ping(): Promise<void> {
    return this.timed('ping', () => this.inner.ping());
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async timed<T>(operation: StoreOperation, call: () => Promise<T>, body?: Body): Promise<T> {
    const end = this.metrics.duration.startTimer({ operation });
    try {
      const value = await call();
      end({ result: 'ok' });
      return value;
    } catch (error) {
      end({ result: resultOf(error, body) });
      throw error;
    }
  }
}

function resultOf(error: unknown, body: Body | undefined): StoreResult {
  if (error instanceof PreconditionFailedError) return 'conflict';
  if (error instanceof InvalidRangeError || error instanceof NoSuchUploadError) return 'refused';
  if (error instanceof BodyLengthError || (body instanceof Readable && body.errored)) return 'aborted';
  return 'error';
}
