/** AuthService → bucket, generated Secrets, ConfigMap, Deployment, Service, Ingress, status. */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { AuthService } from '../api/types.ts';
import { keyOf } from '../kube/informer.ts';
import { ControllerBuilder } from '../runtime/builder.ts';
import { stableHash } from '../runtime/compare.ts';
import { type ConditionInput, condition, conditionOf, isTrue } from '../runtime/conditions.ts';
import { ensureGeneratedSecret, isApplied, randomPassword, readSecret } from '../runtime/objects.ts';
import { type Caches, keysOfComponent, WORKLOAD_OWNED } from './caches.ts';
import { type ReconcileContext, type ReconcileResult, splitKey } from './context.ts';
import {
  authServiceObjects,
  deploymentReplicas,
  type ProviderInput,
  publicUrl,
  type RegistryService,
  type ServiceCredentials,
  serviceUrl,
  TOKEN_KEY,
} from './desired.ts';
import { authNames, RESTAUTH_SERVICES_ANNOTATION, registryNames, registryServiceName } from './names.ts';
import { openWorkload } from './opening.ts';
import {
  applyChildren,
  availableCondition,
  bucketName,
  type DeploymentObject,
  liveDeployment,
  publishStatus,
  reconcileBucket,
  rolloutCondition,
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
  const services: ServiceCredentials[] = [];

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

  // One entry per name (a spec service may share a name with a Registry's): the first wins.
  const configured = services.filter(
    (service, index) => services.findIndex((s) => s.name === service.name) === index,
  );
  const objects = authServiceObjects(auth, {
    image: ctx.defaultImage,
    bucket: bucketName(auth, 'auth'),
    adminSecret,
    registries,
    services: configured,
    providers,
    secretsDigest: stableHash(digest),
    fallbackPublicUrl: candidates.map((registry) => publicUrl(registry.spec.ingress)).find(Boolean),
    registryTrustedProxies: candidates.flatMap((registry) => registry.spec.ingress?.trustedProxies ?? []),
  });
  const hold = rolloutHold(ctx, auth, objects, names.workload);
  const applied = await applyChildren(
    ctx,
    auth,
    hold ? objects.filter((object) => !ROLLING_KINDS.has(object.kind ?? '')) : objects,
  );
  await warnIfProxiesUntrusted(ctx, auth, applied.changed);
  conditions.push(applied.condition.status === true && hold ? hold.condition : applied.condition);
  const deployment = liveDeployment(ctx, auth, names.workload, applied.live);
  const rollout = rolloutCondition(deployment, deploymentReplicas(auth));
  conditions.push(rollout);
  // What its Registries read (a watch on this resource tells them): whether it answers at all, and
  // which credentials every pod that answers has.
  conditions.push(availableCondition(deployment, deploymentReplicas(auth)));
  const registeredServices = servedServices(
    deployment,
    rollout.status === true,
    auth.status?.registeredServices ?? [],
  );

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
  const requeue = storageRequeue(ctx, auth, storageCondition);
  // Waiting for a rollout: its Deployment's events wake this up; the hold's limit at the latest.
  return hold && hold.remainingMs < (requeue.requeueAfterMs ?? Infinity)
    ? { requeueAfterMs: hold.remainingMs }
    : requeue;
}

/**
 * The RestAuth services every available pod serves: with the rollout complete, those the
 * Deployment was configured with; while it rolls (old and new pods side by side, or a stuck new
 * one), only those registered before that the new configuration keeps with the same password; with
 * no pod available, none. So a Registry counts as registered only once its credentials work on
 * whichever AuthService pod answers, and one that was registered stays so while another's
 * registration rolls out.
 */
export function servedServices(
  deployment: DeploymentObject | undefined,
  rolledOut: boolean,
  previous: readonly ServiceCredentials[],
): ServiceCredentials[] {
  const configured = recordedServices(deployment);
  // A Deployment not (yet) annotated by this operator: say what was said before.
  if (!configured) return [...previous];
  if (!((deployment?.status?.availableReplicas ?? 0) > 0)) return [];
  if (rolledOut) return configured;
  return previous.filter((service) =>
    configured.some((c) => c.name === service.name && c.credentialsHash === service.credentialsHash),
  );
}

/** What the Deployment records of its services; undefined when unreadable (its next apply puts it back). */
function recordedServices(deployment: DeploymentObject | undefined): ServiceCredentials[] | undefined {
  const recorded = deployment?.metadata?.annotations?.[RESTAUTH_SERVICES_ANNOTATION];
  if (recorded === undefined) return undefined;
  try {
    const parsed = JSON.parse(recorded) as unknown;
    return Array.isArray(parsed) ? (parsed as ServiceCredentials[]) : undefined;
  } catch {
    return undefined;
  }
}

/** The objects whose change rolls the pods: the configuration and the pod template. */
const ROLLING_KINDS = new Set(['ConfigMap', 'Deployment']);
/** How long configuration changes wait for a rollout in progress, at most, before rolling anyway. */
export const ROLLOUT_HOLD_LIMIT_MS = 60_000;
/** Rollouts under way that are not stuck: RolloutComplete's reasons while the pods are replaced. */
const ROLLING_OUT = new Set(['RolloutPending', 'RollingOut', 'OldReplicasPending', 'ReplicasUnavailable']);

/**
 * One rollout at a time. Every Registry that registers changes the AuthService's configuration and
 * so its pod template: a burst of new Registries would roll the AuthService once per Registry, each
 * rollout replacing the last before it finished. While a rollout is under way (not stuck) and older
 * pods serve meanwhile, a change that would roll the pods again waits, and the next rollout takes
 * every change made meanwhile. Nothing waits when no pod answers yet (a new AuthService and its
 * Registries created together: replacing pods that do not serve costs nothing), nor for a change of
 * the AuthService's own spec (a fixed image must not queue behind the broken one), nor longer than
 * ROLLOUT_HOLD_LIMIT_MS. While changes wait, status.registeredServices stays what is rolled out.
 */
function rolloutHold(
  ctx: ReconcileContext,
  auth: AuthService,
  objects: KubernetesObject[],
  workloadName: string,
): { condition: ConditionInput; remainingMs: number } | undefined {
  const generation = auth.metadata.generation ?? 0;
  if (auth.status?.observedGeneration !== generation) return undefined;
  if (
    objects
      .filter((object) => ROLLING_KINDS.has(object.kind ?? ''))
      .every((object) => isApplied(ctx.cache, object))
  )
    return undefined;
  const deployment = liveDeployment(ctx, auth, workloadName);
  if (!((deployment?.status?.availableReplicas ?? 0) > 0)) return undefined;
  const rollout = rolloutCondition(deployment, deploymentReplicas(auth));
  if (rollout.status === true || !ROLLING_OUT.has(rollout.reason)) return undefined;
  const previous = conditionOf(auth.status?.conditions, 'ComponentsApplied');
  const since =
    previous?.status === 'False' && previous.reason === WAITING_FOR_ROLLOUT
      ? Date.parse(previous.lastTransitionTime)
      : Date.now();
  const remainingMs = since + ROLLOUT_HOLD_LIMIT_MS - Date.now();
  if (!(remainingMs > 0)) return undefined;
  return {
    remainingMs,
    condition: condition(
      'ComponentsApplied',
      false,
      WAITING_FOR_ROLLOUT,
      `configuration changes wait for the rollout in progress, to roll out together (${rollout.message})`,
    ),
  };
}
const WAITING_FOR_ROLLOUT = 'WaitingForRollout';

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
