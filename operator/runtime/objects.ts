/**
 * Writing to the cluster only when something differs: server-side apply for owned objects, create
 * for generated Secrets (their random content must never be regenerated), merge patches for status
 * and finalizers. Each helper reads from the informer caches first and reports whether it wrote.
 */
import { randomBytes } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ObjectCache } from '../kube/cache.ts';
import { isConflict, isNotFound, type KubeClient, objectPath, resourcePath } from '../kube/client.ts';
import { DESIRED_HASH_ANNOTATION, FIELD_MANAGER } from '../reconcile/names.ts';
import { canonicalJson, isSubset, stableHash } from './compare.ts';

/** Writes go to the API, reads to the caches. */
export interface Kube {
  client: KubeClient;
  cache: ObjectCache;
}

type SecretObject = KubernetesObject & { data?: Record<string, string> };

/** `desired` with the annotation that records its hash, as it is applied. */
function withDesiredHash(desired: KubernetesObject): KubernetesObject {
  const hash = stableHash(desired).slice(0, 32);
  return {
    ...desired,
    metadata: {
      ...desired.metadata,
      annotations: { ...desired.metadata?.annotations, [DESIRED_HASH_ANNOTATION]: hash },
    },
  };
}

/**
 * Whether the cached object already matches `desired`: same desired-hash annotation (so a field
 * dropped from `desired` is noticed) and every desired field equal.
 */
export function isApplied(cache: ObjectCache, desired: KubernetesObject): boolean {
  const observed = cache.getLike(desired);
  return observed !== undefined && isSubset(withDesiredHash(desired), observed);
}

/** Applies `desired` unless the live object already matches it (see isApplied). */
export async function ensureApplied(
  { client, cache }: Kube,
  desired: KubernetesObject,
): Promise<{ changed: boolean; object: KubernetesObject }> {
  const withHash = withDesiredHash(desired);
  const observed = cache.getLike(desired);
  if (observed && isSubset(withHash, observed)) return { changed: false, object: observed };
  return { changed: true, object: await client.apply(withHash) };
}

export interface GeneratedSecret {
  name: string;
  namespace: string;
  owner: KubernetesObject;
  labels: Record<string, string>;
  ownerReference: Record<string, unknown>;
  /** Each key and how to generate its value when missing. */
  keys: Record<string, () => string>;
}

/** 32 random bytes, base64url: for passwords a person never types. */
export const randomPassword = () => randomBytes(32).toString('base64url');

/**
 * Makes sure the Secret exists with every key; existing values are kept. Returns the decoded data
 * and whether it wrote.
 */
export function ensureGeneratedSecret(
  { client, cache }: Kube,
  secret: GeneratedSecret,
): Promise<{ changed: boolean; data: Record<string, string> }> {
  return fillSecret(client, secret, cache.get<SecretObject>('v1', 'Secret', secret.namespace, secret.name));
}

async function fillSecret(
  client: KubeClient,
  secret: GeneratedSecret,
  observed: SecretObject | undefined,
): Promise<{ changed: boolean; data: Record<string, string> }> {
  const path = resourcePath('v1', 'Secret', secret.namespace, secret.name);
  const data = decode(observed?.data);
  const missing = Object.keys(secret.keys).filter((key) => !data[key]);
  if (observed && missing.length === 0) return { changed: false, data };
  for (const key of missing) data[key] = secret.keys[key]!();
  const stringData = Object.fromEntries(missing.map((key) => [key, data[key]!]));
  if (!observed) {
    try {
      await client.create({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: secret.name,
          namespace: secret.namespace,
          labels: secret.labels,
          ownerReferences: [secret.ownerReference as never],
        },
        type: 'Opaque',
        stringData,
      } as KubernetesObject);
    } catch (error) {
      // It exists though the cache has not seen it yet (just created by an earlier reconcile): read
      // it from the API, use what is there, never overwrite a generated value.
      if (!isConflict(error)) throw error;
      const live = await client.get<SecretObject>(path);
      if (!live) throw error;
      return fillSecret(client, secret, live);
    }
  } else {
    await client.mergePatch(path, { stringData });
  }
  return { changed: true, data };
}

export function decode(data: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]),
  );
}

/** A Secret's decoded data read from the API (for tools and tests; reconcilers read the cache). */
export async function fetchSecret(
  client: KubeClient,
  namespace: string,
  name: string,
): Promise<Record<string, string> | undefined> {
  const secret = await client.get<SecretObject>(resourcePath('v1', 'Secret', namespace, name));
  return secret ? decode(secret.data) : undefined;
}

/** A Secret's decoded data from the cache; undefined when it does not exist. */
export function readSecret(
  { cache }: Pick<Kube, 'cache'>,
  namespace: string,
  name: string,
): Record<string, string> | undefined {
  const secret = cache.get<SecretObject>('v1', 'Secret', namespace, name);
  return secret ? decode(secret.data) : undefined;
}

/** Writes `status` through the status subresource unless it equals what is there. */
export async function ensureStatus(
  client: KubeClient,
  object: KubernetesObject & { status?: unknown },
  status: Record<string, unknown>,
): Promise<boolean> {
  if (canonicalJson(object.status ?? {}) === canonicalJson(status)) return false;
  const current = (object.status ?? {}) as Record<string, unknown>;
  // Merge patch: fields we no longer report are set to null so they disappear.
  const patch: Record<string, unknown> = { ...status };
  for (const key of Object.keys(current)) if (!(key in status)) patch[key] = null;
  await client.mergePatch(`${objectPath(object)}/status`, { status: patch });
  return true;
}

/** Adds or removes a finalizer, guarded by resourceVersion so a concurrent change is not lost. */
export async function setFinalizer(
  client: KubeClient,
  object: KubernetesObject,
  finalizer: string,
  present: boolean,
) {
  const finalizers = object.metadata?.finalizers ?? [];
  if (finalizers.includes(finalizer) === present) return false;
  const next = present ? [...finalizers, finalizer] : finalizers.filter((item) => item !== finalizer);
  try {
    await client.mergePatch(objectPath(object), {
      metadata: { finalizers: next, resourceVersion: object.metadata?.resourceVersion },
    });
  } catch (error) {
    // Removing it from an object already gone: an earlier reconcile removed it and the cache has
    // not seen the deletion yet. Nothing is left to do; not a failure.
    if (!present && isNotFound(error)) return false;
    throw error;
  }
  return true;
}

export { FIELD_MANAGER };
