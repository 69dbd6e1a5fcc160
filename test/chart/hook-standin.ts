/**
 * A KUBELET AND JOB-CONTROLLER STAND-IN for the chart's hooks (there is no kubelet in the test
 * control plane): runs a hook Pod's (or a Job's pod template's) container the way the kubelet would
 * on this machine, without a container image (the image's WORKDIR is the repository root and `node`
 * is Node 24): the same command, args and env, its ConfigMap volumes written at their mount paths
 * (an overlay on /etc in a private mount namespace), a real token of its ServiceAccount from the
 * TokenRequest API with the cluster CA at /var/run/secrets/kubernetes.io/serviceaccount (a private
 * tmpfs on /run), KUBERNETES_SERVICE_HOST/PORT pointing at the apiserver, runAsUser/runAsGroup from
 * its security context, and an /etc/hosts standing for cluster DNS. Then it reports the outcome in
 * the object's status as the kubelet (Pod phase) or the Job controller (conditions) would, which is
 * what helm waits for. Needs root (mount namespaces).
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { KubeClient } from '../../operator/kube/client.ts';
import type { ControlPlane } from '../support/control-plane.ts';
import { REPO_ROOT } from '../support/tools.ts';

interface Container {
  command: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  volumeMounts?: { name: string; mountPath: string }[];
}
export interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string } }[];
  securityContext?: { runAsUser?: number; runAsGroup?: number };
}
export type PodLike = KubernetesObject & { spec: PodSpec };
export type JobLike = KubernetesObject & { spec: { template: { spec: PodSpec } } };

export interface RunResult {
  code: number;
  output: string;
}

/** Runs the pod's first container to completion as the kubelet would (see the file comment). */
export async function runPodToCompletion(
  plane: ControlPlane,
  admin: KubeClient,
  namespace: string,
  spec: PodSpec,
  hosts: Record<string, string> = {},
): Promise<RunResult> {
  const container = spec.containers[0]!;
  const root = await mkdtemp(path.join(tmpdir(), 'wharf-hook-'));
  try {
    const upper = path.join(root, 'etc');
    mkdirSync(upper, { recursive: true });
    mkdirSync(path.join(root, 'work'));
    for (const mount of container.volumeMounts ?? []) {
      const volume = spec.volumes?.find((item) => item.name === mount.name);
      if (!volume?.configMap) throw new Error(`stand-in mounts ConfigMaps only: ${mount.name}`);
      if (!mount.mountPath.startsWith('/etc/'))
        throw new Error(`stand-in mounts under /etc only: ${mount.mountPath}`);
      const configMap = await admin.get<KubernetesObject & { data?: Record<string, string> }>(
        `/api/v1/namespaces/${namespace}/configmaps/${volume.configMap.name}`,
      );
      if (!configMap)
        throw new Error(`ConfigMap ${volume.configMap.name} does not exist: the pod would not start`);
      const dir = path.join(upper, mount.mountPath.slice('/etc/'.length));
      mkdirSync(dir, { recursive: true });
      for (const [file, text] of Object.entries(configMap.data ?? {}))
        writeFileSync(path.join(dir, file), text);
    }
    writeFileSync(
      path.join(upper, 'hosts'),
      [
        '127.0.0.1 localhost',
        ...Object.entries(hosts).map(([name, address]) => `${address} ${name}`),
        '',
      ].join('\n'),
    );
    const account = path.join(root, 'serviceaccount');
    mkdirSync(account);
    if (spec.automountServiceAccountToken !== false) {
      const name = spec.serviceAccountName ?? 'default';
      const review = await admin.request<{ status: { token: string } }>(
        'POST',
        `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
        {
          body: {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenRequest',
            spec: { expirationSeconds: 3600 },
          },
        },
      );
      writeFileSync(path.join(account, 'token'), review.status.token);
      writeFileSync(path.join(account, 'ca.crt'), await readFile(path.join(plane.dir, 'ca.crt')));
      writeFileSync(path.join(account, 'namespace'), namespace);
    }
    chmodSync(root, 0o755);
    const env: Record<string, string> = {
      PATH: `${path.dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
      HOME: '/tmp',
      KUBERNETES_SERVICE_HOST: new URL(plane.server).hostname,
      KUBERNETES_SERVICE_PORT: new URL(plane.server).port,
    };
    for (const variable of container.env ?? [])
      if (variable.value !== undefined) env[variable.name] = variable.value;
    const uid = spec.securityContext?.runAsUser;
    const gid = spec.securityContext?.runAsGroup ?? uid;
    const identity = uid === undefined ? '' : `--reuid ${uid} --regid ${gid} --clear-groups`;
    const script = [
      'chmod -R a+rX "$0"',
      'mount -t overlay overlay -o lowerdir=/etc,upperdir="$0"/etc,workdir="$0"/work /etc',
      'mount -t tmpfs tmpfs /run',
      'mkdir -p /run/secrets/kubernetes.io',
      'cp -r "$0"/serviceaccount /run/secrets/kubernetes.io/serviceaccount',
      'chmod -R a+rX /run/secrets',
      `exec setpriv --pdeathsig SIGKILL ${identity} -- "$@"`,
    ].join(' && ');
    return await new Promise<RunResult>((resolve) => {
      const child = spawn(
        'unshare',
        [
          '-m',
          '--propagation',
          'private',
          'sh',
          '-c',
          script,
          root,
          ...container.command,
          ...(container.args ?? []),
        ],
        { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 },
      );
      let output = '';
      child.stdout?.on('data', (chunk) => (output += chunk));
      child.stderr?.on('data', (chunk) => (output += chunk));
      child.on('close', (code) => resolve({ code: code ?? 1, output }));
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** Runs a Job's pod and reports it in the Job's status as the Job controller would. */
export async function runJob(
  plane: ControlPlane,
  admin: KubeClient,
  job: JobLike,
  hosts: Record<string, string> = {},
): Promise<RunResult> {
  const namespace = job.metadata!.namespace!;
  const startTime = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const result = await runPodToCompletion(plane, admin, namespace, job.spec.template.spec, hosts);
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const condition = (type: string, reason: string) => ({
    type,
    status: 'True',
    reason,
    message: `kubelet stand-in: exit code ${result.code}`,
    lastProbeTime: now,
    lastTransitionTime: now,
  });
  const status =
    result.code === 0
      ? {
          startTime,
          completionTime: now,
          succeeded: 1,
          conditions: [
            condition('SuccessCriteriaMet', 'CompletionsReached'),
            condition('Complete', 'CompletionsReached'),
          ],
        }
      : {
          startTime,
          failed: 1,
          conditions: [
            condition('FailureTarget', 'BackoffLimitExceeded'),
            condition('Failed', 'BackoffLimitExceeded'),
          ],
        };
  await admin.request('PATCH', `/apis/batch/v1/namespaces/${namespace}/jobs/${job.metadata!.name}/status`, {
    body: { status },
    contentType: 'application/merge-patch+json',
  });
  return result;
}

/** Runs a bare Pod (a `helm test` hook) and reports its phase as the kubelet would. */
export async function runPod(
  plane: ControlPlane,
  admin: KubeClient,
  pod: PodLike,
  hosts: Record<string, string> = {},
): Promise<RunResult> {
  const namespace = pod.metadata!.namespace!;
  const result = await runPodToCompletion(plane, admin, namespace, pod.spec, hosts);
  await admin.request('PATCH', `/api/v1/namespaces/${namespace}/pods/${pod.metadata!.name}/status`, {
    body: { status: { phase: result.code === 0 ? 'Succeeded' : 'Failed' } },
    contentType: 'application/merge-patch+json',
  });
  return result;
}
