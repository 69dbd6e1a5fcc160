/** AuthService → bucket, generated Secrets, ConfigMap, Deployment, Service, Ingress, status. */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { AuthService } from '../api/types.ts';
import { resourcePath } from '../kube/client.ts';
import { stableHash } from '../runtime/compare.ts';
import { type ConditionInput, condition, isTrue } from '../runtime/conditions.ts';
import { ensureGeneratedSecret, randomPassword, readSecret, setFinalizer } from '../runtime/objects.ts';
import { type ReconcileContext, type ReconcileResult, splitKey } from './context.ts';
import {
  authServiceObjects,
  type ProviderInput,
  publicUrl,
  type RegistryService,
  serviceUrl,
  TOKEN_KEY,
} from './desired.ts';
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

export const signingKey = () =>
  generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();

export async function reconcileAuthService(ctx: ReconcileContext, key: string): Promise<ReconcileResult> {
  const { namespace, name } = splitKey(key);
  const auth = await ctx.client.get<AuthService>(
    resourcePath('wharf.dev/v1alpha1', 'AuthService', namespace, name),
  );
  if (!auth) return {};
  if (auth.metadata.deletionTimestamp) return finalizeWorkload(ctx, auth, 'auth');
  await setFinalizer(ctx.client, auth, BUCKET_FINALIZER, true);

  const names = authNames(name);
  const owned = {
    namespace,
    owner: auth,
    labels: labels(name, 'auth'),
    ownerReference: ownerReference(auth),
  };
  const conditions: ConditionInput[] = [];
  const digest: Record<string, unknown> = {};

  conditions.push(
    auth.spec.storage.mode === 'volume'
      ? await volumeCondition(ctx, auth, 'auth')
      : await reconcileBucket(ctx, auth, 'auth'),
  );

  // Bootstrap admin: a referenced Secret, or one the operator generates once.
  let adminSecret = { name: names.admin, key: 'password' };
  if (auth.spec.adminSecretRef) {
    adminSecret = { name: auth.spec.adminSecretRef.name, key: 'password' };
    const data = await readSecret(ctx.client, namespace, adminSecret.name);
    digest.admin = data?.password;
    conditions.push(
      data?.password
        ? condition('SecretsReady', true, 'SecretsReady', 'admin and service credentials exist')
        : condition(
            'SecretsReady',
            false,
            'AdminSecretMissing',
            `Secret ${adminSecret.name} is missing or has no "password" key`,
          ),
    );
  } else {
    const admin = await ensureGeneratedSecret(ctx.client, {
      ...owned,
      name: names.admin,
      keys: { password: randomPassword },
    });
    digest.admin = admin.data.password;
    conditions.push(condition('SecretsReady', true, 'SecretsReady', 'admin and service credentials exist'));
  }
  if (auth.spec.services.length) {
    const keys = Object.fromEntries(auth.spec.services.map((service) => [service.name, randomPassword]));
    digest.services = (
      await ensureGeneratedSecret(ctx.client, { ...owned, name: names.services, keys })
    ).data;
  }
  digest.signing = stableHash(
    (
      await ensureGeneratedSecret(ctx.client, {
        ...owned,
        name: names.signing,
        keys: { 'private.pem': signingKey, [TOKEN_KEY]: () => randomBytes(32).toString('base64') },
      })
    ).data,
  );

  // Registries that use this AuthService become RestAuth services once their client Secret exists.
  const registries: RegistryService[] = [];
  const candidates = ctx.caches.registries
    .list()
    .filter(
      (registry) =>
        registry.metadata.namespace === namespace &&
        registry.spec.authServiceRef.name === name &&
        !registry.metadata.deletionTimestamp,
    )
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  for (const registry of candidates) {
    // The Registry publishes a hash of its password once its client Secret exists: no Secret reads here.
    const hash = registry.status?.credentialsHash;
    if (!hash) continue;
    registries.push({
      serviceName: registryServiceName(registry.metadata.name),
      secretName: registryNames(registry.metadata.name).client,
    });
    digest[`registry:${registry.metadata.name}`] = hash;
  }

  // OpenID providers: only those whose checks pass are configured.
  const providers: ProviderInput[] = [];
  const problems: string[] = [];
  for (const ref of auth.spec.openIdProviders) {
    const provider = ctx.caches.providers.get(`${namespace}/${ref.name}`);
    if (!provider) problems.push(`${ref.name}: not found`);
    else if (!isTrue(provider.status?.conditions, 'Ready') || !provider.status?.clientSecretName)
      problems.push(`${ref.name}: not ready`);
    else {
      const credentials = await readSecret(ctx.client, namespace, provider.status.clientSecretName);
      if (!credentials?.client_id || !credentials.client_secret)
        problems.push(`${ref.name}: client Secret incomplete`);
      else {
        providers.push({
          provider,
          secretName: provider.status.clientSecretName,
          clientId: credentials.client_id,
        });
        digest[`provider:${ref.name}`] = stableHash({ spec: provider.spec, credentials });
      }
    }
  }
  conditions.push(
    problems.length
      ? condition('ProvidersReady', false, 'ProviderNotReady', problems.join('; '))
      : condition('ProvidersReady', true, 'ProvidersReady', `${providers.length} OpenID providers`),
  );

  const objects = authServiceObjects(auth, {
    image: ctx.defaultImage,
    bucket: bucketName(auth, 'auth'),
    adminSecret,
    registries,
    providers,
    secretsDigest: stableHash(digest),
    fallbackPublicUrl: candidates.map((registry) => publicUrl(registry.spec.ingress)).find(Boolean),
    registryTrustedProxies: candidates.flatMap((registry) => registry.spec.ingress?.trustedProxies ?? []),
  });
  const applied = await applyChildren(ctx, auth, objects);
  await warnIfProxiesUntrusted(ctx, auth, applied.changed);
  conditions.push(applied.condition);
  conditions.push(deploymentCondition(ctx, auth, names.workload, applied.live));
  // Registries check that their credentials are in this configuration: let them look again.
  if (applied.changed.length)
    for (const registry of candidates) ctx.enqueue('Registry', `${namespace}/${registry.metadata.name}`);

  const url =
    publicUrl(auth.spec.ingress) ??
    candidates.map((registry) => publicUrl(registry.spec.ingress)).find(Boolean);
  await publishStatus(
    ctx,
    auth,
    conditions,
    {
      url: serviceUrl(names.workload, namespace),
      ...(url ? { publicUrl: url } : {}),
      ...storageStatus(auth, 'auth'),
      adminSecretName: adminSecret.name,
    },
    'AuthService is serving',
  );
  const storageReady = conditions[0]?.status === true;
  return storageReady ? {} : { requeueAfterMs: 15_000 };
}
