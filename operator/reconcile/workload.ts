/**
 * The part AuthService and Registry share: the bucket with its finalizer, applying the owned
 * objects, reading the Deployment's availability, and writing status and events only on change.
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import { probeConditionalWrites } from '../../server/store/s3-conditional-probe.ts';
import { type AuthService, type Registry, VOLUME_REPLICAS_MESSAGE } from '../api/types.ts';
import { resourcePath } from '../kube/client.ts';
import { canonicalJson } from '../runtime/compare.ts';
import {
  type ConditionInput,
  condition,
  conditionOf,
  readyCondition,
  setConditions,
} from '../runtime/conditions.ts';
import { ensureApplied, ensureStatus, readSecret, setFinalizer } from '../runtime/objects.ts';
import { deleteBucket, ensureBucket } from './bucket.ts';
import type { ReconcileContext, ReconcileResult } from './context.ts';
import { deploymentReplicas, optionalObjects, volumeSettings } from './desired.ts';
import { authNames, BUCKET_FINALIZER, defaultBucketName, registryNames } from './names.ts';
import type { PooledClient } from './s3-clients.ts';

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

/**
 * The shared S3 client for the resource's bucket, or why there is none: a credentialsSecretRef
 * whose Secret lacks the key pair. Without a reference the SDK's default chain is used (workload
 * identity).
 */
function s3For(ctx: ReconcileContext, object: Workload): PooledClient | { missing: string } {
  const { storage } = object.spec;
  const ref = storage.credentialsSecretRef;
  if (!ref) return ctx.s3.get(storage, undefined);
  const secret = readSecret(ctx, object.metadata.namespace, ref.name);
  const accessKeyId = secret?.[ref.accessKeyIdKey];
  const secretAccessKey = secret?.[ref.secretAccessKeyKey];
  if (!accessKeyId || !secretAccessKey)
    return { missing: `Secret ${ref.name} is missing or lacks the access key pair` };
  return ctx.s3.get(storage, { accessKeyId, secretAccessKey });
}

/** What a passed bucket check covers: the client, the bucket, and the storage settings checked. */
function bucketCheckKey(object: Workload, component: 'auth' | 'registry', identity: string): string {
  const { storage } = object.spec;
  return canonicalJson({
    identity,
    bucket: bucketName(object, component),
    prefix: storage.prefix,
    abortAfterDays: storage.abortIncompleteUploadsAfterDays,
  });
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
    const client = s3For(ctx, object);
    if ('missing' in client) {
      await ctx.events.record(
        object,
        'Warning',
        'BucketDeleteBlocked',
        `${client.missing}; cannot delete the bucket`,
      );
      return { requeueAfterMs: 10_000 };
    }
    await deleteBucket(client.client, bucket);
    ctx.s3.forget(bucketCheckKey(object, component, client.identity));
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

/**
 * BucketReady: the bucket exists with its lifecycle rule, and passes the servers' own start-up probe
 * (If-None-Match and If-Match on PUT and on multipart completion): Ready here means a server starts.
 */
export async function reconcileBucket(
  ctx: ReconcileContext,
  object: Workload,
  component: 'auth' | 'registry',
): Promise<ConditionInput> {
  const bucket = bucketName(object, component);
  const { storage } = object.spec;
  const generation = object.metadata.generation ?? 0;
  const previous = conditionOf(object.status?.conditions, 'BucketReady');
  const client = s3For(ctx, object);
  if ('missing' in client) return condition('BucketReady', false, 'CredentialsMissing', client.missing);
  const s3 = client.client;
  const check = bucketCheckKey(object, component, client.identity);
  // Checked a moment ago through this client with these settings: say what was said then.
  const passed = ctx.s3.recentlyPassed(check);
  if (passed) return condition('BucketReady', true, 'BucketReady', passed);
  try {
    const report = await ensureBucket(s3, bucket, storage.abortIncompleteUploadsAfterDays);
    if (report.created)
      await ctx.events.record(object, 'Normal', 'BucketCreated', `Created bucket ${bucket}`);
    // The probe writes to the bucket; once per generation is enough.
    const checked =
      previous?.status === 'True' && previous.observedGeneration === generation && !report.created;
    const refusal = checked
      ? undefined
      : await probeConditionalWrites({ client: s3, bucket, prefix: storage.prefix });
    if (refusal?.problem === 'bucket-unusable')
      return condition('BucketReady', false, 'BucketUnusable', `bucket ${bucket}: ${refusal.detail}`);
    if (refusal)
      return condition(
        'BucketReady',
        false,
        'ConditionalWritesUnsupported',
        `${storage.endpoint ?? 'the S3 endpoint'} does not honour conditional writes on bucket ${bucket} (${refusal.detail}); the servers refuse to start on it: use an endpoint that supports If-Match and If-None-Match (AWS S3, or a recent MinIO, Ceph RGW or R2)`,
      );
    const lifecycle = report.lifecycleSupported
      ? 'with a lifecycle rule for abandoned multipart uploads'
      : 'the endpoint rejects lifecycle rules for abandoned multipart uploads (MinIO expires them itself)';
    const message = `bucket ${bucket} is ready, ${lifecycle}`;
    ctx.s3.markPassed(check, message);
    return condition('BucketReady', true, 'BucketReady', message);
  } catch (error) {
    return condition('BucketReady', false, 'S3Error', `bucket ${bucket}: ${(error as Error).message}`);
  }
}

/**
 * When to look again: soon while the storage is not ready; for a bucket, once the recheck period
 * is over (a resync longer than that would otherwise leave it unchecked); for a claim, on its events.
 */
export function storageRequeue(
  ctx: ReconcileContext,
  object: Workload,
  storage: ConditionInput,
): ReconcileResult {
  if (storage.status !== true) return { requeueAfterMs: 15_000 };
  return object.spec.storage.mode === 'volume' ? {} : { requeueAfterMs: ctx.externalRecheckMs };
}

/**
 * VolumeReady (volume mode): one replica asked for, and the claim not lost. A claim still Pending
 * is no failure here: a WaitForFirstConsumer class binds it once the pod is scheduled, and
 * RolloutComplete reports whether the pod got it.
 */
export async function volumeCondition(
  ctx: ReconcileContext,
  object: Workload,
  component: 'auth' | 'registry',
): Promise<ConditionInput> {
  const claimName = volumeClaimName(object, component);
  if (object.spec.replicas > 1) {
    const modes = volumeSettings(object.spec.storage).accessModes.join(', ');
    return condition(
      'VolumeReady',
      false,
      'ReplicasUnsupported',
      `spec.replicas is ${object.spec.replicas} on claim ${claimName} (${modes}): ${VOLUME_REPLICAS_MESSAGE}; running 1`,
    );
  }
  const claim = ctx.caches.volumeClaims.get(`${object.metadata.namespace}/${claimName}`);
  const phase = claim?.status?.phase ?? 'Pending';
  if (phase === 'Lost')
    return condition('VolumeReady', false, 'ClaimLost', `PersistentVolumeClaim ${claimName} lost its volume`);
  return condition(
    'VolumeReady',
    true,
    phase === 'Bound' ? 'Bound' : 'Pending',
    phase === 'Bound'
      ? `PersistentVolumeClaim ${claimName} is bound`
      : `PersistentVolumeClaim ${claimName} waits for a volume (bound when the pod is scheduled, or by the provisioner)`,
  );
}

/** Applies each object; ComponentsApplied says whether all went through. */
export async function applyChildren(
  ctx: ReconcileContext,
  owner: Workload,
  objects: KubernetesObject[],
): Promise<{ condition: ConditionInput; changed: string[]; live: Map<string, KubernetesObject> }> {
  const changed: string[] = [];
  // What the API answered for each object (`Kind/name`): fresher than the informer cache.
  const live = new Map<string, KubernetesObject>();
  // Independent objects: read and apply them side by side (a Deployment may exist before its
  // ConfigMap for a moment; its pods wait for the volume).
  // Objects the spec no longer wants are looked for (and deleted) at the same time.
  const [results, removal] = await Promise.all([
    Promise.allSettled(objects.map((object) => ensureApplied(ctx, object))),
    removeUnwanted(ctx, owner).then(
      (removed) => ({ removed }),
      (error: unknown) => ({ error: error as Error }),
    ),
  ]);
  for (const [index, result] of results.entries()) {
    const object = objects[index]!;
    const name = `${object.kind}/${object.metadata?.name}`;
    if (result.status === 'fulfilled') {
      if (result.value.changed) changed.push(name);
      live.set(name, result.value.object);
      continue;
    }
    const message = `${name}: ${(result.reason as Error).message}`;
    await ctx.events.record(owner, 'Warning', 'ApplyFailed', message);
    return { condition: condition('ComponentsApplied', false, 'ApplyFailed', message), changed, live };
  }
  if (changed.length) await ctx.events.record(owner, 'Normal', 'Applied', `Applied ${changed.join(', ')}`);
  if ('error' in removal) {
    const message = `removing what the spec no longer asks for: ${removal.error.message}`;
    await ctx.events.record(owner, 'Warning', 'ApplyFailed', message);
    return { condition: condition('ComponentsApplied', false, 'ApplyFailed', message), changed, live };
  }
  const { removed } = removal;
  if (removed.length) await ctx.events.record(owner, 'Normal', 'Removed', `Removed ${removed.join(', ')}`);
  changed.push(...removed);
  return {
    condition: condition('ComponentsApplied', true, 'Applied', `${objects.length} objects applied`),
    changed,
    live,
  };
}

/**
 * Deletes the owned objects this spec no longer wants (the PodDisruptionBudget when replicas drop
 * to one, the ServiceAccount once the spec names its own, the Ingress once `ingress` is removed),
 * only when this resource is their controller: a same-named object someone else made stays.
 */
async function removeUnwanted(ctx: ReconcileContext, owner: Workload): Promise<string[]> {
  const workloadName = (owner.kind === 'AuthService' ? authNames : registryNames)(
    owner.metadata.name,
  ).workload;
  const removed: string[] = [];
  await Promise.all(
    optionalObjects(owner, workloadName)
      .filter((object) => !object.wanted)
      .map(async (object) => {
        // From the cache: an object that is already gone costs no request on every resync.
        const live = ctx.cache.get(object.apiVersion, object.kind, owner.metadata.namespace, object.name);
        if (!live) return;
        const path = resourcePath(object.apiVersion, object.kind, owner.metadata.namespace, object.name);
        const controller = live?.metadata?.ownerReferences?.find((reference) => reference.controller);
        if (controller?.uid !== owner.metadata.uid) return;
        await ctx.client.delete(path);
        removed.push(`${object.kind}/${object.name}`);
      }),
  );
  return removed;
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

interface DeploymentStatus {
  observedGeneration?: number;
  replicas?: number;
  updatedReplicas?: number;
  readyReplicas?: number;
  availableReplicas?: number;
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
}
export type DeploymentObject = KubernetesObject & {
  spec?: { replicas?: number };
  status?: DeploymentStatus;
};

/**
 * RolloutComplete, read from the Deployment's status the way kstatus decides "Current": the
 * Deployment controller has seen the latest spec (observedGeneration), and every replica runs the
 * latest template and is available (updated = available = replicas = spec.replicas). A rollout
 * the controller gave up on (Progressing=False, e.g. ProgressDeadlineExceeded after a bad image)
 * or pods that are not available carry the Deployment's own reason and message.
 */
export function rolloutCondition(deployment: DeploymentObject | undefined, want: number): ConditionInput {
  const type = 'RolloutComplete';
  if (!deployment) return condition(type, false, 'DeploymentMissing', 'the Deployment does not exist yet');
  const name = `Deployment ${deployment.metadata?.name}`;
  const status = deployment.status ?? {};
  const generation = deployment.metadata?.generation ?? 0;
  if ((status.observedGeneration ?? 0) < generation)
    return condition(
      type,
      false,
      'RolloutPending',
      `${name}: generation ${generation} not yet observed by the Deployment controller`,
    );
  const replicas = deployment.spec?.replicas ?? want;
  const updated = status.updatedReplicas ?? 0;
  const available = status.availableReplicas ?? 0;
  const total = status.replicas ?? 0;
  const counts = `${updated} updated, ${available} available, ${total} total of ${replicas} wanted`;
  const stuck = status.conditions?.find((item) => item.type === 'Progressing' && item.status === 'False');
  if (stuck)
    return condition(
      type,
      false,
      stuck.reason ?? 'ProgressDeadlineExceeded',
      `${name}: ${stuck.message ?? ''} (${counts})`,
    );
  if (replicas === 0 && total === 0) return condition(type, true, 'ScaledToZero', `${name} has 0 replicas`);
  if (updated === replicas && available === replicas && total === replicas)
    return condition(type, true, 'RolledOut', `${name}: ${counts}`);
  const unavailable = status.conditions?.find((item) => item.type === 'Available' && item.status === 'False');
  if (unavailable)
    return condition(
      type,
      false,
      unavailable.reason ?? 'MinimumReplicasUnavailable',
      `${name}: ${unavailable.message ?? ''} (${counts})`,
    );
  if (updated < replicas) return condition(type, false, 'RollingOut', `${name}: ${counts}`);
  if (total > updated) return condition(type, false, 'OldReplicasPending', `${name}: ${counts}`);
  return condition(type, false, 'ReplicasUnavailable', `${name}: ${counts}`);
}

/**
 * Available: some pod of the Deployment answers (the old ones while a rollout replaces them), as
 * the Deployment's own availableReplicas says; what those that depend on the resource need, where
 * RolloutComplete says whether the latest configuration is everywhere.
 */
export function availableCondition(deployment: DeploymentObject | undefined, want: number): ConditionInput {
  const available = deployment?.status?.availableReplicas ?? 0;
  if (available > 0) return condition('Available', true, 'PodsAvailable', `${available} pods available`);
  if ((deployment?.spec?.replicas ?? want) === 0)
    return condition('Available', true, 'ScaledToZero', 'no pods asked for');
  return condition('Available', false, 'NoPodsAvailable', 'no pod is available yet');
}

/** The owner's Deployment as the API answered this reconcile's apply, otherwise from the cache. */
export function liveDeployment(
  ctx: ReconcileContext,
  owner: Workload,
  deploymentName: string,
  live?: ReadonlyMap<string, KubernetesObject>,
): DeploymentObject | undefined {
  return (live?.get(`Deployment/${deploymentName}`) ??
    ctx.caches.deployments.get(`${owner.metadata.namespace}/${deploymentName}`)) as
    | DeploymentObject
    | undefined;
}

/**
 * RolloutComplete of the owner's Deployment: as the API answered this reconcile's apply when it
 * did (a Deployment just given a new template must not look rolled out from the cache's older
 * copy), otherwise from the informer cache.
 */
export function deploymentCondition(
  ctx: ReconcileContext,
  owner: Workload,
  deploymentName: string,
  live?: ReadonlyMap<string, KubernetesObject>,
): ConditionInput {
  return rolloutCondition(liveDeployment(ctx, owner, deploymentName, live), deploymentReplicas(owner));
}

/** Writes conditions + Ready + extra fields; records an event when Ready flips or fails anew. */
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
  // An event when Ready flips, and when a not-Ready resource fails for a new reason (a rollout
  // that was progressing and is now stuck).
  if (
    before?.status !== conditions[0]!.status ||
    (before.status !== 'True' && before.reason !== ready.reason)
  ) {
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
