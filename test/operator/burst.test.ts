/**
 * What a burst of new Registries does to their shared AuthService, and how buckets are re-checked,
 * against the real apiserver and MinIO. The Deployment controller is played by
 * markDeploymentsAvailable, called only where a test says so: until then a rollout stays under way.
 */
import { DeleteBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthService, Registry } from '../../operator/api/types.ts';
import { resourcePath } from '../../operator/kube/client.ts';
import {
  condition,
  createNamespaceWithS3Secret,
  eventually,
  type Harness,
  markDeploymentsAvailable,
  OPERATOR_NAMESPACE,
  type RunningOperator,
  startHarness,
  wharfPath,
} from './harness.ts';

const NS = 'burst';
let h: Harness;
let operator: RunningOperator;
/** Buckets are checked again this often (WHARF_EXTERNAL_RECHECK_SECONDS). */
const RECHECK_SECONDS = 3;

const storage = () => ({
  endpoint: h.minio.endpoint,
  credentialsSecretRef: { name: 's3' },
  deletionPolicy: 'Delete',
});
const getAuth = () => h.admin.get<AuthService>(wharfPath('AuthService', NS, 'main'));
const getRegistry = (name: string) => h.admin.get<Registry>(wharfPath('Registry', NS, name));
const authGeneration = async () =>
  (await h.admin.get(resourcePath('apps/v1', 'Deployment', NS, 'main-auth')))?.metadata?.generation ?? 0;
const createRegistry = (name: string) =>
  h.admin.create({
    apiVersion: 'wharf.dev/v1alpha1',
    kind: 'Registry',
    metadata: { name, namespace: NS },
    // No pods of its own to roll out: what is measured here is the AuthService's side.
    spec: { authServiceRef: { name: 'main' }, replicas: 0, storage: storage() },
  } as KubernetesObject);
/** Plays the Deployment controller until `check` holds. */
const rolledOutUntil = <T>(check: () => Promise<T | undefined | false>, what: string) =>
  eventually(async () => {
    await markDeploymentsAvailable(h.admin, NS);
    return check();
  }, what);
const registered = (registry: Registry | undefined) =>
  condition(registry, 'CredentialsRegistered')?.status === 'True';

beforeAll(async () => {
  h = await startHarness();
  await h.helm('install', 'wharf', 'charts/wharf', '--namespace', OPERATOR_NAMESPACE, '--create-namespace');
  await createNamespaceWithS3Secret(h, NS);
  operator = await h.startOperator({ externalRecheckSeconds: RECHECK_SECONDS });
  await h.admin.create({
    apiVersion: 'wharf.dev/v1alpha1',
    kind: 'AuthService',
    metadata: { name: 'main', namespace: NS },
    spec: { storage: storage() },
  } as KubernetesObject);
  await rolledOutUntil(
    async () => condition(await getAuth(), 'Ready')?.status === 'True',
    'AuthService Ready',
  );
}, 300_000);

afterAll(async () => {
  await operator?.stop();
  await h?.stop();
});

describe('a burst of Registries at one AuthService', () => {
  it('counts a Registry registered only once the rollout carrying its credentials is complete', async () => {
    const before = await authGeneration();
    await createRegistry('first');
    await eventually(async () => (await authGeneration()) > before, 'its registration applied');
    // Applied, not rolled out: the AuthService's pods do not know the password yet.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const waiting = await getRegistry('first');
    expect(condition(waiting, 'CredentialsRegistered')).toMatchObject({ status: 'False', reason: 'Pending' });
    expect(condition(waiting, 'Ready')?.status).toBe('False');
    // The old pods still answer: the AuthService is there for it, just not with its credentials.
    expect(condition(waiting, 'AuthServiceReady')).toMatchObject({ status: 'True' });
    expect((await getAuth())?.status?.registeredServices ?? []).not.toContainEqual(
      expect.objectContaining({ name: 'registry-first' }),
    );

    const ready = await rolledOutUntil(async () => {
      const registry = await getRegistry('first');
      return condition(registry, 'Ready')?.status === 'True' && registry;
    }, 'first Ready once rolled out');
    expect((await getAuth())?.status?.registeredServices).toContainEqual({
      name: 'registry-first',
      credentialsHash: ready.status!.credentialsHash,
    });
  });

  it('rolls the AuthService out about twice for twenty new Registries, and keeps the registered one Ready meanwhile', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `b${i}`);
    const before = await authGeneration();
    await Promise.all(names.map(createRegistry));
    // Every one has published its credentials; the rollout they started is not done (no stand-in).
    await eventually(async () => {
      const all = await Promise.all(names.map(getRegistry));
      return all.every((registry) => registry?.status?.credentialsHash);
    }, 'all credentials hashes published');
    await eventually(
      async () => condition(await getAuth(), 'ComponentsApplied')?.reason === 'WaitingForRollout',
      'later registrations waiting for the rollout in progress',
    );
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // One rollout started; the rest wait for it instead of replacing it twenty times.
    expect((await authGeneration()) - before).toBe(1);
    const auth = (await getAuth())!;
    expect(condition(auth, 'ComponentsApplied')?.message).toMatch(/wait for the rollout in progress/);
    // The Registry registered before stays Ready through the AuthService's rollouts.
    const first = await getRegistry('first');
    expect(condition(first, 'Ready')).toMatchObject({ status: 'True' });
    expect(registered(first)).toBe(true);

    const all = await rolledOutUntil(async () => {
      const registries = await Promise.all(names.map(getRegistry));
      return registries.every((registry) => condition(registry, 'Ready')?.status === 'True') && registries;
    }, 'all twenty Ready');
    // The first rollout, then one with everything that waited for it (a third if a registration
    // came in between): never one per Registry.
    expect((await authGeneration()) - before).toBeLessThanOrEqual(3);
    const services = (await getAuth())!.status!.registeredServices;
    for (const registry of all)
      expect(services).toContainEqual({
        name: `registry-${registry!.metadata.name}`,
        credentialsHash: registry!.status!.credentialsHash,
      });
    expect(condition(await getRegistry('first'), 'Ready')?.status).toBe('True');
  });

  it('makes no API call when it all is resynced', async () => {
    const before = operator.requests.length;
    await operator.manager.resyncNow();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(operator.requests.slice(before)).toEqual([]);
  });
});

describe('bucket checks', () => {
  it('notices a bucket deleted behind its back once the recheck period is over, and creates it again', async () => {
    const registry = (await getRegistry('first'))!;
    const bucket = registry.status!.bucket!;
    await h.minio.client.send(new HeadBucketCommand({ Bucket: bucket }));
    await h.minio.client.send(new DeleteBucketCommand({ Bucket: bucket }));
    // Nothing changed in the cluster: the requeue after the recheck period finds it gone.
    await eventually(
      async () => {
        await h.minio.client.send(new HeadBucketCommand({ Bucket: bucket }));
        return true;
      },
      'the bucket created again',
      RECHECK_SECONDS * 1000 + 20_000,
    );
    expect(condition(await getRegistry('first'), 'BucketReady')?.status).toBe('True');
  });
});
