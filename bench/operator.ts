/**
 * Operator benchmark against a real kube-apiserver + etcd (and MinIO for the buckets):
 *  1. time from applying N Registry resources (one shared AuthService) to all of them Ready;
 *  2. API calls per steady-state resync (every resource reconciled once more, nothing changed):
 *     every read is served by the informer caches, so this must be 0;
 *  3. the operator's memory with M Registries (the first N on S3, the rest on claims): the operator
 *     program (`node operator/main.ts`) in its own process, its resident set read from /proc once
 *     all M are Ready and it is idle.
 * Run: npx node bench/operator.ts [N=100] [M=1000]   (M <= N skips the memory part)
 * There is no peer operator to compare with; the figures stand alone. A stand-in for the Deployment
 * controller/kubelet marks Deployments available (envtest has neither), polling every 200 ms.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { WRITE_VERBS } from '../operator/kube/client.ts';
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
} from '../test/operator/harness.ts';
import { REPO_ROOT } from '../test/support/tools.ts';
import { memoryCgroup, quantityBytes } from './memory-cgroup.ts';

/** The operator Deployment's memory limit in the chart's values (`resources.limits.memory`). */
function chartOperatorMemoryLimit(): string {
  const values = parse(readFileSync(path.join(REPO_ROOT, 'charts/wharf/values.yaml'), 'utf8')) as {
    resources: { limits: { memory: string } };
  };
  return values.resources.limits.memory;
}

const count = Number(process.argv[2] ?? 100);
const memoryCount = Number(process.argv[3] ?? 1000);
const NS = 'bench';
const h = await startHarness();

/** Marks the namespace's Deployments available every `intervalMs` until stopped. */
function standIn(intervalMs: number) {
  let running = true;
  const loop = (async () => {
    while (running) {
      await markDeploymentsAvailable(h.admin, NS).catch(() => 0);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return async () => {
    running = false;
    await loop;
  };
}

async function createRegistries(from: number, to: number, storage: Record<string, unknown>) {
  // A few at a time: the apiserver is on the same busy machine.
  for (let start = from; start < to; start += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, to - start) }, (_, i) =>
        h.admin.create({
          apiVersion: 'wharf.dev/v1alpha1',
          kind: 'Registry',
          metadata: { name: `r${start + i}`, namespace: NS },
          spec: {
            authServiceRef: { name: 'main' },
            storage,
            ingress: { host: `r${start + i}.example.com` },
          },
        } as KubernetesObject),
      ),
    );
  }
}

async function allReady(h: Harness, expected: number): Promise<boolean> {
  const list = await h.admin.list<KubernetesObject>(wharfPath('Registry', NS));
  return (
    list.items.length === expected && list.items.every((item) => condition(item, 'Ready')?.status === 'True')
  );
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });

const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rss: field('VmRSS'), peak: field('VmHWM') };
}

async function measureMemory(operator: RunningOperator): Promise<void> {
  await operator.stop();
  // On claims: the bucket work is outside the operator's memory, and on this machine MinIO would
  // make the wait for 900 more Ready Registries far longer than the figure is worth.
  await createRegistries(count, memoryCount, { mode: 'volume' });
  const port = await freePort();
  // As the chart runs it: the compiled program (`node dist/operator/main.js`), not the sources,
  // whose type stripping alone costs a process some 30 MB.
  execFileSync(path.join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], {
    cwd: REPO_ROOT,
  });
  const snapshotDir = process.env.BENCH_HEAP_SNAPSHOT_DIR;
  const command = [
    process.execPath,
    ...(snapshotDir ? [`--heapsnapshot-signal=SIGUSR2`, `--diagnostic-dir=${snapshotDir}`] : []),
    'dist/operator/main.js',
  ];
  // Under the chart's memory limit, as in its pod: Node sizes its heap from it, and the kernel
  // kills the process beyond it (where this machine lets a benchmark make a memory cgroup).
  const limit = chartOperatorMemoryLimit();
  const cgroup = memoryCgroup(`wharf-bench-operator-${process.pid}`, quantityBytes(limit));
  const child = spawn(
    cgroup ? 'sh' : (command[0] as string),
    cgroup ? ['-c', `${cgroup.enter} "$@"`, 'sh', ...command] : command.slice(1),
    {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        KUBECONFIG: h.plane.kubeconfigFor(OPERATOR_USER),
        WHARF_LEADER_ELECT: 'false',
        WHARF_OPERATOR_HOST: '127.0.0.1',
        WHARF_OPERATOR_PORT: String(port),
        WHARF_OPERATOR_LOG_LEVEL: 'warn',
        WHARF_IMAGE: 'wharf:test',
        WHARF_RESYNC_SECONDS: '3600',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  // Its warnings (pino writes to stdout) go to stderr, apart from the figures.
  child.stdout!.pipe(process.stderr);
  try {
    const stopStandIn = standIn(1000);
    const programStarted = performance.now();
    // Polled every 2 s: listing 1,000 Registries is itself work for the apiserver.
    const deadline = Date.now() + 1_800_000;
    while (!(await allReady(h, memoryCount).catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`not all ${memoryCount} Registries Ready in 30 min`);
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(
          `the operator exited (${child.signalCode ?? child.exitCode}) before all were Ready; OOM kills in its ${limit} cgroup: ${cgroup?.oomKills() ?? 'no cgroup'}`,
        );
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    const programReady = performance.now();
    await stopStandIn();
    // Idle: the queues drained, then a collection would not have run yet; read what the kernel says.
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const memory = memoryOf(child.pid!);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const heap = Number(/^wharf_operator_nodejs_heap_size_used_bytes (\S+)/m.exec(metrics)?.[1] ?? 0);
    const sample = (pattern: RegExp) => Number(pattern.exec(metrics)?.[1] ?? 0) / 1024;
    const spaces = [
      ...metrics.matchAll(/^wharf_operator_nodejs_heap_space_size_total_bytes\{space="(\w+)"\} (\S+)/gm),
    ]
      .map((match) => `${match[1]} ${mib(Number(match[2]) / 1024)}`)
      .join(', ');
    console.log(
      `  its heap total ${mib(sample(/^wharf_operator_nodejs_heap_size_total_bytes (\S+)/m))} (${spaces}), external ${mib(sample(/^wharf_operator_nodejs_external_memory_bytes (\S+)/m))}`,
    );
    console.log(
      `operator program with ${memoryCount} Registries (${count} on S3, ${memoryCount - count} on claims; +1 AuthService, and what they own in its caches): ` +
        `RSS ${mib(memory.rss)}, peak RSS ${mib(memory.peak)}, heap used ${mib(heap / 1024)} ` +
        `(${memoryCount - count} new ones Ready ${((programReady - programStarted) / 1000).toFixed(1)} s after it started)`,
    );
    console.log(
      cgroup
        ? `  in a memory cgroup of the chart's limit (${limit}): peak usage ${mib(cgroup.peak() / 1024)}, OOM kills ${cgroup.oomKills()}`
        : `  without the chart's memory limit (${limit}): this machine gave the benchmark no memory cgroup`,
    );
    if (snapshotDir) {
      // What the heap holds, for a look in DevTools (BENCH_HEAP_SNAPSHOT_DIR).
      child.kill('SIGUSR2');
      await new Promise((resolve) => setTimeout(resolve, 20_000));
      console.log(`heap snapshot written to ${snapshotDir}`);
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) =>
      child.exitCode === null && child.signalCode === null ? child.once('exit', resolve) : resolve(null),
    );
    cgroup?.remove();
  }
}

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
  const stopStandIn = standIn(200);
  await eventually(
    async () =>
      condition(await h.admin.get(wharfPath('AuthService', NS, 'main')), 'Ready')?.status === 'True',
    'AuthService Ready',
    60_000,
  );

  // 1. N Registries applied → all Ready.
  const started = performance.now();
  await createRegistries(0, count, storage);
  const applied = performance.now();
  await eventually(() => allReady(h, count), 'all Registries Ready', 600_000);
  const ready = performance.now();
  const durations = await operator.manager.metrics.durations.get();
  const reconcileSummary = ['AuthService', 'Registry'].map((kind) => {
    const sum =
      durations.values.find((v) => v.metricName?.endsWith('_sum') && v.labels.kind === kind)?.value ?? 0;
    const n =
      durations.values.find((v) => v.metricName?.endsWith('_count') && v.labels.kind === kind)?.value ?? 0;
    return `${kind}: ${n} reconciles, mean ${n ? ((sum / n) * 1000).toFixed(0) : 0} ms`;
  });
  await stopStandIn();

  // 2. Quiet period, then one full resync: every request but the informers' open watches counts.
  let before = operator.requests.length;
  await eventually(
    async () => {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const settled = operator.requests.length === before;
      before = operator.requests.length;
      return settled;
    },
    'a quiet operator',
    120_000,
  );
  const metric = async () =>
    (await operator.manager.metrics.reconciles.get()).values.reduce((sum, v) => sum + v.value, 0);
  const reconcilesBefore = await metric();
  const resyncStarted = performance.now();
  await operator.manager.resyncNow();
  await eventually(async () => (await metric()) >= reconcilesBefore + count + 1, 'resync finished', 300_000);
  const resyncMs = performance.now() - resyncStarted;
  await new Promise((resolve) => setTimeout(resolve, 500));
  const calls = operator.requests.slice(before);
  const byVerb = new Map<string, number>();
  for (const { verb } of calls) byVerb.set(verb, (byVerb.get(verb) ?? 0) + 1);
  const writes = calls.filter(({ verb }) => WRITE_VERBS.has(verb as never)).length;

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
  if (calls.length)
    console.log(`calls by verb: ${[...byVerb].map(([verb, n]) => `${verb}=${n}`).join(', ')}`);

  // 3. M Registries, the operator program in its own process (skipped when M <= N).
  if (memoryCount > count) await measureMemory(operator);
} finally {
  await h.stop();
}
