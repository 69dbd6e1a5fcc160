/**
 * The part AuthService and Registry share: the bucket with its finalizer, applying the owned
 * objects, reading the Deployment's availability, and writing status and events only on change.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { type AuthService, type Registry, VOLUME_REPLICAS_MESSAGE } from '../api/types.ts';
import { objectPath, resourcePath } from '../kube/client.ts';
import { type ConditionInput, conditionOf, readyCondition, setConditions } from '../runtime/conditions.ts';
import { ensureApplied, ensureStatus, readSecret, setFinalizer } from '../runtime/objects.ts';
import { deleteBucket, ensureBucket, s3Client, supportsConditionalWrites } from './bucket.ts';
import type { ReconcileContext, ReconcileResult } from './context.ts';
import { volumeSettings } from './desired.ts';
import { authNames, BUCKET_FINALIZER, defaultBucketName, registryNames } from './names.ts';

type Workload = AuthService | Registry;

export function bucketName(object: Workload, component: 'auth' | 'registry'): string {
  return (
    object.spec.storage.bucket ??
    defaultBucketName(component, object.metadata.namespace, object.metadata.name)
  );
}

/** The PersistentVolumeClaim of the volume mode: each resource its own, as each has its own bucket. */
export function volumeClaimName(object: Workload, component: 'auth' | 'registry'): string {
  return (component === 'auth' ? authNames : registryNames)(object.metadata.name).data;
}

/** What status says about the storage: the bucket's name, or the claim's. */
export function storageStatus(object: Workload, component: 'auth' | 'registry'): Record<string, string> {
  return object.spec.storage.mode === 'volume'
    ? { volumeClaimName: volumeClaimName(object, component) }
    : { bucket: bucketName(object, component) };
}

async function s3For(ctx: ReconcileContext, object: Workload) {
  const { storage } = object.spec;
  const ref = storage.credentialsSecretRef;
  if (!ref) return undefined;
  const secret = readSecret(ctx, object.metadata.namespace, ref.name);
  const accessKeyId = secret?.[ref.accessKeyIdKey];
  const secretAccessKey = secret?.[ref.secretAccessKeyKey];
  if (!accessKeyId || !secretAccessKey) return undefined;
  return s3Client(storage, { accessKeyId, secretAccessKey });
}

/**
 * Handles deletion: empties the bucket (s3) or deletes the claim (volume) when deletionPolicy is
 * Delete, then releases the finalizer.
 */
export async function finalizeWorkload(
  ctx: ReconcileContext,
  object: Workload,
  component: 'auth' | 'registry',
): Promise<ReconcileResult> {
  if (!object.metadata.finalizers?.includes(BUCKET_FINALIZER)) return {};
  if (object.spec.storage.mode === 'volume') {
    const claim = volumeClaimName(object, component);
    if (object.spec.storage.deletionPolicy === 'Delete') {
      await ctx.client.delete(resourcePath('v1', 'PersistentVolumeClaim', object.metadata.namespace, claim));
      await ctx.events.record(
        object,
        'Normal',
        'VolumeClaimDeleted',
        `Deleted PersistentVolumeClaim ${claim}`,
      );
    } else {
      await ctx.events.record(
        object,
        'Normal',
        'VolumeClaimRetained',
        `Kept PersistentVolumeClaim ${claim} (deletionPolicy: Retain)`,
      );
    }
    await setFinalizer(ctx.client, object, BUCKET_FINALIZER, false);
    return {};
  }
  const bucket = bucketName(object, component);
  if (object.spec.storage.deletionPolicy === 'Delete') {
    const s3 = await s3For(ctx, object);
    if (!s3) {
      await ctx.events.record(
        object,
        'Warning',
        'BucketDeleteBlocked',
        'S3 credentials Secret is missing; cannot delete the bucket',
      );
      return { requeueAfterMs: 10_000 };
    }
    try {
      await deleteBucket(s3, bucket);
    } finally {
      s3.destroy();
    }
    await ctx.events.record(object, 'Normal', 'BucketDeleted', `Deleted bucket ${bucket}`);
  } else {
    await ctx.events.record(
      object,
      'Normal',
      'BucketRetained',
      `Kept bucket ${bucket} (deletionPolicy: Retain)`,
    );
  }
  await setFinalizer(ctx.client, object, BUCKET_FINALIZER, false);
  return {};
}

/** BucketReady: the bucket exists with its lifecycle rule and honours conditional writes. */
export async function reconcileBucket(
  ctx: ReconcileContext,
  object: Workload,
  component: 'auth' | 'registry',
): Promise<ConditionInput> {
  const bucket = bucketName(object, component);
  const generation = object.metadata.generation ?? 0;
  const previous = conditionOf(object.status?.conditions, 'BucketReady');
  const s3 = await s3For(ctx, object);
  if (!s3) {
    return {
      type: 'BucketReady',
      status: false,
      reason: 'CredentialsMissing',
      message: `Secret ${object.spec.storage.credentialsSecretRef?.name} is missing or lacks the access key pair`,
    };
  }
  try {
    const report = await ensureBucket(s3, bucket, object.spec.storage.abortIncompleteUploadsAfterDays);
    if (report.created)
      await ctx.events.record(object, 'Normal', 'BucketCreated', `Created bucket ${bucket}`);
    // The conditional-write probe writes to the bucket; once per generation is enough.
    const checked =
      previous?.status === 'True' && previous.observedGeneration === generation && !report.created;
    if (!checked && !(await supportsConditionalWrites(s3, bucket))) {
      return {
        type: 'BucketReady',
        status: false,
        reason: 'ConditionalWritesUnsupported',
        message: `the S3 endpoint does not honour If-None-Match on bucket ${bucket}; wharf needs conditional writes`,
      };
    }
    const lifecycle = report.lifecycleSupported
      ? 'with a lifecycle rule for abandoned multipart uploads'
      : 'the endpoint rejects lifecycle rules for abandoned multipart uploads (MinIO expires them itself)';
    return {
      type: 'BucketReady',
      status: true,
      reason: 'BucketReady',
      message: `bucket ${bucket} is ready, ${lifecycle}`,
    };
  } catch (error) {
    return {
      type: 'BucketReady',
      status: false,
      reason: 'S3Error',
      message: `bucket ${bucket}: ${(error as Error).message}`,
    };
  } finally {
    s3.destroy();
  }
}

/**
 * VolumeReady (volume mode): one replica asked for, and the claim not lost. A claim still Pending
 * is no failure here: a WaitForFirstConsumer class binds it once the pod is scheduled, and
 * DeploymentAvailable reports whether the pod got it.
 */
export async function volumeCondition(
  ctx: ReconcileContext,
  object: Workload,
  component: 'auth' | 'registry',
): Promise<ConditionInput> {
  const claimName = volumeClaimName(object, component);
  if (object.spec.replicas > 1) {
    const modes = volumeSettings(object.spec.storage).accessModes.join(', ');
    return {
      type: 'VolumeReady',
      status: false,
      reason: 'ReplicasUnsupported',
      message: `spec.replicas is ${object.spec.replicas} on claim ${claimName} (${modes}): ${VOLUME_REPLICAS_MESSAGE}; running 1`,
    };
  }
  const claim = ctx.caches.volumeClaims.get(`${object.metadata.namespace}/${claimName}`);
  const phase = claim?.status?.phase ?? 'Pending';
  if (phase === 'Lost')
    return {
      type: 'VolumeReady',
      status: false,
      reason: 'ClaimLost',
      message: `PersistentVolumeClaim ${claimName} lost its volume`,
    };
  return {
    type: 'VolumeReady',
    status: true,
    reason: phase === 'Bound' ? 'Bound' : 'Pending',
    message:
      phase === 'Bound'
        ? `PersistentVolumeClaim ${claimName} is bound`
        : `PersistentVolumeClaim ${claimName} waits for a volume (bound when the pod is scheduled, or by the provisioner)`,
  };
}

/** Applies each object; ComponentsApplied says whether all went through. */
export async function applyChildren(
  ctx: ReconcileContext,
  owner: Workload,
  objects: KubernetesObject[],
): Promise<{ condition: ConditionInput; changed: string[] }> {
  const changed: string[] = [];
  // Independent objects: read and apply them side by side (a Deployment may exist before its
  // ConfigMap for a moment; its pods wait for the volume).
  const results = await Promise.allSettled(objects.map((object) => ensureApplied(ctx, object)));
  for (const [index, result] of results.entries()) {
    const object = objects[index]!;
    const name = `${object.kind}/${object.metadata?.name}`;
    if (result.status === 'fulfilled') {
      if (result.value.changed) changed.push(name);
      continue;
    }
    const message = `${name}: ${(result.reason as Error).message}`;
    await ctx.events.record(owner, 'Warning', 'ApplyFailed', message);
    return {
      condition: { type: 'ComponentsApplied', status: false, reason: 'ApplyFailed', message },
      changed,
    };
  }
  if (changed.length) await ctx.events.record(owner, 'Normal', 'Applied', `Applied ${changed.join(', ')}`);
  return {
    condition: {
      type: 'ComponentsApplied',
      status: true,
      reason: 'Applied',
      message: `${objects.length} objects applied`,
    },
    changed,
  };
}

/**
 * When its Ingress is created or changed without `trustedProxies`, says so once (an Event, not a
 * condition: the server works, but sees every client as the ingress controller's address).
 */
export async function warnIfProxiesUntrusted(
  ctx: ReconcileContext,
  owner: Workload,
  changed: readonly string[],
): Promise<void> {
  const ingress = owner.spec.ingress;
  if (!ingress || ingress.trustedProxies?.length || !changed.some((name) => name.startsWith('Ingress/')))
    return;
  await ctx.events.record(
    owner,
    'Warning',
    'TrustedProxiesUnset',
    "spec.ingress.trustedProxies is empty: the server ignores X-Forwarded-For, so every client behind the Ingress has the ingress controller's address (per-address login limits are shared by everyone, audit lines name the controller). List the controller's pod addresses or CIDR (docs/operator.md).",
  );
}

/** DeploymentAvailable, read from the Deployment's status (the cluster's controllers fill it). */
export function deploymentCondition(
  ctx: ReconcileContext,
  owner: Workload,
  deploymentName: string,
): ConditionInput {
  const deployment = ctx.caches.deployments.get(`${owner.metadata.namespace}/${deploymentName}`) as
    | (KubernetesObject & {
        status?: { availableReplicas?: number; updatedReplicas?: number; observedGeneration?: number };
      })
    | undefined;
  const want = owner.spec.replicas;
  const available = deployment?.status?.availableReplicas ?? 0;
  if (want === 0)
    return { type: 'DeploymentAvailable', status: true, reason: 'ScaledToZero', message: 'replicas is 0' };
  if (available >= want) {
    return {
      type: 'DeploymentAvailable',
      status: true,
      reason: 'Available',
      message: `${available}/${want} replicas available`,
    };
  }
  return {
    type: 'DeploymentAvailable',
    status: false,
    reason: 'Progressing',
    message: `${available}/${want} replicas available`,
  };
}

/** Writes conditions + Ready + extra fields; records an event when Ready flips. */
export async function publishStatus(
  ctx: ReconcileContext,
  object: Workload | (KubernetesObject & { status?: { conditions?: never[] } }),
  inputs: ConditionInput[],
  fields: Record<string, unknown>,
  readyMessage: string,
): Promise<boolean> {
  const typed = object as Workload;
  const generation = typed.metadata.generation ?? 0;
  const ready = readyCondition(inputs, readyMessage);
  const conditions = setConditions(typed.status?.conditions, [ready, ...inputs], generation);
  const status = { ...fields, observedGeneration: generation, conditions };
  const before = conditionOf(typed.status?.conditions, 'Ready');
  const written = await ensureStatus(ctx.client, typed, status);
  if (before?.status !== conditions[0]!.status) {
    const nowReady = conditions[0]!.status === 'True';
    await ctx.events.record(
      typed,
      nowReady ? 'Normal' : 'Warning',
      nowReady ? 'Ready' : ready.reason,
      ready.message,
    );
  }
  return written;
}

export async function freshObject<T extends KubernetesObject>(
  ctx: ReconcileContext,
  cached: T,
): Promise<T | undefined> {
  return ctx.client.get<T>(objectPath(cached));
}
