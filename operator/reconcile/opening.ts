/**
 * How an AuthService or Registry reconcile begins: read it from the cache, finalize it when it is
 * being deleted, make sure it carries the finalizer, and the metadata every object it owns gets.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { AuthService, Registry } from '../api/types.ts';
import type { Informer } from '../kube/informer.ts';
import { setFinalizer } from '../runtime/objects.ts';
import type { ReconcileContext, ReconcileResult } from './context.ts';
import { BUCKET_FINALIZER, labels, ownerReference } from './names.ts';
import { finalizeWorkload } from './workload.ts';

/** Metadata of an owned object: the owner's namespace, labels and controller reference. */
export interface OwnedMetadata {
  namespace: string;
  owner: KubernetesObject;
  labels: Record<string, string>;
  ownerReference: ReturnType<typeof ownerReference>;
}

export type Opening<T> = { done: ReconcileResult } | { object: T; owned: OwnedMetadata };

export async function openWorkload<T extends AuthService | Registry>(
  ctx: ReconcileContext,
  cache: Informer<T>,
  key: string,
  component: 'auth' | 'registry',
): Promise<Opening<T>> {
  const object = cache.get(key);
  if (!object) return { done: {} };
  if (object.metadata.deletionTimestamp) return { done: await finalizeWorkload(ctx, object, component) };
  await setFinalizer(ctx.client, object, BUCKET_FINALIZER, true);
  return {
    object,
    owned: {
      namespace: object.metadata.namespace,
      owner: object,
      labels: labels(object.metadata.name, component),
      ownerReference: ownerReference(object),
    },
  };
}
