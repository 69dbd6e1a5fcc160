/**
 * The storage bucket behind an AuthService or Registry: created when missing, given a lifecycle
 * rule that aborts abandoned multipart uploads. Whether it honours conditional writes is checked
 * by the server's own start-up probe (server/store/s3-conditional-probe.ts), which the workload
 * reconciler runs: the operator reports BucketReady only where the servers will start.
 */
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetBucketLifecycleConfigurationCommand,
  HeadBucketCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutBucketLifecycleConfigurationCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { StorageSpec } from '../api/types.ts';

export const LIFECYCLE_RULE_ID = 'wharf-abort-incomplete-multipart-uploads';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/**
 * A client for the resource's bucket: with the key pair of its Secret, or without one the SDK's
 * default credential chain, i.e. the operator's own workload identity (IRSA, GKE, Azure).
 */
export function s3Client(storage: StorageSpec, credentials: S3Credentials | undefined): S3Client {
  return new S3Client({
    ...(storage.endpoint ? { endpoint: storage.endpoint } : {}),
    region: storage.region,
    forcePathStyle: storage.forcePathStyle,
    ...(credentials ? { credentials } : {}),
    maxAttempts: 2,
  });
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

export interface BucketReport {
  created: boolean;
  lifecycleAdded: boolean;
  /** False when the endpoint rejects AbortIncompleteMultipartUpload rules (MinIO does: it expires stale uploads itself). */
  lifecycleSupported: boolean;
}

/** Creates the bucket and its lifecycle rule when missing; returns what it changed. */
export async function ensureBucket(
  s3: S3Client,
  bucket: string,
  abortAfterDays: number,
): Promise<BucketReport> {
  let created = false;
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (error) {
    if (statusOf(error) !== 404) throw error;
    try {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      created = true;
    } catch (createError) {
      const name = (createError as Error).name;
      if (name !== 'BucketAlreadyOwnedByYou') throw createError;
    }
  }
  let rules: { ID?: string | undefined }[] = [];
  try {
    const lifecycle = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }));
    rules = lifecycle.Rules ?? [];
  } catch (error) {
    if (statusOf(error) !== 404) throw error;
  }
  let lifecycleAdded = false;
  if (!rules.some((rule) => rule.ID === LIFECYCLE_RULE_ID)) {
    try {
      await s3.send(
        new PutBucketLifecycleConfigurationCommand({
          Bucket: bucket,
          LifecycleConfiguration: {
            Rules: [
              ...(rules as never[]),
              {
                ID: LIFECYCLE_RULE_ID,
                Status: 'Enabled',
                Filter: { Prefix: '' },
                AbortIncompleteMultipartUpload: { DaysAfterInitiation: abortAfterDays },
              },
            ],
          },
        }),
      );
    } catch (error) {
      if (['MalformedXML', 'InvalidArgument', 'NotImplemented'].includes((error as Error).name)) {
        return { created, lifecycleAdded: false, lifecycleSupported: false };
      }
      throw error;
    }
    lifecycleAdded = true;
  }
  return { created, lifecycleAdded, lifecycleSupported: true };
}

/** Empties and removes the bucket (deletionPolicy: Delete); a missing bucket is fine. */
export async function deleteBucket(s3: S3Client, bucket: string): Promise<void> {
  try {
    for (;;) {
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000 }));
      const keys = (listed.Contents ?? []).map((object) => ({ Key: object.Key! }));
      if (keys.length === 0) break;
      await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
    }
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    for (const upload of uploads.Uploads ?? []) {
      await s3.send(
        new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key!, UploadId: upload.UploadId! }),
      );
    }
    await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
  } catch (error) {
    if (statusOf(error) === 404) return;
    throw error;
  }
}
