/**
 * What the operator tests share: a real control plane with the Helm chart installed (CRDs, RBAC),
 * MinIO, an admin client, an operator Manager running in this process as the chart's service
 * account (so the chart's RBAC is what it gets), and a stand-in for the Deployment controller.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { pino } from 'pino';
import { KubeClient, resourcePath, WRITE_VERBS } from '../../operator/kube/client.ts';
import { Manager, type ManagerOptions } from '../../operator/manager.ts';
import { type ControlPlane, startControlPlane } from '../support/control-plane.ts';
import { type MinioServer, startMinio } from '../support/minio.ts';
import { REPO_ROOT, toolPath } from '../support/tools.ts';

const run = promisify(execFile);
export const OPERATOR_NAMESPACE = 'wharf-system';
export const OPERATOR_USER = `system:serviceaccount:${OPERATOR_NAMESPACE}:wharf-operator`;

export interface Harness {
  plane: ControlPlane;
  minio: MinioServer;
  admin: KubeClient;
  helm: (...args: string[]) => Promise<string>;
  operatorClient: () => KubeClient;
  startOperator: (overrides?: Partial<ManagerOptions>) => Promise<RunningOperator>;
  stop: () => Promise<void>;
}

export interface RunningOperator {
  manager: Manager;
  client: KubeClient;
  /** Write calls (create/update/patch/delete) this operator made, leases excepted. */
  writes: { verb: string; path: string }[];
  /** Every request but watches (long-lived streams) and leader election, reads included. */
  requests: { verb: string; path: string }[];
  stop: () => Promise<void>;
}

export async function startHarness(): Promise<Harness> {
  const [plane, minio, helmBinary] = await Promise.all([startControlPlane(), startMinio(), toolPath('helm')]);
  const admin = new KubeClient(plane.admin, 'wharf-test');
  const helm = async (...args: string[]) =>
    (
      await run(helmBinary, [...args, '--kubeconfig', plane.adminKubeconfig], {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          HELM_CACHE_HOME: `${plane.dir}/helm-cache`,
          HELM_CONFIG_HOME: `${plane.dir}/helm-config`,
          HELM_DATA_HOME: `${plane.dir}/helm-data`,
        },
      })
    ).stdout;
  const operatorKubeconfig = plane.kubeconfigFor(OPERATOR_USER);
  const operatorClient = () => {
    const config = new KubeConfig();
    config.loadFromFile(operatorKubeconfig);
    return new KubeClient(config);
  };
  const running: RunningOperator[] = [];
  return {
    plane,
    minio,
    admin,
    helm,
    operatorClient,
    async startOperator(overrides = {}) {
      const client = operatorClient();
      const writes: { verb: string; path: string }[] = [];
      const requests: { verb: string; path: string }[] = [];
      client.observe((verb, path) => {
        if (path.includes('/leases') || verb === 'watch') return;
        requests.push({ verb, path });
        if (WRITE_VERBS.has(verb)) writes.push({ verb, path });
      });
      const manager = new Manager({
        client,
        log: pino({ level: process.env.OPERATOR_TEST_LOG ?? 'silent' }),
        defaultImage: 'wharf:test',
        resyncSeconds: 300,
        externalRecheckSeconds: 300,
        host: '127.0.0.1',
        port: 0,
        ...overrides,
      });
      await manager.start();
      const handle = { manager, client, writes, requests, stop: () => manager.stop() };
      running.push(handle);
      return handle;
    },
    async stop() {
      for (const handle of running) await handle.stop().catch(() => {});
      await minio.stop();
      await plane.stop();
    },
  };
}

/** Polls until `check` returns a truthy value. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

type Conditioned = KubernetesObject & {
  status?: { conditions?: { type: string; status: string; reason: string; message?: string }[] };
};

export function condition(object: Conditioned | undefined, type: string) {
  return object?.status?.conditions?.find((item) => item.type === type);
}

export const wharfPath = (
  kind: 'AuthService' | 'Registry' | 'OpenIdProvider',
  namespace: string,
  name?: string,
) => resourcePath('wharf.dev/v1alpha1', kind, namespace, name);

type DeploymentWithStatus = KubernetesObject & {
  spec: { replicas: number };
  status?: {
    availableReplicas?: number;
    updatedReplicas?: number;
    replicas?: number;
    observedGeneration?: number;
  };
};

/**
 * Stand-in for kube-controller-manager's Deployment controller and the kubelet (neither runs in an
 * envtest control plane): reports every Deployment in a namespace as rolled out, its latest
 * generation observed and every replica updated and available.
 */
export async function markDeploymentsAvailable(admin: KubeClient, namespace: string): Promise<number> {
  const list = await admin.list<DeploymentWithStatus>(resourcePath('apps/v1', 'Deployment', namespace));
  let marked = 0;
  for (const deployment of list.items) {
    const replicas = deployment.spec.replicas;
    const status = deployment.status;
    if (
      status?.observedGeneration === deployment.metadata!.generation &&
      status?.availableReplicas === replicas &&
      status?.updatedReplicas === replicas &&
      status?.replicas === replicas
    )
      continue;
    await writeDeploymentStatus(admin, namespace, deployment.metadata!.name!, {
      replicas,
      readyReplicas: replicas,
      availableReplicas: replicas,
      updatedReplicas: replicas,
      observedGeneration: deployment.metadata!.generation,
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
          reason: 'NewReplicaSetAvailable',
          message: `ReplicaSet "${deployment.metadata!.name}-5d8f7c" has successfully progressed.`,
        },
      ],
    });
    marked++;
  }
  return marked;
}

/**
 * Resolves once the AuthService's applied configuration lists the Registry's RestAuth service: its
 * pods, started from then on, know the Registry's credentials. (CredentialsRegistered follows only
 * once those pods run and the Deployment says so.)
 */
export async function waitForRegistryConfigured(
  h: Harness,
  namespace: string,
  authName: string,
  registryName: string,
  timeoutMs = 60_000,
): Promise<void> {
  await eventually(
    async () => {
      const auth = await h.admin.get(wharfPath('AuthService', namespace, authName));
      const config = await h.admin.get<KubernetesObject & { data?: Record<string, string> }>(
        resourcePath('v1', 'ConfigMap', namespace, `${authName}-auth-config`),
      );
      const services: { name: string }[] =
        JSON.parse(config?.data?.['config.yaml'] ?? '{}').auth?.services ?? [];
      return (
        condition(auth, 'ComponentsApplied')?.status === 'True' &&
        services.some((service) => service.name === `registry-${registryName}`)
      );
    },
    `AuthService ${authName} configured with Registry ${registryName}`,
    timeoutMs,
  );
}

/**
 * Writes a Deployment's status as the Deployment controller would (the stand-in's other half, for
 * rollouts that do not finish: a status the tests spell out instead of one a kubelet produced).
 */
export async function writeDeploymentStatus(
  admin: KubeClient,
  namespace: string,
  name: string,
  status: Record<string, unknown>,
): Promise<void> {
  await admin.mergePatch(`${resourcePath('apps/v1', 'Deployment', namespace, name)}/status`, { status });
}

export async function createNamespaceWithS3Secret(
  h: Harness,
  namespace: string,
  secretName = 's3',
): Promise<void> {
  await h.admin.request('POST', '/api/v1/namespaces', {
    body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
  });
  await h.admin.create({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: secretName, namespace },
    stringData: { accessKeyId: h.minio.accessKeyId, secretAccessKey: h.minio.secretAccessKey },
  } as KubernetesObject);
}
