/** Registry → bucket, its RestAuth credentials, ConfigMap, Deployment, Service, one Ingress, status. */
import { createHash } from 'node:crypto';
import type { AuthService, Registry } from '../api/types.ts';
import { keyOf } from '../kube/informer.ts';
import { ControllerBuilder } from '../runtime/builder.ts';
import { stableHash } from '../runtime/compare.ts';
import { type ConditionInput, condition, isTrue } from '../runtime/conditions.ts';
import { ensureGeneratedSecret, randomPassword, readSecret } from '../runtime/objects.ts';
import { signingKey } from './auth-service.ts';
import { type Caches, keysOfComponent, WORKLOAD_OWNED } from './caches.ts';
import { type ReconcileContext, type ReconcileResult, splitKey } from './context.ts';
import { publicUrl, registryObjects, serviceUrl } from './desired.ts';
import { registryNames, registryServiceName } from './names.ts';
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

export async function reconcileRegistry(ctx: ReconcileContext, key: string): Promise<ReconcileResult> {
  const opening = await openWorkload(ctx, ctx.caches.registries, key, 'registry');
  if ('done' in opening) return opening.done;
  const { object: registry, owned } = opening;
  const { namespace, name } = splitKey(key);

  const names = registryNames(name);
  const authName = registry.spec.authServiceRef.name;
  const serviceName = registryServiceName(name);
  const conditions: ConditionInput[] = [];

  // The bucket (S3) or claim and the Secrets (API) are independent: check them side by side.
  const onVolume = registry.spec.storage.mode === 'volume';
  const storage = (
    onVolume ? volumeCondition(ctx, registry, 'registry') : reconcileBucket(ctx, registry, 'registry')
  ).catch(
    (error: unknown): ConditionInput =>
      condition(onVolume ? 'VolumeReady' : 'BucketReady', false, 'Error', (error as Error).message),
  );
  const [client, signing] = await Promise.all([
    ensureGeneratedSecret(ctx, { ...owned, name: names.client, keys: { password: randomPassword } }),
    ensureGeneratedSecret(ctx, { ...owned, name: names.signing, keys: { 'private.pem': signingKey } }),
  ]);

  const storageCondition = await storage;
  conditions.push(storageCondition);

  const auth = ctx.caches.authServices.get(`${namespace}/${authName}`);
  // The AuthService configures this Registry's credentials once it sees credentialsHash in our
  // status, and says so in its own once every pod that answers has them: registered means this
  // very password, served by whichever AuthService pod a login reaches.
  const credentialsHash = createHash('sha256')
    .update(client.data.password ?? '')
    .digest('hex');
  const registration = registrationAt(auth, serviceName);
  conditions.push(authServiceCondition(auth, authName));
  conditions.push(
    registration?.credentialsHash === credentialsHash
      ? condition(
          'CredentialsRegistered',
          true,
          'Registered',
          `RestAuth service ${serviceName} is configured at ${authName}`,
        )
      : registration
        ? condition(
            'CredentialsRegistered',
            false,
            'Outdated',
            `AuthService ${authName} still has an older password for service ${serviceName}`,
          )
        : condition(
            'CredentialsRegistered',
            false,
            'Pending',
            `waiting for AuthService ${authName} to configure service ${serviceName}`,
          ),
  );

  // Upstream credentials of the proxy caches: a change rolls the pods (the server reads them at start).
  const proxyCredentials = readProxyCredentials(ctx, registry);
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
      credentialsHash,
    },
    'Registry is serving',
  );
  return storageRequeue(ctx, registry, storageCondition);
}

/** This Registry's entry in its AuthService's status.registeredServices. */
function registrationAt(auth: AuthService | undefined, serviceName: string) {
  return auth?.status?.registeredServices?.find((service) => service.name === serviceName);
}

/**
 * AuthServiceReady: the AuthService answers, i.e. has an available pod (its `Available`), the old
 * ones while a rollout replaces them: another Registry's registration rolling out there does not
 * make this one not Ready. Its own credentials working is CredentialsRegistered's business.
 */
function authServiceCondition(auth: AuthService | undefined, authName: string): ConditionInput {
  if (!auth)
    return condition(
      'AuthServiceReady',
      false,
      'AuthServiceNotFound',
      `AuthService ${authName} does not exist`,
    );
  return isTrue(auth.status?.conditions, 'Available')
    ? condition(
        'AuthServiceReady',
        true,
        'AuthServiceAvailable',
        `AuthService ${authName} has pods available`,
      )
    : condition(
        'AuthServiceReady',
        false,
        'AuthServiceUnavailable',
        `AuthService ${authName} has no pod available yet`,
      );
}

/** The proxies' credential Secrets: a digest of their contents, and a condition when one is missing. */
function readProxyCredentials(
  ctx: ReconcileContext,
  registry: Registry,
): { digest: string; condition?: ConditionInput } {
  const contents: Record<string, string> = {};
  const missing: string[] = [];
  for (const proxy of registry.spec.oci.proxies) {
    const ref = proxy.credentialsSecretRef;
    if (!ref) continue;
    const secret = readSecret(ctx, registry.metadata.namespace, ref.name);
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

/** Secrets a Registry names (S3 and proxy credentials): a change to one reaches it at once. */
export function secretsReferencedBy(registry: Registry): string[] {
  return [
    registry.spec.storage.credentialsSecretRef?.name,
    ...registry.spec.oci.proxies.map((proxy) => proxy.credentialsSecretRef?.name),
  ].filter((name): name is string => Boolean(name));
}

export const registryController = new ControllerBuilder<Caches, ReconcileContext>('Registry', 'registries')
  // Its reconciles mostly wait on the apiserver and S3: a burst of new Registries needs more than 4
  // (bench/operator.ts, 100 at once: 9.3 s to all Ready with 16 workers, 8.3 s with 32).
  .maxConcurrentReconciles(32)
  .owns(...WORKLOAD_OWNED)
  // The volume mode's claim carries no owner reference (it may outlive the Registry): its labels say whose it is.
  .watches('volumeClaims', (claim) => keysOfComponent(claim, 'registry'))
  // The AuthService publishes which credentials it has registered, and whether it is Ready.
  .watches(
    'authServices',
    (auth, caches) =>
      caches.registries
        .list()
        .filter(
          (registry) =>
            registry.metadata.namespace === auth.metadata.namespace &&
            registry.spec.authServiceRef.name === auth.metadata.name,
        )
        .map(keyOf),
    // What reconcileRegistry reads of its AuthService: whether it answers, the prefix, and its own
    // registration (not Ready, which flips with every rollout: one more Registry registering there
    // does not wake the others).
    (auth, key) => ({
      available: isTrue(auth.status?.conditions, 'Available'),
      prefix: auth.spec.restauthPathPrefix,
      registration: registrationAt(auth, registryServiceName(splitKey(key).name)),
    }),
  )
  .watches('secrets', (secret, caches) =>
    caches.registries
      .list()
      .filter(
        (registry) =>
          registry.metadata.namespace === secret.metadata?.namespace &&
          secretsReferencedBy(registry).includes(secret.metadata?.name ?? ''),
      )
      .map(keyOf),
  )
  .complete(reconcileRegistry);
