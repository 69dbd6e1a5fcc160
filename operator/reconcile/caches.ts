/**
 * The informer caches the reconcilers read from, one per kind, in the watched namespace (or all).
 * Owned objects are selected by the operator's managed-by label, so the caches hold what the
 * operator made and nothing else. Secrets are the exception: a resource also names Secrets its user
 * made (S3 and proxy credentials, an admin password, OpenID client credentials), unlabelled, so that
 * cache selects by type instead and leaves out the kinds wharf never reads (service-account tokens,
 * TLS certificates, image pull Secrets, Helm releases), which are most Secrets in a cluster.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { AuthService, OpenIdProvider, Registry } from '../api/types.ts';
import { ObjectCache } from '../kube/cache.ts';
import { type KubeClient, resourcePath } from '../kube/client.ts';
import { Informer } from '../kube/informer.ts';
import { FIELD_MANAGER } from './names.ts';

export const MANAGED_SELECTOR = `app.kubernetes.io/managed-by=${FIELD_MANAGER}`;
export const SECRET_TYPES_NOT_READ = [
  'kubernetes.io/service-account-token',
  'kubernetes.io/tls',
  'kubernetes.io/dockercfg',
  'kubernetes.io/dockerconfigjson',
  'helm.sh/release.v1',
];

export type SecretObject = KubernetesObject & { type?: string; data?: Record<string, string> };
export type VolumeClaimObject = KubernetesObject & { status?: { phase?: string } };

export type Caches = {
  providers: Informer<OpenIdProvider>;
  authServices: Informer<AuthService>;
  registries: Informer<Registry>;
  deployments: Informer<KubernetesObject>;
  services: Informer<KubernetesObject>;
  ingresses: Informer<KubernetesObject>;
  configMaps: Informer<KubernetesObject>;
  volumeClaims: Informer<VolumeClaimObject>;
  serviceAccounts: Informer<KubernetesObject>;
  disruptionBudgets: Informer<KubernetesObject>;
  secrets: Informer<SecretObject>;
};

/** What an AuthService or a Registry owns: a change to any of them wakes its owner. */
export const WORKLOAD_OWNED = [
  'deployments',
  'services',
  'ingresses',
  'configMaps',
  'secrets',
  'serviceAccounts',
  'disruptionBudgets',
] as const satisfies readonly (keyof Caches)[];

const SOURCES: Record<
  keyof Caches,
  { apiVersion: string; kind: string; labelSelector?: string; fieldSelector?: string }
> = {
  providers: { apiVersion: 'wharf.dev/v1alpha1', kind: 'OpenIdProvider' },
  authServices: { apiVersion: 'wharf.dev/v1alpha1', kind: 'AuthService' },
  registries: { apiVersion: 'wharf.dev/v1alpha1', kind: 'Registry' },
  deployments: { apiVersion: 'apps/v1', kind: 'Deployment', labelSelector: MANAGED_SELECTOR },
  services: { apiVersion: 'v1', kind: 'Service', labelSelector: MANAGED_SELECTOR },
  ingresses: { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', labelSelector: MANAGED_SELECTOR },
  configMaps: { apiVersion: 'v1', kind: 'ConfigMap', labelSelector: MANAGED_SELECTOR },
  volumeClaims: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', labelSelector: MANAGED_SELECTOR },
  serviceAccounts: { apiVersion: 'v1', kind: 'ServiceAccount', labelSelector: MANAGED_SELECTOR },
  disruptionBudgets: {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    labelSelector: MANAGED_SELECTOR,
  },
  secrets: {
    apiVersion: 'v1',
    kind: 'Secret',
    fieldSelector: SECRET_TYPES_NOT_READ.map((type) => `type!=${type}`).join(','),
  },
};

/** One informer per kind, and the cache-backed reader over them. Nothing is listed until started. */
export function createCaches(
  client: KubeClient,
  watchNamespace: string | undefined,
  onError: (error: unknown) => void,
): { caches: Caches; cache: ObjectCache } {
  const entries = Object.entries(SOURCES).map(
    ([name, { apiVersion, kind, labelSelector, fieldSelector }]) => {
      const informer = new Informer<KubernetesObject>(
        client,
        resourcePath(apiVersion, kind, watchNamespace),
        {
          onError,
          ...(labelSelector ? { labelSelector } : {}),
          ...(fieldSelector ? { fieldSelector } : {}),
        },
      );
      return { name, apiVersion, kind, informer };
    },
  );
  const caches = Object.fromEntries(
    entries.map(({ name, informer }) => [name, informer]),
  ) as unknown as Caches;
  return { caches, cache: new ObjectCache(entries) };
}

/**
 * The key of the resource an object was made for, from its labels: for objects without an owner
 * reference (the volume mode's claims outlive their resource under deletionPolicy: Retain).
 */
export function keysOfComponent(object: KubernetesObject, component: 'auth' | 'registry'): string[] {
  const labels = object.metadata?.labels ?? {};
  const instance = labels['app.kubernetes.io/instance'];
  return labels['app.kubernetes.io/component'] === component && instance
    ? [`${object.metadata?.namespace ?? ''}/${instance}`]
    : [];
}
