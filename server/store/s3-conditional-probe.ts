import { randomUUID } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
  type S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { ConfigError } from '../config/load.ts';

/** Where the start-up probe writes, under the store's prefix; deleted again before start-up ends. */
export const PROBE_KEY_PREFIX = '_wharf/conditional-write-probe/';

export interface ProbeTarget {
  client: S3Client;
  bucket: string;
  prefix: string;
  /** The endpoint's name for messages. */
  endpoint: string;
}

/** Why a bucket cannot hold wharf's state: what is wrong, in words for a person. */
export type ProbeRefusal =
  | { problem: 'bucket-unusable'; detail: string }
  | { problem: 'conditional-writes-unsupported'; detail: string };

/**
 * Proves, with real writes to two probe objects, that the bucket answers and that the endpoint honours
 * If-None-Match: * and If-Match on PutObject and on CompleteMultipartUpload. wharf's read-modify-write
 * (json-doc.ts updateJson) depends on them: an endpoint that ignores them (older S3-compatible
 * gateways do) would let concurrent replicas silently overwrite each other's changes. Returns
 * undefined when the bucket is fit, otherwise why not. The server refuses to start on a refusal
 * (verifyConditionalWrites); the operator reports it as BucketReady=False, from the same probe.
 */
export async function probeConditionalWrites(
  target: Omit<ProbeTarget, 'endpoint'>,
): Promise<ProbeRefusal | undefined> {
  const { client, bucket } = target;
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (error) {
    const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
    const detail =
      status === 404
        ? 'the bucket does not exist'
        : status === 403
          ? 'access denied (check the credentials: store.s3.accessKeyId/secretAccessKey or the AWS_* environment)'
          : describe(error);
    return { problem: 'bucket-unusable', detail };
  }

  // Two probe objects, so the PutObject checks and the two multipart checks run side by side (an
  // endpoint that ignores the multipart conditions replaces only the second one).
  const key = `${target.prefix}${PROBE_KEY_PREFIX}${randomUUID()}`;
  const multipartKey = `${key}-multipart`;
  const put = (condition: { IfMatch?: string; IfNoneMatch?: string }) =>
    client.send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'wharf start-up probe', ...condition }),
    );
  const uploads: string[] = [];

  const putChecks = async (etag: string): Promise<string | undefined> => {
    const again = await attempt(() => put({ IfNoneMatch: '*' }));
    if (again.ok) return 'a second PUT with If-None-Match: * replaced the object instead of failing with 412';
    if (!isPreconditionFailure(again.error))
      return `PUT with If-None-Match: * answered ${describe(again.error)}`;

    const stale = await attempt(() => put({ IfMatch: STALE_ETAG }));
    if (stale.ok)
      return 'a PUT with If-Match and a stale ETag replaced the object instead of failing with 412';
    if (!isPreconditionFailure(stale.error)) return `PUT with If-Match answered ${describe(stale.error)}`;

    const current = await attempt(() => put({ IfMatch: etag }));
    if (!current.ok) return `PUT with If-Match and the current ETag failed: ${describe(current.error)}`;
    return undefined;
  };

  const multipartCheck = async (condition: { IfMatch?: string; IfNoneMatch?: string }) => {
    const { UploadId: uploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: multipartKey }),
    );
    if (!uploadId) return 'CreateMultipartUpload returned no upload id';
    uploads.push(uploadId);
    const part = await client.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: multipartKey,
        UploadId: uploadId,
        PartNumber: 1,
        Body: 'probe',
      }),
    );
    const completed = await attempt(() =>
      client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: multipartKey,
          UploadId: uploadId,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
          ...condition,
        }),
      ),
    );
    const header = condition.IfNoneMatch ? 'If-None-Match: *' : 'If-Match and a stale ETag';
    if (completed.ok)
      return `CompleteMultipartUpload with ${header} replaced the object instead of failing with 412`;
    if (!isPreconditionFailure(completed.error))
      return `CompleteMultipartUpload with ${header} answered ${describe(completed.error)}`;
    return undefined;
  };

  try {
    const [created, multipartTarget] = await Promise.all([
      attempt(() => put({ IfNoneMatch: '*' })),
      attempt(() =>
        client.send(
          new PutObjectCommand({ Bucket: bucket, Key: multipartKey, Body: 'wharf start-up probe' }),
        ),
      ),
    ]);
    if (!created.ok)
      return refusal(`PUT with If-None-Match: * of a new key failed: ${describe(created.error)}`);
    if (!multipartTarget.ok) return refusal(`PUT of a new key failed: ${describe(multipartTarget.error)}`);
    // Every check runs to its end (so the clean-up below sees all their uploads); the first
    // failure in this fixed order is the one reported.
    const settled = await Promise.allSettled([
      putChecks(created.value.ETag ?? ''),
      multipartCheck({ IfNoneMatch: '*' }),
      multipartCheck({ IfMatch: STALE_ETAG }),
    ]);
    const failed = settled.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    const finding = settled
      .map((result) => (result.status === 'fulfilled' ? result.value : undefined))
      .find((item) => item !== undefined);
    return finding === undefined ? undefined : refusal(finding);
  } finally {
    await Promise.all([
      ...uploads.map((uploadId) =>
        client
          .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: multipartKey, UploadId: uploadId }))
          .catch(() => undefined),
      ),
      ...[key, multipartKey].map((name) =>
        client.send(new DeleteObjectCommand({ Bucket: bucket, Key: name })).catch(() => undefined),
      ),
    ]);
  }
}

const STALE_ETAG = '"00000000000000000000000000000000"';

const refusal = (detail: string): ProbeRefusal => ({ problem: 'conditional-writes-unsupported', detail });

const CONDITIONAL_WRITES_ADVICE =
  'wharf needs If-Match and If-None-Match: * on PUT to avoid lost updates when replicas change the same ' +
  'object concurrently, so it refuses to start; use an S3 endpoint that supports conditional writes ' +
  '(AWS S3, or a recent MinIO, Ceph RGW or R2).';

/** The server's start-up check: the probe, and a ConfigError naming the setting to fix. */
export async function verifyConditionalWrites(target: ProbeTarget): Promise<void> {
  const refusal = await probeConditionalWrites(target);
  if (!refusal) return;
  const { bucket, endpoint } = target;
  if (refusal.problem === 'bucket-unusable')
    throw new ConfigError(
      `configuration setting "store.s3.bucket": cannot use bucket "${bucket}" at ${endpoint}: ${refusal.detail}`,
    );
  throw new ConfigError(
    `configuration setting "store.s3.endpoint": ${endpoint} does not honour conditional writes (${refusal.detail}). ${CONDITIONAL_WRITES_ADVICE}`,
  );
}

type Attempt<T> = { ok: true; value: T } | { ok: false; error: unknown };

async function attempt<T>(action: () => Promise<T>): Promise<Attempt<T>> {
  try {
    return { ok: true, value: await action() };
  } catch (error) {
    return { ok: false, error };
  }
}

function isPreconditionFailure(error: unknown): boolean {
  if (!(error instanceof S3ServiceException)) return false;
  const status = error.$metadata.httpStatusCode;
  return status === 412 || (status === 409 && error.name === 'ConditionalRequestConflict');
}

function describe(error: unknown): string {
  if (error instanceof S3ServiceException)
    return `HTTP ${error.$metadata.httpStatusCode ?? '?'} ${error.name}`;
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
