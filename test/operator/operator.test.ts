/**
 * The operator against a real kube-apiserver + etcd with the Helm chart installed and MinIO as S3.
 * The operator runs as the chart's ServiceAccount user, so every call also proves the chart's RBAC.
 */

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetBucketLifecycleConfigurationCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthService, Registry } from '../../operator/api/types.ts';
import { resourcePath } from '../../operator/kube/client.ts';
import { LIFECYCLE_RULE_ID } from '../../operator/reconcile/bucket.ts';
import { BUCKET_FINALIZER, CONFIG_HASH_ANNOTATION } from '../../operator/reconcile/names.ts';
import { setFinalizer } from '../../operator/runtime/objects.ts';
import { startS3Gateway } from '../support/s3-gateway.ts';
import { REPO_ROOT } from '../support/tools.ts';
import {
  condition,
  createNamespaceWithS3Secret,
  eventually,
  type Harness,
  markDeploymentsAvailable,
  OPERATOR_NAMESPACE,
  OPERATOR_USER,
  type RunningOperator,
  startHarness,
  wharfPath,
  writeDeploymentStatus,
} from './harness.ts';

const NS = 'team-a';
let h: Harness;
let operator: RunningOperator;

type Deployment = KubernetesObject & {
  spec: {
    template: {
      metadata: { annotations: Record<string, string> };
      spec: {
        containers: {
          command: string[];
          args: string[];
          ports: { name: string; containerPort: number; protocol: string }[];
        }[];
      };
    };
  };
};
type Ingress = KubernetesObject & {
  spec: {
    rules: { host: string; http: { paths: { path: string; backend: { service: { name: string } } }[] } }[];
  };
};

const storage = () => ({
  endpoint: h.minio.endpoint,
  credentialsSecretRef: { name: 's3' },
  deletionPolicy: 'Delete',
});

async function getRegistry(name: string) {
  return h.admin.get<Registry>(wharfPath('Registry', NS, name));
}
async function getAuth(name: string) {
  return h.admin.get<AuthService>(wharfPath('AuthService', NS, name));
}
async function events(name: string) {
  const list = await h.admin.list<KubernetesObject & { reason: string; involvedObject: { name: string } }>(
    resourcePath('v1', 'Event', NS),
  );
  return list.items.filter((event) => event.involvedObject.name === name).map((event) => event.reason);
}

beforeAll(async () => {
  h = await startHarness();
  await h.helm('install', 'wharf', 'charts/wharf', '--namespace', OPERATOR_NAMESPACE, '--create-namespace');
  await createNamespaceWithS3Secret(h, NS);
  operator = await h.startOperator({
    leaderElection: {
      namespace: OPERATOR_NAMESPACE,
      name: 'wharf-operator',
      identity: 'replica-a',
      leaseDurationSeconds: 4,
      renewDeadlineSeconds: 3,
      retryPeriodSeconds: 1,
    },
  });
}, 300_000);

afterAll(async () => {
  await h?.stop();
});

describe('helm install', () => {
  it('installs the CRDs, the operator Deployment, its ServiceAccount, RBAC and metrics Service', async () => {
    for (const plural of ['openidproviders', 'authservices', 'registries']) {
      const crd = await h.admin.get<
        KubernetesObject & { status: { conditions: { type: string; status: string }[] } }
      >(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${plural}.wharf.dev`);
      expect(crd?.status.conditions.find((c) => c.type === 'Established')?.status).toBe('True');
    }
    const deployment = await h.admin.get<Deployment>(
      resourcePath('apps/v1', 'Deployment', OPERATOR_NAMESPACE, 'wharf-operator'),
    );
    expect(deployment?.spec.template.spec.containers[0]?.command).toEqual(['node', 'dist/operator/main.js']);
    expect(
      await h.admin.get(`/api/v1/namespaces/${OPERATOR_NAMESPACE}/serviceaccounts/wharf-operator`),
    ).toBeTruthy();
    expect(
      await h.admin.get(`/api/v1/namespaces/${OPERATOR_NAMESPACE}/services/wharf-operator-metrics`),
    ).toBeTruthy();
    expect(await h.admin.get('/apis/rbac.authorization.k8s.io/v1/clusterroles/wharf-operator')).toBeTruthy();
    // The quick start is off by default: no custom resources were created.
    const registries = await h.admin.list(resourcePath('wharf.dev/v1alpha1', 'Registry'));
    expect(registries.items).toHaveLength(0);
  });
});

describe('CRD validation in the apiserver', () => {
  const rejected = async (object: Record<string, unknown>) => {
    try {
      await h.admin.create(object as KubernetesObject);
    } catch (error) {
      return (error as Error).message;
    }
    return 'accepted';
  };

  it('rejects what the schemas and CEL rules forbid, and fills defaults', async () => {
    const auth = (name: string, spec: Record<string, unknown>) => ({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'AuthService',
      metadata: { name, namespace: NS },
      spec: { storage: { credentialsSecretRef: { name: 's3' } }, replicas: 0, ...spec },
    });
    expect(await rejected(auth('x'.repeat(41), {}))).toMatch(/at most 40 characters/);
    expect(await rejected(auth('dupes', { services: [{ name: 'a' }, { name: 'a' }] }))).toMatch(
      /Duplicate value/,
    );
    expect(await rejected(auth('badsignup', { signup: 'maybe' }))).toMatch(/Unsupported value: "maybe"/);
    expect(
      await rejected({
        apiVersion: 'wharf.dev/v1alpha1',
        kind: 'OpenIdProvider',
        metadata: { name: 'ftp', namespace: NS },
        spec: { issuerUrl: 'ftp://example.com' },
      }),
    ).toMatch(/must be an http\(s\) URL/);
    expect(
      await rejected({
        apiVersion: 'wharf.dev/v1alpha1',
        kind: 'Registry',
        metadata: { name: 'noauth', namespace: NS },
        spec: { storage: { credentialsSecretRef: { name: 's3' } } },
      }),
    ).toMatch(/authServiceRef: Required value/);
    const withProxies = (name: string, trustedProxies: string[]) => ({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'Registry',
      metadata: { name, namespace: NS },
      spec: {
        authServiceRef: { name: 'main' },
        replicas: 0,
        storage: { credentialsSecretRef: { name: 's3' } },
        ingress: { host: 'x.example.com', trustedProxies },
      },
    });
    expect(await rejected(withProxies('badproxy', ['10.0.0.0/33']))).toMatch(
      /spec\.ingress\.trustedProxies\[0\].*should match/,
    );
    expect(await rejected(withProxies('anyone', ['*']))).toMatch(/trustedProxies\[0\]/);
    const withBlobCache = (name: string, storage: Record<string, unknown>, sizeLimit: string) => ({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'Registry',
      metadata: { name, namespace: NS },
      spec: { authServiceRef: { name: 'main' }, replicas: 0, storage, oci: { blobCache: { sizeLimit } } },
    });
    expect(await rejected(withBlobCache('cachevolume', { mode: 'volume' }, '20Gi'))).toMatch(
      /on storage mode volume they are local files already/,
    );
    expect(
      await rejected(withBlobCache('cachesize', { credentialsSecretRef: { name: 's3' } }, '20GB')),
    ).toMatch(/spec\.oci\.blobCache\.sizeLimit.*should match/);
    const created = await h.admin.create<AuthService>(auth('defaults', {}) as never);
    expect(created.spec).toMatchObject({
      signup: 'admin',
      logLevel: 'info',
      storage: { mode: 's3', deletionPolicy: 'Retain', region: 'us-east-1' },
    });
    await h.admin.delete(wharfPath('AuthService', NS, 'defaults'));
    await eventually(async () => !(await getAuth('defaults')), 'defaults AuthService gone');
  });
});

describe('AuthService and Registry', () => {
  it('creates the bucket, Secrets, ConfigMap, Deployment, Service and Ingress, and reports status', async () => {
    await h.admin.create({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'AuthService',
      metadata: { name: 'main', namespace: NS },
      spec: {
        storage: { ...storage(), deletionPolicy: 'Retain' },
        services: [{ name: 'wiki', permissions: ['user_verify_password'] }],
      },
    } as KubernetesObject);
    await h.admin.create({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'Registry',
      metadata: { name: 'crates', namespace: NS },
      spec: { authServiceRef: { name: 'main' }, storage: storage(), ingress: { host: 'crates.example.com' } },
    } as KubernetesObject);

    const auth = await eventually(async () => {
      const object = await getAuth('main');
      return (
        condition(object, 'ComponentsApplied')?.status === 'True' &&
        condition(object, 'BucketReady')?.status === 'True' &&
        object
      );
    }, 'AuthService components applied');
    expect(auth.metadata.finalizers).toContain('wharf.dev/bucket');
    // No Deployment controller has looked at the new Deployment yet: the rollout has not begun.
    expect(condition(auth, 'Ready')).toMatchObject({ status: 'False', reason: 'RolloutPending' });
    expect(auth.status?.observedGeneration).toBe(auth.metadata.generation);

    const bucket = auth.status!.bucket!;
    await h.minio.client.send(new HeadBucketCommand({ Bucket: bucket }));
    // MinIO rejects AbortIncompleteMultipartUpload rules (it expires stale uploads itself); the
    // operator says so instead of failing. On AWS S3 the rule is added.
    const rules: string[] = await h.minio.client
      .send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))
      .then(
        (lifecycle): string[] => (lifecycle.Rules ?? []).map((rule) => rule.ID ?? ''),
        (): string[] => [],
      );
    if (rules.includes(LIFECYCLE_RULE_ID))
      expect(condition(auth, 'BucketReady')?.message).toMatch(/with a lifecycle rule/);
    else expect(condition(auth, 'BucketReady')?.message).toMatch(/rejects lifecycle rules/);

    for (const name of [
      'main-auth-admin',
      'main-auth-services',
      'main-auth-signing',
      'crates-registry-client',
    ]) {
      const secret = await h.admin.get<KubernetesObject & { data: Record<string, string> }>(
        resourcePath('v1', 'Secret', NS, name),
      );
      expect(secret?.metadata?.ownerReferences?.[0]?.controller, name).toBe(true);
      expect(Object.keys(secret?.data ?? {}).length, name).toBeGreaterThan(0);
    }

    // Ready once the Deployments are available (stand-in for the Deployment controller and kubelet).
    await eventually(
      () =>
        markDeploymentsAvailable(h.admin, NS).then(
          async () => condition(await getRegistry('crates'), 'Ready')?.status === 'True',
        ),
      'Registry Ready',
      45_000,
    );
    expect(condition(await getAuth('main'), 'Ready')?.status).toBe('True');
    const registry = (await getRegistry('crates'))!;
    expect(condition(registry, 'CredentialsRegistered')?.status).toBe('True');
    expect(registry.status?.publicUrl).toBe('http://crates.example.com');

    const config = await h.admin.get<KubernetesObject & { data: Record<string, string> }>(
      resourcePath('v1', 'ConfigMap', NS, 'main-auth-config'),
    );
    const parsed = JSON.parse(config!.data['config.yaml']!);
    expect(parsed.auth.services.map((s: { name: string }) => s.name)).toEqual(['wiki', 'registry-crates']);

    const ingress = await h.admin.get<Ingress>(
      resourcePath('networking.k8s.io/v1', 'Ingress', NS, 'crates-registry'),
    );
    const routes = Object.fromEntries(
      ingress!.spec.rules[0]!.http.paths.map((p) => [p.path, p.backend.service.name]),
    );
    expect(routes).toMatchObject({
      '/me': 'main-auth',
      '/auth/api/v1': 'main-auth',
      '/ktra/api/v1/login': 'main-auth',
      '/ktra/api/v1/openid': 'main-auth',
      '/': 'crates-registry',
    });

    const deployment = await h.admin.get<Deployment>(
      resourcePath('apps/v1', 'Deployment', NS, 'crates-registry'),
    );
    expect(deployment!.metadata!.ownerReferences![0]).toMatchObject({
      kind: 'Registry',
      name: 'crates',
      controller: true,
    });
    expect(deployment!.spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{32}$/);

    expect(await events('crates')).toEqual(
      expect.arrayContaining(['BucketCreated', 'Applied', 'Ready', 'TrustedProxiesUnset']),
    );
    // The servers' /metrics is a pod port: the Service (and so the Ingress) only knows `http`.
    const pod = deployment!.spec.template.spec.containers[0]!;
    expect(pod.ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9464, protocol: 'TCP' },
    ]);
    const service = await h.admin.get<KubernetesObject & { spec: { ports: { name: string }[] } }>(
      resourcePath('v1', 'Service', NS, 'crates-registry'),
    );
    expect(service!.spec.ports.map((port) => port.name)).toEqual(['http']);
  });

  it('makes zero API calls when resyncing resources that did not change: every read is served by the caches', async () => {
    // Settle: no requests for a while.
    let before = operator.requests.length;
    await eventually(async () => {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const settled = operator.requests.length === before;
      before = operator.requests.length;
      return settled;
    }, 'a quiet operator');
    const auditBefore = h.plane.audit().length;
    const reconcilesBefore = await reconcileCount(operator);
    // Force resyncs: every resource is reconciled again, twice.
    for (let round = 0; round < 2; round++) {
      await operator.manager.resyncNow();
      await eventually(
        async () => (await reconcileCount(operator)) >= reconcilesBefore + 2 * (round + 1),
        'resync reconciles',
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await reconcileCount(operator)).toBeGreaterThanOrEqual(reconcilesBefore + 4);
    expect(operator.requests.slice(before)).toEqual([]);
    // The apiserver agrees: not one request from the operator's user but its open watches.
    const requestsInAudit = h.plane
      .audit()
      .slice(auditBefore)
      .filter(
        (event) =>
          event.user.username === OPERATOR_USER &&
          event.verb !== 'watch' &&
          event.objectRef?.resource !== 'leases',
      );
    expect(requestsInAudit).toEqual([]);
  });

  it('keeps idle watches open: a quiet operator makes no request at all for 40 s', async () => {
    // An informer with nothing to report (no OpenIdProvider exists yet) must not relist: the
    // apiserver sends no event and may send no bookmark for longer than a client's idle timeout.
    const before = operator.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 40_000));
    expect(operator.requests.slice(before)).toEqual([]);
  }, 60_000);

  it('rolls the pods when the configuration changes', async () => {
    const hashOf = async () =>
      (await h.admin.get<Deployment>(resourcePath('apps/v1', 'Deployment', NS, 'crates-registry')))!.spec
        .template.metadata.annotations[CONFIG_HASH_ANNOTATION];
    const before = await hashOf();
    await h.admin.mergePatch(wharfPath('Registry', NS, 'crates'), { spec: { superusers: ['alice'] } });
    await eventually(async () => (await hashOf()) !== before, 'a new config hash');
    // The new template is a new rollout: Ready again once the (stand-in) Deployment controller
    // reports it done.
    const registry = await eventually(async () => {
      await markDeploymentsAvailable(h.admin, NS);
      const object = await getRegistry('crates');
      return (
        object?.status?.observedGeneration === object?.metadata.generation &&
        condition(object, 'Ready')?.status === 'True' &&
        object
      );
    }, 'observedGeneration and Ready');
    expect(condition(registry, 'RolloutComplete')).toMatchObject({ status: 'True', reason: 'RolledOut' });
    const config = await h.admin.get<KubernetesObject & { data: Record<string, string> }>(
      resourcePath('v1', 'ConfigMap', NS, 'crates-registry-config'),
    );
    expect(JSON.parse(config!.data['config.yaml']!).registry.superusers).toEqual(['alice']);
  });

  it('follows the rollout like kstatus: Ready=False while it runs, with the reason of a stuck one, True when done', async () => {
    const deploymentPath = resourcePath('apps/v1', 'Deployment', NS, 'crates-registry');
    const generationOf = async () => (await h.admin.get(deploymentPath))!.metadata!.generation!;
    const before = await generationOf();
    // A bad image: the operator rolls the Deployment to it.
    await h.admin.mergePatch(wharfPath('Registry', NS, 'crates'), {
      spec: { image: 'wharf:does-not-exist' },
    });
    await eventually(async () => (await generationOf()) > before, 'the Deployment gets the new image');
    // The first status for the new generation already says so (the reconcile that applied the new
    // template does not read the rollout from an older cached copy of the Deployment).
    const pending = await eventually(async () => {
      const object = await getRegistry('crates');
      return object?.status?.observedGeneration === object?.metadata.generation && object;
    }, 'status for the new generation');
    expect(condition(pending, 'Ready')).toMatchObject({ reason: 'RolloutPending' });
    expect(condition(pending, 'RolloutComplete')?.message).toMatch(/not yet observed/);

    // What the Deployment controller reports (the stand-in writes it: no kubelet here) while the
    // surge pod cannot pull its image: one updated replica, not available; the old one still serves.
    const generation = await generationOf();
    await writeDeploymentStatus(h.admin, NS, 'crates-registry', {
      observedGeneration: generation,
      replicas: 2,
      updatedReplicas: 1,
      readyReplicas: 1,
      availableReplicas: 1,
      unavailableReplicas: 1,
      conditions: [
        {
          type: 'Available',
          status: 'True',
          reason: 'MinimumReplicasAvailable',
          message: 'Deployment has minimum availability.',
        },
        {
          type: 'Progressing',
          status: 'True',
          reason: 'ReplicaSetUpdated',
          message: 'ReplicaSet "crates-registry-6f9c8d" is progressing.',
        },
      ],
    });
    const rolling = await eventually(async () => {
      const object = await getRegistry('crates');
      return condition(object, 'RolloutComplete')?.reason === 'OldReplicasPending' && object;
    }, 'a rollout in progress');
    expect(condition(rolling, 'Ready')).toMatchObject({
      status: 'False',
      message: expect.stringContaining('1 updated, 1 available, 2 total of 1 wanted'),
    });

    // After progressDeadlineSeconds the controller gives up: Progressing=False.
    const stuckMessage = 'ReplicaSet "crates-registry-6f9c8d" has timed out progressing.';
    await writeDeploymentStatus(h.admin, NS, 'crates-registry', {
      conditions: [
        {
          type: 'Available',
          status: 'True',
          reason: 'MinimumReplicasAvailable',
          message: 'Deployment has minimum availability.',
        },
        { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: stuckMessage },
      ],
    });
    const stuck = await eventually(async () => {
      const object = await getRegistry('crates');
      return condition(object, 'Ready')?.reason === 'ProgressDeadlineExceeded' && object;
    }, 'the stuck rollout reported');
    expect(condition(stuck, 'Ready')).toMatchObject({
      status: 'False',
      message: expect.stringContaining(stuckMessage),
    });
    expect(await events('crates')).toContain('ProgressDeadlineExceeded');

    // Pods of the current generation that are not available (crash-looping after a scale-up, say).
    await writeDeploymentStatus(h.admin, NS, 'crates-registry', {
      replicas: 1,
      updatedReplicas: 1,
      readyReplicas: 0,
      availableReplicas: 0,
      unavailableReplicas: 1,
      conditions: [
        {
          type: 'Available',
          status: 'False',
          reason: 'MinimumReplicasUnavailable',
          message: 'Deployment does not have minimum availability.',
        },
        {
          type: 'Progressing',
          status: 'True',
          reason: 'ReplicaSetUpdated',
          message: 'ReplicaSet "crates-registry-6f9c8d" is progressing.',
        },
      ],
    });
    const unavailable = await eventually(async () => {
      const object = await getRegistry('crates');
      return condition(object, 'Ready')?.reason === 'MinimumReplicasUnavailable' && object;
    }, 'unavailable pods reported');
    expect(condition(unavailable, 'Ready')?.message).toContain('does not have minimum availability');

    // The image fixed: a new rollout, Ready once it completes.
    await h.admin.mergePatch(wharfPath('Registry', NS, 'crates'), { spec: { image: null } });
    await eventually(async () => {
      await markDeploymentsAvailable(h.admin, NS);
      const object = await getRegistry('crates');
      return (
        object?.status?.observedGeneration === object?.metadata.generation &&
        condition(object, 'Ready')?.status === 'True'
      );
    }, 'Ready after the fix');
  });

  it("tells the Registry and the AuthService behind its host to believe the Ingress's controllers", async () => {
    const configOf = async (name: string) =>
      JSON.parse(
        (await h.admin.get<KubernetesObject & { data: Record<string, string> }>(
          resourcePath('v1', 'ConfigMap', NS, name),
        ))!.data['config.yaml']!,
      );
    expect(await configOf('crates-registry-config')).not.toHaveProperty('trustedProxies');
    expect(await configOf('main-auth-config')).not.toHaveProperty('trustedProxies');
    await h.admin.mergePatch(wharfPath('Registry', NS, 'crates'), {
      spec: { ingress: { host: 'crates.example.com', trustedProxies: ['10.244.0.0/16'] } },
    });
    await eventually(
      async () => (await configOf('crates-registry-config')).trustedProxies?.[0] === '10.244.0.0/16',
      'the Registry believes its ingress controller',
    );
    // The identity paths on the Registry's host go to the AuthService through the same controller.
    await eventually(
      async () => (await configOf('main-auth-config')).trustedProxies?.[0] === '10.244.0.0/16',
      'the AuthService believes it too',
    );
  });

  it("puts back a Deployment's spec edited by hand at once: its watch event queues the Registry", async () => {
    const resyncs = operator.manager.resyncCount;
    const path = resourcePath('apps/v1', 'Deployment', NS, 'crates-registry');
    type Scaled = KubernetesObject & { spec: { replicas: number; template: Deployment['spec']['template'] } };
    const image = (await h.admin.get<Scaled>(path))!.spec.template.spec.containers[0]!;
    await h.admin.mergePatch(path, { spec: { replicas: 5 } });
    await eventually(
      async () => (await h.admin.get<Scaled>(path))?.spec.replicas === 1,
      'replicas restored',
      10_000,
    );
    // A container edited through a strategic merge (as `kubectl edit` does) is put back too.
    await h.admin.request('PATCH', path, {
      body: { spec: { template: { spec: { containers: [{ name: 'wharf', args: ['--evil'] }] } } } },
      contentType: 'application/strategic-merge-patch+json',
    });
    await eventually(
      async () =>
        JSON.stringify((await h.admin.get<Scaled>(path))?.spec.template.spec.containers[0]?.args) ===
        JSON.stringify(image.args),
      'container args restored',
      10_000,
    );
    expect(operator.manager.resyncCount).toBe(resyncs);
  });

  it('recreates a Service deleted by hand without waiting for the periodic resync', async () => {
    const resyncs = operator.manager.resyncCount;
    const path = resourcePath('v1', 'Service', NS, 'crates-registry');
    const before = (await h.admin.get(path))!;
    await h.admin.delete(path);
    const after = await eventually(
      async () => {
        const service = await h.admin.get(path);
        return service && service.metadata?.uid !== before.metadata?.uid && service;
      },
      'the Service back',
      10_000,
    );
    expect(after.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'Registry', name: 'crates' });
    expect(operator.manager.resyncCount).toBe(resyncs);
  });

  it('hands RestAuth credentials over through status: the AuthService publishes what it registered, the Registry reads it', async () => {
    const [auth, registry] = [(await getAuth('main'))!, (await getRegistry('crates'))!];
    expect(auth.status?.registeredServices).toEqual(
      expect.arrayContaining([
        { name: 'registry-crates', credentialsHash: registry.status!.credentialsHash },
        { name: 'wiki', credentialsHash: expect.stringMatching(/^[0-9a-f]{64}$/) },
      ]),
    );
    // A Registry whose AuthService does not exist yet waits, and learns of it from the watch.
    await h.admin.create({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'Registry',
      metadata: { name: 'early', namespace: NS },
      spec: { authServiceRef: { name: 'late' }, storage: storage() },
    } as KubernetesObject);
    await eventually(async () => {
      const object = await getRegistry('early');
      return (
        condition(object, 'AuthServiceReady')?.reason === 'AuthServiceNotFound' &&
        condition(object, 'CredentialsRegistered')?.reason === 'Pending'
      );
    }, 'the Registry waiting for its AuthService');
    const resyncs = operator.manager.resyncCount;
    await h.admin.create({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'AuthService',
      metadata: { name: 'late', namespace: NS },
      spec: { storage: storage() },
    } as KubernetesObject);
    // Registered once the AuthService's pods have its credentials: its rollout complete (the
    // stand-in plays the Deployment controller).
    const registered = await eventually(async () => {
      await markDeploymentsAvailable(h.admin, NS);
      const object = await getRegistry('early');
      return condition(object, 'CredentialsRegistered')?.status === 'True' && object;
    }, 'the Registry registered at the new AuthService');
    expect((await getAuth('late'))!.status?.registeredServices).toEqual([
      { name: 'registry-early', credentialsHash: registered.status!.credentialsHash },
    ]);

    // A password changed by hand: the Registry publishes its new hash, the AuthService configures it
    // and says so, and only then is the Registry registered again.
    const secretPath = resourcePath('v1', 'Secret', NS, 'early-registry-client');
    await h.admin.mergePatch(secretPath, { stringData: { password: 'rotated-by-hand' } });
    const rotatedHash = createHash('sha256').update('rotated-by-hand').digest('hex');
    await eventually(async () => {
      await markDeploymentsAvailable(h.admin, NS);
      const [object, late] = [await getRegistry('early'), await getAuth('late')];
      return (
        object?.status?.credentialsHash === rotatedHash &&
        condition(object, 'CredentialsRegistered')?.status === 'True' &&
        late?.status?.registeredServices?.[0]?.credentialsHash === rotatedHash
      );
    }, 'the rotated password registered');
    const config = await h.admin.get<KubernetesObject & { data: Record<string, string> }>(
      resourcePath('v1', 'ConfigMap', NS, 'late-auth-config'),
    );
    expect(
      JSON.parse(config!.data['config.yaml']!).auth.services.map((s: { name: string }) => s.name),
    ).toEqual(['registry-early']);
    expect(operator.manager.resyncCount).toBe(resyncs);
    await h.admin.delete(wharfPath('Registry', NS, 'early'));
    await h.admin.delete(wharfPath('AuthService', NS, 'late'));
    await eventually(
      async () => !(await getRegistry('early')) && !(await getAuth('late')),
      'the Registry and AuthService gone',
    );
  });

  it('recovers after the apiserver restarts', async () => {
    const lists = async () =>
      (await operator.manager.metrics.apiRequests.get()).values
        .filter((value) => value.labels.verb === 'list' && value.labels.code === '200')
        .reduce((sum, value) => sum + value.value, 0);
    const listsBefore = await lists();
    await h.plane.restartApiServer();
    // The informers' watches broke: they relist (four informers).
    await eventually(async () => (await lists()) >= listsBefore + 4, 'informers relisted', 60_000);
    await h.admin.create({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'Registry',
      metadata: { name: 'second', namespace: NS },
      spec: { authServiceRef: { name: 'main' }, storage: storage() },
    } as KubernetesObject);
    await eventually(
      async () => condition(await getRegistry('second'), 'ComponentsApplied')?.status === 'True',
      'reconcile after restart',
      60_000,
    );
  }, 120_000);

  it('deletes the bucket with deletionPolicy Delete and keeps it with Retain', async () => {
    const registry = (await getRegistry('second'))!;
    const bucket = registry.status!.bucket!;
    await h.minio.client.send(new HeadBucketCommand({ Bucket: bucket }));
    await h.admin.delete(wharfPath('Registry', NS, 'second'));
    await eventually(async () => !(await getRegistry('second')), 'Registry gone');
    await expect(h.minio.client.send(new HeadBucketCommand({ Bucket: bucket }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 404 },
    });

    await h.admin.create({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'AuthService',
      metadata: { name: 'kept', namespace: NS },
      spec: { storage: { ...storage(), deletionPolicy: 'Retain' } },
    } as KubernetesObject);
    const kept = await eventually(async () => {
      const object = await getAuth('kept');
      return condition(object, 'BucketReady')?.status === 'True' && object;
    }, 'second AuthService bucket');
    await h.admin.delete(wharfPath('AuthService', NS, 'kept'));
    await eventually(async () => !(await getAuth('kept')), 'AuthService gone');
    await h.minio.client.send(new HeadBucketCommand({ Bucket: kept.status!.bucket! }));
  });

  it('retries a finalizer removal the apiserver refused with backoff, not at the recheck minutes away', async () => {
    // Every reconcile of an S3 resource ends by asking to come back at the recheck (300 s here). A
    // failure's retry must still come within moments: deleting an AuthService whose finalizer patch
    // meets a 409 (a cache a moment behind the operator's own status write, which queues nothing)
    // has only that retry. An admission policy refuses the removal here, deterministically.
    await h.admin.create({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'AuthService',
      metadata: { name: 'stubborn', namespace: NS },
      spec: { storage: { ...storage(), deletionPolicy: 'Retain' } },
    } as KubernetesObject);
    await eventually(
      async () => condition(await getAuth('stubborn'), 'BucketReady')?.status === 'True',
      'the AuthService with its bucket',
    );
    const policy = '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies';
    const binding = '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings';
    const name = 'wharf-test-keep-finalizer';
    await h.admin.request('POST', policy, {
      body: {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicy',
        metadata: { name },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: {
            resourceRules: [
              {
                apiGroups: ['wharf.dev'],
                apiVersions: ['*'],
                operations: ['UPDATE'],
                resources: ['authservices'],
              },
            ],
          },
          validations: [
            {
              expression:
                "object.metadata.name != 'stubborn' || (has(object.metadata.finalizers) && size(object.metadata.finalizers) > 0)",
              message: 'the test holds this finalizer',
            },
          ],
        },
      },
    });
    const bindingPath = `${binding}/${name}`;
    try {
      await h.admin.request('POST', binding, {
        body: {
          apiVersion: 'admissionregistration.k8s.io/v1',
          kind: 'ValidatingAdmissionPolicyBinding',
          metadata: { name },
          spec: { policyName: name, validationActions: ['Deny'] },
        },
      });
      // The apiserver takes up a new policy asynchronously: wait until a dry run is refused.
      const removal = () =>
        h.admin.request('PATCH', wharfPath('AuthService', NS, 'stubborn'), {
          body: { metadata: { finalizers: null } },
          contentType: 'application/merge-patch+json',
          query: { dryRun: 'All' },
        });
      await eventually(
        () =>
          removal().then(
            () => false,
            (error: Error) => /the test holds this finalizer/.test(error.message),
          ),
        'the admission policy in force',
      );
      const failures = async () =>
        (await operator.manager.metrics.errors.get()).values.find(
          (value) => value.labels.kind === 'AuthService',
        )?.value ?? 0;
      const failuresBefore = await failures();
      const resyncs = operator.manager.resyncCount;
      await h.admin.delete(wharfPath('AuthService', NS, 'stubborn'));
      const deleting = (await getAuth('stubborn'))!;
      await eventually(async () => (await failures()) > failuresBefore, 'the finalizer removal refused');
      await h.admin.delete(bindingPath);
      // The policy gone, the next retry releases it: seconds, not the 300 s recheck.
      await eventually(async () => !(await getAuth('stubborn')), 'the AuthService gone', 20_000);
      expect(operator.manager.resyncCount).toBe(resyncs);
      // A reconcile from a cache that still holds it (queued again meanwhile) finds nothing to do.
      expect(deleting.metadata.finalizers).toContain(BUCKET_FINALIZER);
      expect(await setFinalizer(operator.client, deleting, BUCKET_FINALIZER, false)).toBe(false);
    } finally {
      await h.admin.delete(bindingPath);
      await h.admin.delete(`${policy}/${name}`);
    }
  });
});

describe('server pods', () => {
  type PodDeployment = KubernetesObject & {
    spec: {
      replicas: number;
      template: {
        metadata: { labels: Record<string, string>; annotations: Record<string, string> };
        spec: {
          serviceAccountName: string;
          automountServiceAccountToken: boolean;
          topologySpreadConstraints: {
            topologyKey: string;
            whenUnsatisfiable: string;
            maxSkew: number;
            labelSelector: { matchLabels: Record<string, string> };
          }[];
          containers: {
            env: { name: string }[];
            resources: { requests?: Record<string, string>; limits?: Record<string, string> };
            startupProbe: { httpGet: { path: string; port: string } };
            livenessProbe: { httpGet: { path: string } };
          }[];
        };
      };
    };
  };
  type Budget = KubernetesObject & {
    spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } };
  };
  const deploymentPath = resourcePath('apps/v1', 'Deployment', NS, 'irsa-registry');
  const budgetPath = resourcePath('policy/v1', 'PodDisruptionBudget', NS, 'irsa-registry');
  const accountPath = resourcePath('v1', 'ServiceAccount', NS, 'irsa-registry');

  it('runs S3 through workload identity: no key Secret, its own annotated ServiceAccount, pod annotations and labels', async () => {
    // Without credentialsSecretRef the operator uses its own identity through the SDK's default
    // chain; here that identity comes from the AWS_* environment, one of the chain's sources (on
    // EKS it would be the IRSA web identity token).
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = h.minio.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = h.minio.secretAccessKey;
    try {
      await h.admin.create({
        apiVersion: 'wharf.dev/v1alpha1',
        kind: 'Registry',
        metadata: { name: 'irsa', namespace: NS },
        spec: {
          authServiceRef: { name: 'main' },
          replicas: 3,
          storage: { endpoint: h.minio.endpoint, deletionPolicy: 'Retain' },
          resources: { limits: { memory: '1Gi' } },
          serviceAccountAnnotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::111122223333:role/wharf' },
          podAnnotations: { 'example.com/team': 'platform' },
          podLabels: { 'azure.workload.identity/use': 'true' },
        },
      } as KubernetesObject);
      const registry = await eventually(async () => {
        await markDeploymentsAvailable(h.admin, NS);
        const object = await getRegistry('irsa');
        return condition(object, 'Ready')?.status === 'True' && object;
      }, 'the workload-identity Registry Ready');
      expect(condition(registry, 'BucketReady')?.status).toBe('True');
    } finally {
      process.env.AWS_ACCESS_KEY_ID = saved.id;
      process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
      if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
      if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    }

    const deployment = (await h.admin.get<PodDeployment>(deploymentPath))!;
    const pod = deployment.spec.template;
    const container = pod.spec.containers[0]!;
    expect(pod.spec.serviceAccountName).toBe('irsa-registry');
    expect(pod.spec.automountServiceAccountToken).toBe(false);
    // No key pair in the environment: the server's SDK finds the web identity the webhook injects.
    expect(container.env ?? []).toEqual([]);
    expect(pod.metadata.annotations).toMatchObject({
      'example.com/team': 'platform',
      [CONFIG_HASH_ANNOTATION]: expect.stringMatching(/^[0-9a-f]{32}$/),
    });
    expect(pod.metadata.labels).toMatchObject({
      'azure.workload.identity/use': 'true',
      'app.kubernetes.io/instance': 'irsa',
    });
    const account = (await h.admin.get<KubernetesObject & { automountServiceAccountToken: boolean }>(
      accountPath,
    ))!;
    expect(account.metadata?.annotations?.['eks.amazonaws.com/role-arn']).toBe(
      'arn:aws:iam::111122223333:role/wharf',
    );
    expect(account.automountServiceAccountToken).toBe(false);
    expect(account.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'Registry', name: 'irsa' });

    // Default cpu request; memory left to Kubernetes (it requests the limit the spec set).
    expect(container.resources).toEqual({ requests: { cpu: '100m' }, limits: { memory: '1Gi' } });
    expect(container.startupProbe.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    expect(
      pod.spec.topologySpreadConstraints.map(({ topologyKey, whenUnsatisfiable, maxSkew }) => ({
        topologyKey,
        whenUnsatisfiable,
        maxSkew,
      })),
    ).toEqual([
      { topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', maxSkew: 1 },
      { topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', maxSkew: 1 },
    ]);
    const selector = { 'app.kubernetes.io/instance': 'irsa', 'app.kubernetes.io/component': 'registry' };
    expect(pod.spec.topologySpreadConstraints[0]!.labelSelector.matchLabels).toMatchObject(selector);

    const budget = (await h.admin.get<Budget>(budgetPath))!;
    expect(budget.spec.maxUnavailable).toBe(1);
    expect(budget.spec.selector.matchLabels).toMatchObject(selector);
    expect(budget.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: 'Registry',
      name: 'irsa',
      controller: true,
    });
  });

  it('removes the PodDisruptionBudget at one replica and its ServiceAccount once the spec names one', async () => {
    await h.admin.mergePatch(wharfPath('Registry', NS, 'irsa'), { spec: { replicas: 1 } });
    await eventually(async () => !(await h.admin.get(budgetPath)), 'the budget removed');
    expect((await h.admin.get<PodDeployment>(deploymentPath))?.spec.replicas).toBe(1);
    await h.admin.mergePatch(wharfPath('Registry', NS, 'irsa'), {
      spec: { replicas: 2, serviceAccountName: 'ci-robot', serviceAccountAnnotations: null },
    });
    await eventually(async () => !(await h.admin.get(accountPath)), "the operator's ServiceAccount removed");
    expect((await h.admin.get<PodDeployment>(deploymentPath))?.spec.template.spec.serviceAccountName).toBe(
      'ci-robot',
    );
    expect(await h.admin.get(budgetPath)).toBeTruthy();
    expect(await events('irsa')).toContain('Removed');
    // Both at once is refused: annotations would land on an object the operator does not manage.
    const refused = await h.admin
      .mergePatch(wharfPath('Registry', NS, 'irsa'), {
        spec: {
          serviceAccountAnnotations: { 'iam.gke.io/gcp-service-account': 'wharf@p.iam.gserviceaccount.com' },
        },
      })
      .then(
        () => 'accepted',
        (error: Error) => error.message,
      );
    expect(refused).toMatch(/with serviceAccountName, annotate that ServiceAccount instead/);
    await h.admin.delete(wharfPath('Registry', NS, 'irsa'));
    await eventually(async () => !(await getRegistry('irsa')), 'irsa Registry gone');
  });

  it("federates to an AWS role from any cluster: a projected token for STS and the SDK's web identity variables", async () => {
    await h.admin.create({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'Registry',
      metadata: { name: 'federated', namespace: NS },
      spec: {
        authServiceRef: { name: 'main' },
        replicas: 0,
        storage: { webIdentity: { roleArn: 'arn:aws:iam::111122223333:role/wharf-registry' } },
      },
    } as KubernetesObject);
    type Federated = KubernetesObject & {
      spec: {
        template: {
          spec: {
            automountServiceAccountToken: boolean;
            serviceAccountName: string;
            volumes: { name: string; projected?: { sources: { serviceAccountToken?: unknown }[] } }[];
            containers: {
              env: { name: string; value: string }[];
              volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
            }[];
          };
        };
      };
    };
    const deployment = await eventually(
      () => h.admin.get<Federated>(resourcePath('apps/v1', 'Deployment', NS, 'federated-registry')),
      'the federated Deployment',
    );
    const pod = deployment.spec.template.spec;
    expect(pod.serviceAccountName).toBe('federated-registry');
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(Object.fromEntries(pod.containers[0]!.env.map((item) => [item.name, item.value]))).toEqual({
      AWS_ROLE_ARN: 'arn:aws:iam::111122223333:role/wharf-registry',
      AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/secrets/wharf/aws/token',
      AWS_ROLE_SESSION_NAME: 'federated-registry',
    });
    expect(pod.volumes.find((volume) => volume.name === 'aws-web-identity')?.projected?.sources).toEqual([
      { serviceAccountToken: { audience: 'sts.amazonaws.com', expirationSeconds: 3600, path: 'token' } },
    ]);
    expect(pod.containers[0]!.volumeMounts).toContainEqual({
      name: 'aws-web-identity',
      mountPath: '/var/run/secrets/wharf/aws',
      readOnly: true,
    });
    const refused = await h.admin
      .mergePatch(wharfPath('Registry', NS, 'federated'), {
        spec: { storage: { credentialsSecretRef: { name: 's3' } } },
      })
      .then(
        () => 'accepted',
        (error: Error) => error.message,
      );
    expect(refused).toMatch(/credentialsSecretRef and webIdentity are two ways to the same credentials/);
    await h.admin.delete(wharfPath('Registry', NS, 'federated'));
    await eventually(async () => !(await getRegistry('federated')), 'federated Registry gone');
  });
});

describe("BucketReady: the servers' own conditional-write probe", () => {
  // A real HTTP proxy in front of MinIO that behaves as an older S3-compatible gateway: it drops the
  // If-Match / If-None-Match headers (all of them, or only on multipart completion) and forwards
  // the rest, re-signed. The servers refuse to start behind it; the operator must not say Ready.
  for (const [dropConditions, expected] of [
    ['all', 'a second PUT with If-None-Match: * replaced the object instead of failing with 412'],
    [
      'complete-multipart',
      'CompleteMultipartUpload with If-None-Match: * replaced the object instead of failing with 412',
    ],
  ] as const) {
    it(`reports BucketReady=False behind a gateway that ignores conditional writes (${dropConditions})`, async () => {
      const gateway = await startS3Gateway({ ...h.minio, dropConditions });
      const name = `gated-${dropConditions === 'all' ? 'all' : 'mpu'}`;
      try {
        await h.admin.create({
          apiVersion: 'wharf.dev/v1alpha1',
          kind: 'Registry',
          metadata: { name, namespace: NS },
          spec: {
            authServiceRef: { name: 'main' },
            replicas: 0,
            storage: { endpoint: gateway.endpoint, credentialsSecretRef: { name: 's3' } },
          },
        } as KubernetesObject);
        const registry = await eventually(async () => {
          const object = await getRegistry(name);
          return condition(object, 'BucketReady')?.status === 'False' && object;
        }, 'BucketReady=False');
        expect(condition(registry, 'BucketReady')).toMatchObject({
          reason: 'ConditionalWritesUnsupported',
          message: expect.stringContaining(expected),
        });
        expect(condition(registry, 'BucketReady')?.message).toContain(gateway.endpoint);
        expect(condition(registry, 'Ready')).toMatchObject({
          status: 'False',
          reason: 'ConditionalWritesUnsupported',
        });
        expect(gateway.droppedConditions()).toBeGreaterThan(0);
        // The bucket itself was created through the gateway: only the conditions are missing.
        await h.minio.client.send(new HeadBucketCommand({ Bucket: registry.status!.bucket! }));
      } finally {
        await h.admin.delete(wharfPath('Registry', NS, name));
        await eventually(async () => !(await getRegistry(name)), `${name} gone`);
        await gateway.stop();
      }
    });
  }
});

describe('storage mode volume', () => {
  type Claim = KubernetesObject & {
    spec: { accessModes: string[]; storageClassName?: string; resources: { requests: { storage: string } } };
  };
  type VolumeDeployment = KubernetesObject & {
    spec: {
      replicas: number;
      strategy: { type: string };
      template: {
        spec: {
          volumes: { name: string; persistentVolumeClaim?: { claimName: string } }[];
          containers: { env: unknown[]; volumeMounts: { name: string; mountPath: string }[] }[];
        };
      };
    };
  };
  const claimPath = (name: string) => resourcePath('v1', 'PersistentVolumeClaim', NS, name);
  const volumeRegistry = (name: string, spec: Record<string, unknown>) => ({
    apiVersion: 'wharf.dev/v1alpha1',
    kind: 'Registry',
    metadata: { name, namespace: NS },
    spec: { authServiceRef: { name: 'vol' }, storage: { mode: 'volume' }, ...spec },
  });
  const refusal = async (write: () => Promise<unknown>) =>
    write().then(
      () => 'accepted',
      (error: Error) => error.message,
    );

  it('refuses replicas > 1 at apply time, for every access mode', async () => {
    for (const accessModes of [['ReadWriteOnce'], ['ReadWriteMany']])
      expect(
        await refusal(() =>
          h.admin.create(
            volumeRegistry('scaled', {
              replicas: 2,
              storage: { mode: 'volume', volume: { accessModes } },
            }) as KubernetesObject,
          ),
        ),
      ).toMatch(/storage mode volume runs one replica: the fs store is not shared between pods/);
    // Scaling an existing one up is refused too.
    await h.admin.create(volumeRegistry('single', { replicas: 1 }) as KubernetesObject);
    expect(
      await refusal(() => h.admin.mergePatch(wharfPath('Registry', NS, 'single'), { spec: { replicas: 2 } })),
    ).toMatch(/runs one replica/);
    await h.admin.delete(wharfPath('Registry', NS, 'single'));
    await eventually(async () => !(await getRegistry('single')), 'single Registry gone');
  });

  it('gives the AuthService and the Registry each a claim, mounted by a Recreate Deployment of one fs-store pod', async () => {
    await h.admin.create({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'AuthService',
      metadata: { name: 'vol', namespace: NS },
      spec: { storage: { mode: 'volume', deletionPolicy: 'Delete' } },
    } as KubernetesObject);
    await h.admin.create(
      volumeRegistry('volreg', {
        storage: {
          mode: 'volume',
          volume: { size: '5Gi', storageClassName: 'standard', accessModes: ['ReadWriteOncePod'] },
        },
      }) as KubernetesObject,
    );
    await eventually(
      () =>
        markDeploymentsAvailable(h.admin, NS).then(
          async () => condition(await getRegistry('volreg'), 'Ready')?.status === 'True',
        ),
      'volume Registry Ready',
      45_000,
    );
    const auth = (await getAuth('vol'))!;
    const registry = (await getRegistry('volreg'))!;
    expect(condition(auth, 'Ready')?.status).toBe('True');
    expect(condition(registry, 'VolumeReady')).toMatchObject({ status: 'True', reason: 'Pending' });
    expect(condition(registry, 'BucketReady')).toBeUndefined();
    expect(auth.status).toMatchObject({ volumeClaimName: 'vol-auth-data' });
    expect(auth.status?.bucket).toBeUndefined();
    expect(registry.status).toMatchObject({ volumeClaimName: 'volreg-registry-data' });

    const authClaim = (await h.admin.get<Claim>(claimPath('vol-auth-data')))!;
    const registryClaim = (await h.admin.get<Claim>(claimPath('volreg-registry-data')))!;
    expect(authClaim.spec).toMatchObject({
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: '10Gi' } },
    });
    expect(registryClaim.spec).toMatchObject({
      accessModes: ['ReadWriteOncePod'],
      storageClassName: 'standard',
      resources: { requests: { storage: '5Gi' } },
    });
    expect(registryClaim.metadata?.ownerReferences).toBeUndefined();

    for (const [name, claim] of [
      ['vol-auth', 'vol-auth-data'],
      ['volreg-registry', 'volreg-registry-data'],
    ] as const) {
      const deployment = (await h.admin.get<VolumeDeployment>(
        resourcePath('apps/v1', 'Deployment', NS, name),
      ))!;
      expect(deployment.spec.replicas).toBe(1);
      expect(deployment.spec.strategy).toEqual({ type: 'Recreate' });
      const pod = deployment.spec.template.spec;
      expect(pod.volumes).toContainEqual({ name: 'data', persistentVolumeClaim: { claimName: claim } });
      expect(pod.containers[0]!.volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/wharf' });
      expect(pod.containers[0]!.env ?? []).toEqual([]);
      const config = await h.admin.get<KubernetesObject & { data: Record<string, string> }>(
        resourcePath('v1', 'ConfigMap', NS, `${name}-config`),
      );
      expect(JSON.parse(config!.data['config.yaml']!).store).toEqual({
        driver: 'fs',
        dataDir: '/var/lib/wharf',
      });
    }
  });

  it('says VolumeReady=False and runs one pod when an object admitted before the CEL rule asks for more', async () => {
    // A CRD from before the rule (the chart's crds/ are never upgraded by helm) let such an object in.
    const crdPath = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/registries.wharf.dev';
    type Crd = KubernetesObject & {
      spec: {
        versions: { schema: { openAPIV3Schema: { properties: { spec: Record<string, unknown> } } } }[];
      };
    };
    const original = (await h.admin.get<Crd>(crdPath))!;
    const relaxed = structuredClone(original);
    delete relaxed.spec.versions[0]!.schema.openAPIV3Schema.properties.spec['x-kubernetes-validations'];
    await h.admin.request('PUT', crdPath, { body: relaxed });
    try {
      await eventually(
        () => h.admin.create(volumeRegistry('legacy', { replicas: 3 }) as KubernetesObject).then(() => true),
        'relaxed CRD in effect',
      );
    } finally {
      const current = (await h.admin.get<Crd>(crdPath))!;
      await h.admin.request('PUT', crdPath, {
        body: {
          ...original,
          metadata: { ...original.metadata, resourceVersion: current.metadata?.resourceVersion },
        },
      });
    }
    const registry = await eventually(async () => {
      const object = await getRegistry('legacy');
      return condition(object, 'VolumeReady')?.status === 'False' && object;
    }, 'VolumeReady=False');
    expect(condition(registry, 'VolumeReady')).toMatchObject({
      reason: 'ReplicasUnsupported',
      message: expect.stringMatching(
        /spec\.replicas is 3 on claim legacy-registry-data \(ReadWriteOnce\): storage mode volume runs one replica.*running 1/,
      ),
    });
    expect(condition(registry, 'Ready')).toMatchObject({ status: 'False', reason: 'ReplicasUnsupported' });
    const deployment = await h.admin.get<VolumeDeployment>(
      resourcePath('apps/v1', 'Deployment', NS, 'legacy-registry'),
    );
    expect(deployment?.spec.replicas).toBe(1);
    // Back to one replica: the rule admits the change, and the condition clears.
    await h.admin.mergePatch(wharfPath('Registry', NS, 'legacy'), { spec: { replicas: 1 } });
    await eventually(
      async () => condition(await getRegistry('legacy'), 'VolumeReady')?.status === 'True',
      'VolumeReady again',
    );
    await h.admin.delete(wharfPath('Registry', NS, 'legacy'));
    await eventually(async () => !(await getRegistry('legacy')), 'legacy Registry gone');
  });

  it('deletes the claim with deletionPolicy Delete and keeps it (the default Retain) otherwise', async () => {
    await h.admin.delete(wharfPath('Registry', NS, 'volreg'));
    await eventually(async () => !(await getRegistry('volreg')), 'volume Registry gone');
    expect(await h.admin.get(claimPath('volreg-registry-data'))).toBeTruthy();
    expect(await events('volreg')).toContain('VolumeClaimRetained');
    // The legacy Registry (Retain by default) kept its claim too.
    expect(await h.admin.get(claimPath('legacy-registry-data'))).toBeTruthy();

    await h.admin.delete(wharfPath('AuthService', NS, 'vol'));
    await eventually(async () => !(await getAuth('vol')), 'volume AuthService gone');
    // Deleted by the operator; the claim is gone or, held by its pvc-protection finalizer, going.
    const claim = await h.admin.get(claimPath('vol-auth-data'));
    expect(claim === undefined || claim.metadata?.deletionTimestamp !== undefined).toBe(true);
    expect(await events('vol')).toContain('VolumeClaimDeleted');
  });
});

describe('helm quick start', () => {
  it('installs an AuthService and a Registry that the operator brings to Ready', async () => {
    await createNamespaceWithS3Secret(h, 'quick', 'wharf-s3');
    await h.helm(
      'install',
      'qs',
      'charts/wharf',
      '--namespace',
      'quick',
      '--set',
      'quickstart.enabled=true',
      '--set',
      'quickstart.storage.mode=s3',
      '--set',
      `quickstart.storage.endpoint=${h.minio.endpoint}`,
      '--set',
      'quickstart.storage.deletionPolicy=Delete',
      '--set',
      'quickstart.registry.host=registry.quick.example',
      '--set',
      'leaderElection.enabled=false',
    );
    await eventually(
      async () => {
        await markDeploymentsAvailable(h.admin, 'quick');
        // Both: the AuthService rolls once more when it registers the Registry's credentials.
        return (
          condition(await h.admin.get(wharfPath('Registry', 'quick', 'wharf')), 'Ready')?.status === 'True' &&
          condition(await h.admin.get(wharfPath('AuthService', 'quick', 'wharf')), 'Ready')?.status === 'True'
        );
      },
      'quick start Ready',
      60_000,
    );
    const ingress = await h.admin.get<Ingress>(
      resourcePath('networking.k8s.io/v1', 'Ingress', 'quick', 'wharf-registry'),
    );
    expect(ingress?.spec.rules[0]?.host).toBe('registry.quick.example');
    expect(condition(await h.admin.get(wharfPath('AuthService', 'quick', 'wharf')), 'Ready')?.status).toBe(
      'True',
    );
  });
});

describe('helm quick start on volumes (the default)', () => {
  it('needs nothing but the cluster: both resources on their own claims, Ready, and NOTES with the next commands', async () => {
    await h.admin.request('POST', '/api/v1/namespaces', {
      body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'quickvol' } },
    });
    const output = await h.helm(
      'install',
      'qv',
      'charts/wharf',
      '--namespace',
      'quickvol',
      '--set',
      'quickstart.enabled=true',
      '--set',
      'leaderElection.enabled=false',
    );
    await eventually(
      async () => {
        await markDeploymentsAvailable(h.admin, 'quickvol');
        // Both: the AuthService rolls once more when it registers the Registry's credentials.
        return (
          condition(await h.admin.get(wharfPath('Registry', 'quickvol', 'wharf')), 'Ready')?.status ===
            'True' &&
          condition(await h.admin.get(wharfPath('AuthService', 'quickvol', 'wharf')), 'Ready')?.status ===
            'True'
        );
      },
      'volume quick start Ready',
      60_000,
    );
    expect(condition(await h.admin.get(wharfPath('AuthService', 'quickvol', 'wharf')), 'Ready')?.status).toBe(
      'True',
    );
    for (const claim of ['wharf-auth-data', 'wharf-registry-data'])
      expect(
        await h.admin.get(resourcePath('v1', 'PersistentVolumeClaim', 'quickvol', claim)),
        claim,
      ).toBeTruthy();
    expect(output).toContain(
      "PASSWORD=$(kubectl -n quickvol get secret wharf-auth-admin -o jsonpath='{.data.password}' | base64 -d)",
    );
    expect(output).toContain('kubectl -n quickvol port-forward svc/wharf-registry 8080:8080');
    // The login is the AuthService's: without an Ingress it has its own port-forward.
    expect(output).toContain('kubectl -n quickvol port-forward svc/wharf-auth 8081:8080');
    expect(output).toMatch(
      /curl -s -X POST http:\/\/localhost:8081\/ktra\/api\/v1\/login\/admin[\s\S]*cargo login --registry wharf/,
    );
    expect(output).toContain('echo "$PASSWORD" | docker login localhost:8080 -u admin --password-stdin');
    // The admin Secret the NOTES name is the one the operator generated.
    expect(await h.admin.get(resourcePath('v1', 'Secret', 'quickvol', 'wharf-auth-admin'))).toBeTruthy();
  });
});

describe('OpenIdProvider', () => {
  it('registers a client dynamically, keeps it in an owned Secret, and the AuthService mounts it', async () => {
    // oidc-provider ships no type declarations: the few members used here, typed.
    const oidcModule = 'oidc-provider';
    const { Provider } = (await import(oidcModule)) as {
      Provider: new (
        issuer: string,
        configuration: Record<string, unknown>,
      ) => {
        callback: () => (request: IncomingMessage, response: ServerResponse) => void;
        Client: { find: (id: string) => Promise<unknown> };
      };
    };
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const provider = new Provider(issuer, { features: { registration: { enabled: true } }, clients: [] });
    server.on('request', provider.callback());
    try {
      await h.admin.create({
        apiVersion: 'wharf.dev/v1alpha1',
        kind: 'OpenIdProvider',
        metadata: { name: 'sso', namespace: NS },
        spec: { issuerUrl: issuer, redirectUris: ['https://auth.example.com/ktra/api/v1/openid/callback'] },
      } as KubernetesObject);
      const ready = await eventually(async () => {
        const object = await h.admin.get<
          KubernetesObject & { status?: { clientSecretName?: string; userinfoEndpoint?: string } }
        >(wharfPath('OpenIdProvider', NS, 'sso'));
        return condition(object as never, 'Ready')?.status === 'True' && object;
      }, 'OpenIdProvider Ready');
      expect(ready.status?.userinfoEndpoint).toBe(`${issuer}/me`);
      expect(ready.status?.clientSecretName).toBe('sso-oidc-client');
      const secret = await h.admin.get<KubernetesObject & { data: Record<string, string> }>(
        resourcePath('v1', 'Secret', NS, 'sso-oidc-client'),
      );
      const clientId = Buffer.from(secret!.data.client_id!, 'base64').toString();
      expect(await provider.Client.find(clientId)).toBeTruthy();
      expect(await events('sso')).toContain('ClientRegistered');

      await h.admin.mergePatch(wharfPath('AuthService', NS, 'main'), {
        spec: { openIdProviders: [{ name: 'sso' }] },
      });
      await eventually(async () => {
        const config = await h.admin.get<KubernetesObject & { data: Record<string, string> }>(
          resourcePath('v1', 'ConfigMap', NS, 'main-auth-config'),
        );
        return JSON.parse(config!.data['config.yaml']!).openid.providers?.[0]?.issuerUrl === issuer;
      }, 'provider in the AuthService configuration');
      expect(condition(await getAuth('main'), 'ProvidersReady')?.status).toBe('True');

      // A provider that cannot be discovered says so, and so does the AuthService that uses it.
      await h.admin.create({
        apiVersion: 'wharf.dev/v1alpha1',
        kind: 'OpenIdProvider',
        metadata: { name: 'broken', namespace: NS },
        spec: { issuerUrl: 'http://127.0.0.1:9/nothing' },
      } as KubernetesObject);
      const broken = await eventually(async () => {
        const object = await h.admin.get(wharfPath('OpenIdProvider', NS, 'broken'));
        return condition(object as never, 'Discovered')?.status === 'False' && object;
      }, 'discovery failure reported');
      expect(condition(broken as never, 'Ready')).toMatchObject({
        status: 'False',
        reason: 'DiscoveryUnreachable',
      });
      await h.admin.mergePatch(wharfPath('AuthService', NS, 'main'), {
        spec: { openIdProviders: [{ name: 'sso' }, { name: 'broken' }] },
      });
      await eventually(
        async () => condition(await getAuth('main'), 'ProvidersReady')?.status === 'False',
        'AuthService reports the broken provider',
      );
      await h.admin.mergePatch(wharfPath('AuthService', NS, 'main'), {
        spec: { openIdProviders: [{ name: 'sso' }] },
      });
    } finally {
      server.close();
    }
  });
});

describe('leader election', () => {
  it('lets only the leader reconcile, and a standby takes over when the leader stops', async () => {
    const standby = await h.startOperator({
      leaderElection: {
        namespace: OPERATOR_NAMESPACE,
        name: 'wharf-operator',
        identity: 'replica-b',
        leaseDurationSeconds: 4,
        renewDeadlineSeconds: 3,
        retryPeriodSeconds: 1,
      },
    });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(operator.manager.isLeader).toBe(true);
    expect(standby.manager.isLeader).toBe(false);
    await h.admin.mergePatch(wharfPath('Registry', NS, 'crates'), { spec: { superusers: ['alice', 'bob'] } });
    await eventually(
      async () =>
        (await getRegistry('crates'))?.status?.observedGeneration ===
        (await getRegistry('crates'))?.metadata.generation,
      'leader reconciled',
    );
    expect(standby.writes).toEqual([]);

    await operator.stop();
    await eventually(async () => standby.manager.isLeader, 'standby leads', 20_000);
    await h.admin.mergePatch(wharfPath('Registry', NS, 'crates'), { spec: { superusers: ['carol'] } });
    await eventually(async () => {
      const config = await h.admin.get<KubernetesObject & { data: Record<string, string> }>(
        resourcePath('v1', 'ConfigMap', NS, 'crates-registry-config'),
      );
      return JSON.parse(config!.data['config.yaml']!).registry.superusers[0] === 'carol';
    }, 'new leader reconciles');
    expect(standby.writes.length).toBeGreaterThan(0);
    const lease = await h.admin.get<KubernetesObject & { spec: { holderIdentity: string } }>(
      resourcePath('coordination.k8s.io/v1', 'Lease', OPERATOR_NAMESPACE, 'wharf-operator'),
    );
    expect(lease?.spec.holderIdentity).toBe('replica-b');
    const metrics = await (await fetch(`http://127.0.0.1:${standby.manager.port}/metrics`)).text();
    expect(metrics).toMatch(/^wharf_operator_leader 1$/m);
    expect(metrics).toMatch(/wharf_operator_reconcile_total\{kind="Registry",result="success"\} \d+/);
    operator = standby;
  }, 60_000);
});

async function reconcileCount(running: RunningOperator): Promise<number> {
  const metric = await running.manager.metrics.reconciles.get();
  return metric.values.reduce((sum, value) => sum + value.value, 0);
}

describe('the operator program', () => {
  it('serves /healthz, /readyz and /metrics, leads, and gives up its Lease on SIGTERM', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const child = spawn(process.execPath, ['operator/main.ts'], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        KUBECONFIG: h.plane.kubeconfigFor(OPERATOR_USER),
        POD_NAMESPACE: OPERATOR_NAMESPACE,
        POD_NAME: 'program-test',
        WHARF_LEASE_NAME: 'program-test',
        WHARF_OPERATOR_HOST: '127.0.0.1',
        WHARF_OPERATOR_PORT: String(port),
        WHARF_OPERATOR_LOG_LEVEL: 'warn',
        WHARF_LEASE_DURATION_SECONDS: '4',
        WHARF_RENEW_DEADLINE_SECONDS: '3',
        WHARF_RETRY_PERIOD_SECONDS: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      const base = `http://127.0.0.1:${port}`;
      await eventually(async () => (await fetch(`${base}/healthz`)).ok, `the program answering (${output})`);
      await eventually(
        async () => /^wharf_operator_leader 1$/m.test(await (await fetch(`${base}/metrics`)).text()),
        'leadership',
      );
      await eventually(async () => (await fetch(`${base}/readyz`)).status === 200, 'readiness');
      const leasePath = resourcePath('coordination.k8s.io/v1', 'Lease', OPERATOR_NAMESPACE, 'program-test');
      expect(
        (await h.admin.get<KubernetesObject & { spec: { holderIdentity: string } }>(leasePath))?.spec
          .holderIdentity,
      ).toBe('program-test');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(
        (await h.admin.get<KubernetesObject & { spec: { holderIdentity: string } }>(leasePath))?.spec
          .holderIdentity,
      ).toBe('');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
