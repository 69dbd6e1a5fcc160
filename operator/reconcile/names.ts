/** Names and labels of what the operator creates for a resource: one place, so nothing collides. */
import { createHash } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';

export const FIELD_MANAGER = 'wharf-operator';
export const CONFIG_HASH_ANNOTATION = 'wharf.dev/config-hash';
export const DESIRED_HASH_ANNOTATION = 'wharf.dev/desired-hash';
/**
 * On an AuthService's Deployment: the RestAuth services (name, SHA-256 of the password) its pod
 * template is configured with, so the operator knows what a finished rollout serves.
 */
export const RESTAUTH_SERVICES_ANNOTATION = 'wharf.dev/restauth-services';
export const BUCKET_FINALIZER = 'wharf.dev/bucket';
export const SERVER_PORT = 8080;
/** The servers' `/metrics` listener (`metricsPort`): a pod port no Service or Ingress routes. */
export const METRICS_PORT = 9464;
export const CONFIG_DIR = '/etc/wharf/config';
export const CONFIG_FILE = `${CONFIG_DIR}/config.yaml`;
/** Where the volume mode mounts its PersistentVolumeClaim: the fs store's `dataDir`. */
export const DATA_DIR = '/var/lib/wharf';

export const authNames = (name: string) => ({
  workload: `${name}-auth`,
  config: `${name}-auth-config`,
  admin: `${name}-auth-admin`,
  services: `${name}-auth-services`,
  signing: `${name}-auth-signing`,
  data: `${name}-auth-data`,
});

export const registryNames = (name: string) => ({
  workload: `${name}-registry`,
  config: `${name}-registry-config`,
  client: `${name}-registry-client`,
  signing: `${name}-registry-signing`,
  data: `${name}-registry-data`,
});

export const providerNames = (name: string) => ({ client: `${name}-oidc-client` });

/** The RestAuth service name a Registry uses at its AuthService. */
export const registryServiceName = (registry: string) => `registry-${registry}`;

export function labels(instance: string, component: 'auth' | 'registry'): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'wharf',
    'app.kubernetes.io/instance': instance,
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/managed-by': FIELD_MANAGER,
  };
}

export function ownerReference(owner: KubernetesObject) {
  return {
    apiVersion: owner.apiVersion!,
    kind: owner.kind!,
    name: owner.metadata!.name!,
    uid: owner.metadata!.uid!,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** A bucket name from namespace and name: lower case, ≤ 63 characters, unique via a short hash. */
export function defaultBucketName(kind: 'auth' | 'registry', namespace: string, name: string): string {
  const clean = `wharf-${kind}-${namespace}-${name}`.toLowerCase().replace(/[^a-z0-9-]/g, '-');
  if (clean.length <= 63) return clean;
  const hash = createHash('sha256').update(`${namespace}/${name}`).digest('hex').slice(0, 8);
  return `${clean.slice(0, 54).replace(/-+$/, '')}-${hash}`;
}
