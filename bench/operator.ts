/**
 * Operator benchmark against a real kube-apiserver + etcd (and MinIO for the buckets):
 *  1. time from applying N Registry resources (one shared AuthService) to all of them Ready;
 *  2. API calls per steady-state resync (every resource reconciled once more, nothing changed).
 * Run: npx node bench/operator.ts [N=100]
 * There is no peer operator to compare with; the figures stand alone. A stand-in for the Deployment
 * controller/kubelet marks Deployments available (envtest has neither), polling every 200 ms.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { WRITE_VERBS } from '../operator/kube/client.ts';
import {
  condition,
  createNamespaceWithS3Secret,
  eventually,
  markDeploymentsAvailable,
  OPERATOR_NAMESPACE,
  startHarness,
  wharfPath,
} from '../test/operator/harness.ts';

const count = Number(process.argv[2] ?? 100);
const NS = 'bench';
const h = await startHarness();
try {
  await h.helm('install', 'wharf', 'charts/wharf', '--namespace', OPERATOR_NAMESPACE, '--create-namespace');
  await createNamespaceWithS3Secret(h, NS);
  const operator = await h.startOperator({ resyncSeconds: 3600 });
  const storage = {
    endpoint: h.minio.endpoint,
    credentialsSecretRef: { name: 's3' },
    deletionPolicy: 'Delete',
  };
  await h.admin.create({
    apiVersion: 'wharf.dev/v1alpha1',
    kind: 'AuthService',
    metadata: { name: 'main', namespace: NS },
    spec: { storage },
  } as KubernetesObject);
  let standIn = true;
  const standInLoop = (async () => {
    while (standIn) {
      await markDeploymentsAvailable(h.admin, NS).catch(() => 0);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  await eventually(
    async () =>
      condition(await h.admin.get(wharfPath('AuthService', NS, 'main')), 'Ready')?.status === 'True',
    'AuthService Ready',
    60_000,
  );

  const started = performance.now();
  await Promise.all(
    Array.from({ length: count }, (_, i) =>
      h.admin.create({
        apiVersion: 'wharf.dev/v1alpha1',
        kind: 'Registry',
        metadata: { name: `r${i}`, namespace: NS },
        spec: { authServiceRef: { name: 'main' }, storage, ingress: { host: `r${i}.example.com` } },
      } as KubernetesObject),
    ),
  );
  const applied = performance.now();
  await eventually(
    async () => {
      const list = await h.admin.list<KubernetesObject>(wharfPath('Registry', NS));
      return (
        list.items.length === count && list.items.every((item) => condition(item, 'Ready')?.status === 'True')
      );
    },
    'all Registries Ready',
    600_000,
  );
  const ready = performance.now();
  const durations = await operator.manager.metrics.durations.get();
  const reconcileSummary = ['AuthService', 'Registry'].map((kind) => {
    const sum =
      durations.values.find((v) => v.metricName?.endsWith('_sum') && v.labels.kind === kind)?.value ?? 0;
    const n =
      durations.values.find((v) => v.metricName?.endsWith('_count') && v.labels.kind === kind)?.value ?? 0;
    return `${kind}: ${n} reconciles, mean ${n ? ((sum / n) * 1000).toFixed(0) : 0} ms`;
  });
  standIn = false;
  await standInLoop;

  // Quiet period, then one full resync.
  let calls: string[] = [];
  operator.client.observe((verb, path) =>
    calls.push(`${verb} ${path.includes('/leases') ? 'lease' : ''}`.trim()),
  );
  await new Promise((resolve) => setTimeout(resolve, 2000));
  calls = [];
  const metric = async () =>
    (await operator.manager.metrics.reconciles.get()).values.reduce((sum, v) => sum + v.value, 0);
  const before = await metric();
  const resyncStarted = performance.now();
  await operator.manager.resyncNow();
  await eventually(async () => (await metric()) >= before + count + 1, 'resync finished', 300_000);
  const resyncMs = performance.now() - resyncStarted;
  const byVerb = new Map<string, number>();
  for (const call of calls) byVerb.set(call, (byVerb.get(call) ?? 0) + 1);
  const writes = calls.filter((call) => WRITE_VERBS.has(call.split(' ')[0] as never)).length;

  console.log(
    `Registries: ${count} (one shared AuthService), kube-apiserver + etcd on 127.0.0.1, MinIO buckets`,
  );
  console.log(`create calls issued in ${(applied - started).toFixed(0)} ms`);
  console.log(
    `applied -> all Ready: ${((ready - started) / 1000).toFixed(2)} s (${((ready - started) / count).toFixed(0)} ms per Registry)`,
  );
  console.log(`until Ready: ${reconcileSummary.join('; ')}`);
  console.log(
    `steady-state resync of ${count + 1} resources: ${calls.length} API calls (${(calls.length / (count + 1)).toFixed(1)} per resource), ${writes} writes, ${(resyncMs / 1000).toFixed(2)} s`,
  );
  console.log(`calls by verb: ${[...byVerb].map(([verb, n]) => `${verb}=${n}`).join(', ')}`);
} finally {
  await h.stop();
}
