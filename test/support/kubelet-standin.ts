/**
 * A KUBELET STAND-IN for tests: runs the pods of a Deployment the way its pod template says, on this
 * machine, without containers. Same command and args (the image's WORKDIR is the repository root and
 * `node` is Node 24), the same environment (secretKeyRef/configMapKeyRef resolved from the API), the
 * same ConfigMaps and Secrets written as files at their mount paths (an overlay on /etc inside a
 * private mount namespace, so /etc/wharf/... exists only for that process), runAsUser/runAsGroup
 * from the security context, and a loopback address as the pod IP. Service DNS names resolve to pod
 * IPs through the pod's /etc/hosts (the stand-in for cluster DNS + kube-proxy with one replica).
 * A PersistentVolumeClaim is a directory of this machine (given per claim name, standing for the
 * bound volume), bind-mounted read-write at its mount path and given to the fsGroup as the kubelet does.
 * Needs root (mount namespaces); tests skip it otherwise.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { type KubeClient, resourcePath } from '../../operator/kube/client.ts';
import { decode } from '../../operator/runtime/objects.ts';
import { REPO_ROOT, toolPath } from './tools.ts';

export const canRunPods = () => process.getuid?.() === 0 && process.platform === 'linux';

type KeyItems = { key: string; path: string }[] | undefined;
interface VolumeSpec {
  name: string;
  configMap?: { name: string; items?: KeyItems };
  secret?: { secretName: string; items?: KeyItems };
  projected?: {
    sources: {
      secret?: { name: string; items?: KeyItems };
      configMap?: { name: string; items?: KeyItems };
    }[];
  };
  emptyDir?: Record<string, never>;
  persistentVolumeClaim?: { claimName: string };
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string };
    configMapKeyRef?: { name: string; key: string };
  };
}
interface Container {
  command: string[];
  args?: string[];
  env?: EnvVar[];
  volumeMounts?: { name: string; mountPath: string }[];
  ports?: { name?: string; containerPort: number }[];
}
export type Deployment = KubernetesObject & {
  spec: {
    template: {
      spec: {
        containers: Container[];
        volumes?: VolumeSpec[];
        securityContext?: { runAsUser?: number; runAsGroup?: number; fsGroup?: number };
      };
    };
  };
};

export interface Pod {
  name: string;
  ip: string;
  port: number;
  output: () => string;
  stop: () => Promise<void>;
}

/** A fresh loopback address to serve as a pod (or ingress) IP. */
export function loopbackAddress(): string {
  return `127.${randomInt(100, 250)}.${randomInt(1, 250)}.${randomInt(2, 250)}`;
}

async function keyedData(client: KubeClient, namespace: string, kind: 'Secret' | 'ConfigMap', name: string) {
  const object = await client.get<KubernetesObject & { data?: Record<string, string> }>(
    resourcePath('v1', kind, namespace, name),
  );
  if (!object) throw new Error(`${kind} ${namespace}/${name} does not exist: the pod would not start`);
  return kind === 'Secret' ? decode(object.data) : (object.data ?? {});
}

function writeItems(dir: string, data: Record<string, string>, items: KeyItems): void {
  const entries = items ? items.map((item) => [item.path, data[item.key]] as const) : Object.entries(data);
  for (const [file, value] of entries) {
    if (value === undefined) throw new Error(`key for ${file} is missing`);
    const target = path.join(dir, file);
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, value);
  }
}

/**
 * Starts one pod of the Deployment; `hosts` maps host names to addresses for the pod's /etc/hosts,
 * `claims` each PersistentVolumeClaim name to the directory standing for its volume.
 */
export async function startPod(
  client: KubeClient,
  deployment: Deployment,
  ip: string,
  hosts: Record<string, string>,
  claims: Record<string, string> = {},
): Promise<Pod> {
  const namespace = deployment.metadata!.namespace!;
  const podSpec = deployment.spec.template.spec;
  const container = podSpec.containers[0]!;
  const root = await mkdtemp(path.join(tmpdir(), 'wharf-pod-'));
  const upper = path.join(root, 'etc');
  mkdirSync(upper, { recursive: true });
  mkdirSync(path.join(root, 'work'));
  const binds: { source: string; target: string }[] = [];
  for (const mount of container.volumeMounts ?? []) {
    const volume = podSpec.volumes?.find((item) => item.name === mount.name);
    if (!volume || volume.emptyDir) continue; // emptyDir (/tmp): the machine's own
    if (volume.persistentVolumeClaim) {
      const { claimName } = volume.persistentVolumeClaim;
      // The kubelet would not start the pod before its claim exists.
      if (!(await client.get(resourcePath('v1', 'PersistentVolumeClaim', namespace, claimName))))
        throw new Error(
          `PersistentVolumeClaim ${namespace}/${claimName} does not exist: the pod would not start`,
        );
      const source = claims[claimName];
      if (!source) throw new Error(`no directory stands for claim ${claimName}`);
      const fsGroup = podSpec.securityContext?.fsGroup;
      if (fsGroup !== undefined) {
        chownSync(source, 0, fsGroup);
        chmodSync(source, 0o2775);
      }
      binds.push({ source, target: mount.mountPath });
      continue;
    }
    if (!mount.mountPath.startsWith('/etc/'))
      throw new Error(`stand-in supports mounts under /etc only: ${mount.mountPath}`);
    const dir = path.join(upper, mount.mountPath.slice('/etc/'.length));
    mkdirSync(dir, { recursive: true });
    if (volume.configMap)
      writeItems(
        dir,
        await keyedData(client, namespace, 'ConfigMap', volume.configMap.name),
        volume.configMap.items,
      );
    if (volume.secret)
      writeItems(
        dir,
        await keyedData(client, namespace, 'Secret', volume.secret.secretName),
        volume.secret.items,
      );
    for (const source of volume.projected?.sources ?? []) {
      if (source.secret)
        writeItems(
          dir,
          await keyedData(client, namespace, 'Secret', source.secret.name),
          source.secret.items,
        );
      if (source.configMap)
        writeItems(
          dir,
          await keyedData(client, namespace, 'ConfigMap', source.configMap.name),
          source.configMap.items,
        );
    }
  }
  writeFileSync(
    path.join(upper, 'hosts'),
    ['127.0.0.1 localhost', ...Object.entries(hosts).map(([name, address]) => `${address} ${name}`)].join(
      '\n',
    ) + '\n',
  );
  // The pod's user must read its files (Secrets are 0644 in a pod too, under a 0755 directory tree).
  const makeReadable = (dir: string) => chmodSync(dir, 0o755);
  makeReadable(root);
  makeReadable(upper);

  const env: Record<string, string> = {
    PATH: `${path.dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
    HOME: '/tmp',
    HOST: ip, // the pod's own network address
  };
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) env[variable.name] = variable.value;
    const ref = variable.valueFrom?.secretKeyRef ?? variable.valueFrom?.configMapKeyRef;
    if (ref) {
      const data = await keyedData(
        client,
        namespace,
        variable.valueFrom?.secretKeyRef ? 'Secret' : 'ConfigMap',
        ref.name,
      );
      const value = data[ref.key];
      if (value === undefined) throw new Error(`env ${variable.name}: key ${ref.key} missing in ${ref.name}`);
      env[variable.name] = value;
    }
  }
  const uid = podSpec.securityContext?.runAsUser;
  const gid = podSpec.securityContext?.runAsGroup ?? uid;
  const identity =
    uid === undefined ? [] : ['--reuid', String(uid), '--regid', String(gid), '--clear-groups'];
  const quote = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;
  // The mount point is made on this machine (an empty directory); what is mounted on it is private.
  const bindMounts = binds
    .map(
      ({ source, target }) =>
        `mkdir -p ${quote(target)} && mount --bind ${quote(source)} ${quote(target)} && `,
    )
    .join('');
  const script = `chmod -R a+rX "$0" && mount -t overlay overlay -o lowerdir=/etc,upperdir="$0"/etc,workdir="$0"/work /etc && ${bindMounts}exec setpriv --pdeathsig SIGKILL ${identity.join(' ')} -- "$@"`;
  const child: ChildProcess = spawn(
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
    { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = container.ports?.[0]?.containerPort ?? 8080;
  return {
    name: deployment.metadata!.name!,
    ip,
    port,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Waits for the pod's readiness probe path to answer 200, as the kubelet would before routing to it. */
export async function waitReady(pod: Pod, probePath = '/readyz', timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await fetch(`http://${pod.ip}:${pod.port}${probePath}`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`pod ${pod.name} not ready in ${timeoutMs} ms:\n${pod.output()}`);
}

/**
 * Runs a client program (cargo, skopeo) as if on a machine whose resolver maps `hosts` (e.g. the
 * Ingress host to the ingress address): an /etc/hosts overlay in a private mount namespace.
 */
export async function runWithHosts(
  hosts: Record<string, string>,
  command: string,
  args: string[],
  { cwd, env, timeoutMs = 300_000 }: { cwd: string; env: Record<string, string>; timeoutMs?: number },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const root = await mkdtemp(path.join(tmpdir(), 'wharf-client-'));
  mkdirSync(path.join(root, 'etc'));
  mkdirSync(path.join(root, 'work'));
  writeFileSync(
    path.join(root, 'etc', 'hosts'),
    ['127.0.0.1 localhost', ...Object.entries(hosts).map(([name, address]) => `${address} ${name}`)].join(
      '\n',
    ) + '\n',
  );
  const script =
    'mount -t overlay overlay -o lowerdir=/etc,upperdir="$0"/etc,workdir="$0"/work /etc && exec "$@"';
  try {
    return await new Promise((resolve) => {
      const child = spawn(
        'unshare',
        ['-m', '--propagation', 'private', 'sh', '-c', script, root, command, ...args],
        {
          cwd,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
          timeout: timeoutMs,
        },
      );
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (chunk) => (stdout += chunk));
      child.stderr?.on('data', (chunk) => (stderr += chunk));
      child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/**
 * skopeo as a user on such a machine runs it: its login file and an accept-anything signature policy
 * (what `copy` needs) in `work`, HOME there too. Returns a runner: `skopeo('copy', src, dest)`.
 */
export async function skopeoWithHosts(
  hosts: Record<string, string>,
  work: string,
): Promise<
  (command: string, ...args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>
> {
  writeFileSync(
    path.join(work, 'policy.json'),
    JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }),
  );
  const binary = await toolPath('skopeo');
  return (command, ...args) =>
    runWithHosts(
      hosts,
      binary,
      [
        ...(command === 'copy' ? [`--policy=${path.join(work, 'policy.json')}`] : []),
        command,
        `--authfile=${path.join(work, 'auth.json')}`,
        ...args,
      ],
      { cwd: work, env: { PATH: process.env.PATH ?? '', HOME: work } },
    );
}
