/** AuthService → bucket, generated Secrets, ConfigMap, Deployment, Service, Ingress, status. */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { AuthService } from '../api/types.ts';
import { keyOf } from '../kube/informer.ts';
import { ControllerBuilder } from '../runtime/builder.ts';
import { stableHash } from '../runtime/compare.ts';
import { type ConditionInput, condition, isTrue } from '../runtime/conditions.ts';
import { ensureGeneratedSecret, randomPassword, readSecret } from '../runtime/objects.ts';
import { type Caches, keysOfComponent, WORKLOAD_OWNED } from './caches.ts';
import { type ReconcileContext, type ReconcileResult, splitKey } from './context.ts';
import {
  authServiceObjects,
  type ProviderInput,
  publicUrl,
  type RegistryService,
  serviceUrl,
  TOKEN_KEY,
} from './desired.ts';
import { authNames, registryNames, registryServiceName } from './names.ts';
import { openWorkload } from './opening.ts';
import {
  applyChildren,
  bucketName,
  deploymentCondition,
  publishStatus,
  reconcileBucket,
  storageRequeue,
  storageStatus,
  volumeCondition,
  warnIfProxiesUntrusted,
} from './workload.ts';

export const signingKey = () =>
  generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export async function reconcileAuthService(ctx: ReconcileContext, key: string): Promise<ReconcileResult> {
  const opening = await openWorkload(ctx, ctx.caches.authServices, key, 'auth');
  if ('done' in opening) return opening.done;
  const { object: auth, owned } = opening;
  const { namespace, name } = splitKey(key);

  const names = authNames(name);
  const conditions: ConditionInput[] = [];
  const digest: Record<string, unknown> = {};
  /** Every RestAuth service this configuration holds, with the SHA-256 of its password. */
  const services: { name: string; credentialsHash: string }[] = [];

  const storageCondition =
    auth.spec.storage.mode === 'volume'
      ? await volumeCondition(ctx, auth, 'auth')
      : await reconcileBucket(ctx, auth, 'auth');
  conditions.push(storageCondition);

  // Bootstrap admin: a referenced Secret, or one the operator generates once.
  let adminSecret = { name: names.admin, key: 'password' };
  if (auth.spec.adminSecretRef) {
    adminSecret = { name: auth.spec.adminSecretRef.name, key: 'password' };
    const data = readSecret(ctx, namespace, adminSecret.name);
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
    const admin = await ensureGeneratedSecret(ctx, {
      ...owned,
      name: names.admin,
      keys: { password: randomPassword },
    });
    digest.admin = admin.data.password;
    conditions.push(condition('SecretsReady', true, 'SecretsReady', 'admin and service credentials exist'));
  }
  if (auth.spec.services.length) {
    const keys = Object.fromEntries(auth.spec.services.map((service) => [service.name, randomPassword]));
    const passwords = (await ensureGeneratedSecret(ctx, { ...owned, name: names.services, keys })).data;
    digest.services = passwords;
    for (const service of auth.spec.services)
      services.push({ name: service.name, credentialsHash: sha256(passwords[service.name] ?? '') });
  }
  digest.signing = stableHash(
    (
      await ensureGeneratedSecret(ctx, {
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
    const serviceName = registryServiceName(registry.metadata.name);
    registries.push({ serviceName, secretName: registryNames(registry.metadata.name).client });
    services.push({ name: serviceName, credentialsHash: hash });
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
      const credentials = readSecret(ctx, namespace, provider.status.clientSecretName);
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
  // What Registries read to know their credentials are configured (a watch on this resource tells
  // them): the services just applied, or, when applying failed, those registered before.
  const registeredServices =
    applied.condition.status === true
      ? services.filter((service, index) => services.findIndex((s) => s.name === service.name) === index)
      : (auth.status?.registeredServices ?? []);

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
      registeredServices,
    },
    'AuthService is serving',
  );
  return storageRequeue(ctx, auth, storageCondition);
}

/** Secrets an AuthService names itself (S3 credentials, the admin password). */
function secretsReferencedBy(auth: AuthService): string[] {
  return [auth.spec.storage.credentialsSecretRef?.name, auth.spec.adminSecretRef?.name].filter(
    (name): name is string => Boolean(name),
  );
}

export const authServiceController = new ControllerBuilder<Caches, ReconcileContext>(
  'AuthService',
  'authServices',
)
  .owns(...WORKLOAD_OWNED)
  .watches('volumeClaims', (claim) => keysOfComponent(claim, 'auth'))
  // Its Registries become RestAuth services (their credentialsHash), lend it a public URL and proxies.
  .watches(
    'registries',
    (registry) => [`${registry.metadata.namespace}/${registry.spec.authServiceRef.name}`],
    // What reconcileAuthService reads of a Registry (not its conditions, which change often).
    (registry) => ({
      ref: registry.spec.authServiceRef.name,
      deleting: Boolean(registry.metadata.deletionTimestamp),
      credentialsHash: registry.status?.credentialsHash,
      ingress: registry.spec.ingress,
    }),
  )
  .watches('providers', (provider, caches) =>
    caches.authServices
      .list()
      .filter(
        (auth) =>
          auth.metadata.namespace === provider.metadata.namespace &&
          auth.spec.openIdProviders.some((ref) => ref.name === provider.metadata.name),
      )
      .map(keyOf),
  )
  // Its own Secrets, and the OpenID client credentials of its providers.
  .watches('secrets', (secret, caches) => {
    const { namespace, name = '' } = secret.metadata ?? {};
    return caches.authServices
      .list()
      .filter(
        (auth) =>
          auth.metadata.namespace === namespace &&
          (secretsReferencedBy(auth).includes(name) ||
            auth.spec.openIdProviders.some(
              (ref) => caches.providers.get(`${namespace}/${ref.name}`)?.status?.clientSecretName === name,
            )),
      )
      .map(keyOf);
  })
  .complete(reconcileAuthService);
