/** Registry → bucket, its RestAuth credentials, ConfigMap, Deployment, Service, one Ingress, status. */
import { createHash } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { AuthService, Registry } from '../api/types.ts';
import { resourcePath } from '../kube/client.ts';
import { stableHash } from '../runtime/compare.ts';
import { type ConditionInput, condition, isTrue } from '../runtime/conditions.ts';
import { ensureGeneratedSecret, randomPassword, readSecret, setFinalizer } from '../runtime/objects.ts';
import { signingKey } from './auth-service.ts';
import { type ReconcileContext, type ReconcileResult, splitKey } from './context.ts';
import { publicUrl, registryObjects, serviceUrl } from './desired.ts';
import {
  authNames,
  BUCKET_FINALIZER,
  labels,
  ownerReference,
  registryNames,
  registryServiceName,
} from './names.ts';
import {
  applyChildren,
  bucketName,
  deploymentCondition,
  finalizeWorkload,
  publishStatus,
  reconcileBucket,
  storageStatus,
  volumeCondition,
  warnIfProxiesUntrusted,
} from './workload.ts';

export async function reconcileRegistry(ctx: ReconcileContext, key: string): Promise<ReconcileResult> {
  const { namespace, name } = splitKey(key);
  const registry = await ctx.client.get<Registry>(
    resourcePath('wharf.dev/v1alpha1', 'Registry', namespace, name),
  );
  if (!registry) return {};
  if (registry.metadata.deletionTimestamp) return finalizeWorkload(ctx, registry, 'registry');
  await setFinalizer(ctx.client, registry, BUCKET_FINALIZER, true);

  const names = registryNames(name);
  const authName = registry.spec.authServiceRef.name;
  const serviceName = registryServiceName(name);
  const owned = {
    namespace,
    owner: registry,
    labels: labels(name, 'registry'),
    ownerReference: ownerReference(registry),
  };
  const conditions: ConditionInput[] = [];

  // The bucket (S3) or claim and the Secrets (API) are independent: check them side by side.
  const onVolume = registry.spec.storage.mode === 'volume';
  const storage = (
    onVolume ? volumeCondition(ctx, registry, 'registry') : reconcileBucket(ctx, registry, 'registry')
  ).catch(
    (error: unknown): ConditionInput =>
      condition(onVolume ? 'VolumeReady' : 'BucketReady', false, 'Error', (error as Error).message),
  );
  const client = await ensureGeneratedSecret(ctx.client, {
    ...owned,
    name: names.client,
    keys: { password: randomPassword },
  });
  const signing = await ensureGeneratedSecret(ctx.client, {
    ...owned,
    name: names.signing,
    keys: { 'private.pem': signingKey },
  });

  conditions.push(await storage);

  const auth = ctx.caches.authServices.get(`${namespace}/${authName}`) as AuthService | undefined;
  conditions.push(
    !auth
      ? condition('AuthServiceReady', false, 'AuthServiceNotFound', `AuthService ${authName} does not exist`)
      : isTrue(auth.status?.conditions, 'Ready')
        ? condition('AuthServiceReady', true, 'AuthServiceReady', `AuthService ${authName} is ready`)
        : condition('AuthServiceReady', false, 'AuthServiceNotReady', `AuthService ${authName} is not ready`),
  );

  // The AuthService reconciler adds this Registry's credentials to its configuration; confirm it did.
  const authConfig = await ctx.client.get<KubernetesObject & { data?: Record<string, string> }>(
    resourcePath('v1', 'ConfigMap', namespace, authNames(authName).config),
  );
  const registered = authConfig?.data?.['config.yaml']?.includes(JSON.stringify(serviceName)) ?? false;
  conditions.push(
    registered
      ? condition(
          'CredentialsRegistered',
          true,
          'Registered',
          `RestAuth service ${serviceName} is configured at ${authName}`,
        )
      : condition(
          'CredentialsRegistered',
          false,
          'Pending',
          `waiting for AuthService ${authName} to configure service ${serviceName}`,
        ),
  );

  // Upstream credentials of the proxy caches: a change rolls the pods (the server reads them at start).
  const proxyCredentials = await readProxyCredentials(ctx, registry);
  if (proxyCredentials.condition) conditions.push(proxyCredentials.condition);

  const objects = registryObjects(registry, {
    image: ctx.defaultImage,
    bucket: bucketName(registry, 'registry'),
    authServiceName: authName,
    authRestAuthPrefix: auth?.spec.restauthPathPrefix ?? '/restauth',
    serviceName,
    secretsDigest: stableHash({
      client: client.data,
      signing: stableHash(signing.data),
      proxies: proxyCredentials.digest,
    }),
  });
  const applied = await applyChildren(ctx, registry, objects);
  await warnIfProxiesUntrusted(ctx, registry, applied.changed);
  conditions.push(applied.condition);
  conditions.push(deploymentCondition(ctx, registry, names.workload, applied.live));

  const url = publicUrl(registry.spec.ingress);
  await publishStatus(
    ctx,
    registry,
    conditions,
    {
      url: serviceUrl(names.workload, namespace),
      ...(url ? { publicUrl: url } : {}),
      ...storageStatus(registry, 'registry'),
      serviceName,
      credentialsHash: createHash('sha256')
        .update(client.data.password ?? '')
        .digest('hex'),
    },
    'Registry is serving',
  );
  const storageReady = conditions[0]?.status === true;
  return storageReady ? {} : { requeueAfterMs: 15_000 };
}

/** The proxies' credential Secrets: a digest of their contents, and a condition when one is missing. */
async function readProxyCredentials(
  ctx: ReconcileContext,
  registry: Registry,
): Promise<{ digest: string; condition?: ConditionInput }> {
  const contents: Record<string, string> = {};
  const missing: string[] = [];
  for (const proxy of registry.spec.oci.proxies) {
    const ref = proxy.credentialsSecretRef;
    if (!ref) continue;
    const secret = await readSecret(ctx.client, registry.metadata.namespace, ref.name);
    if (!secret?.[ref.usernameKey] || !secret[ref.passwordKey])
      missing.push(`${proxy.namespace}: ${ref.name}`);
    contents[proxy.namespace] = stableHash(secret ?? {});
  }
  if (registry.spec.oci.proxies.every((proxy) => !proxy.credentialsSecretRef)) return { digest: '' };
  return {
    digest: stableHash(contents),
    condition:
      missing.length > 0
        ? condition(
            'ProxyCredentialsReady',
            false,
            'SecretMissing',
            `proxy credential Secrets missing or lacking their keys: ${missing.join(', ')}`,
          )
        : condition('ProxyCredentialsReady', true, 'Found', 'every proxy credential Secret is present'),
  };
}
