/**
 * A real Kubernetes control plane for tests, envtest-style: etcd and kube-apiserver (built by
 * hack/etcd.sh and hack/kube-apiserver.sh) on random loopback ports, no kubelet and no controllers.
 * Certificates come from the openssl CLI: a CA, the apiserver's serving certificate, client
 * certificates for users (an admin in system:masters, and any user a test wants, e.g. the
 * operator's service account name so RBAC from the Helm chart applies), and the service-account
 * signing pair. Every request is written to an audit log, so tests can count what a client did.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { toolPath } from './tools.ts';

const USE_SETPRIV = existsSync('/usr/bin/setpriv');

export interface AuditEvent {
  verb: string;
  requestURI: string;
  user: { username: string; groups?: string[] };
  objectRef?: {
    resource?: string;
    namespace?: string;
    name?: string;
    subresource?: string;
    apiGroup?: string;
  };
  responseStatus?: { code?: number };
  stage: string;
}

export interface ControlPlane {
  /** https://127.0.0.1:PORT */
  server: string;
  dir: string;
  /** A kubeconfig file for a user (client certificate, CN = user, O = groups). */
  kubeconfigFor(user: string, groups?: string[]): string;
  adminKubeconfig: string;
  admin: KubeConfig;
  /** Every audited request so far (stage ResponseComplete). */
  audit(): AuditEvent[];
  restartApiServer(): Promise<void>;
  stop(): Promise<void>;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function issueCertificate(dir: string, name: string, subject: string, extensions: string): void {
  openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`]);
  openssl(dir, ['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`]);
  writeFileSync(path.join(dir, `${name}.ext`), extensions);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-sha256',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.crt`,
  ]);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function launch(binary: string, args: string[], logFile: string): ChildProcess {
  const [command, commandArgs] = USE_SETPRIV
    ? ['setpriv', ['--pdeathsig', 'SIGKILL', '--', binary, ...args]]
    : [binary, args];
  const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  const keep = (chunk: Buffer) => {
    chunks.push(chunk);
    if (chunks.length > 400) chunks.splice(0, 100);
    writeFileSync(logFile, Buffer.concat(chunks));
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return child;
}

async function waitFor(
  check: () => Promise<boolean>,
  what: string,
  child: ChildProcess,
  timeoutMs: number,
  logFile: string,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`${what} exited with ${child.exitCode}:\n${readTail(logFile)}`);
    }
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} did not become ready in ${timeoutMs} ms:\n${readTail(logFile)}`);
}

function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-3000);
  } catch {
    return '(no log)';
  }
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export async function startControlPlane(): Promise<ControlPlane> {
  const [etcdBinary, apiServerBinary] = await Promise.all([toolPath('etcd'), toolPath('kube-apiserver')]);
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-kube-'));
  let etcd: ChildProcess | undefined;
  let apiServer: ChildProcess | undefined;
  const onExit = () => {
    etcd?.kill('SIGKILL');
    apiServer?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', onExit);

  openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key']);
  openssl(dir, [
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-subj',
    '/CN=wharf-test-ca',
    '-days',
    '2',
    '-out',
    'ca.crt',
  ]);
  issueCertificate(
    dir,
    'apiserver',
    '/CN=kube-apiserver',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n',
  );
  openssl(dir, ['genrsa', '-out', 'sa.key', '2048']);
  openssl(dir, ['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
  writeFileSync(
    path.join(dir, 'audit-policy.yaml'),
    stringify({
      apiVersion: 'audit.k8s.io/v1',
      kind: 'Policy',
      omitStages: ['RequestReceived'],
      rules: [{ level: 'Metadata' }],
    }),
  );

  const etcdPort = await freePort();
  const peerPort = await freePort();
  const etcdLog = path.join(dir, 'etcd.log');
  etcd = launch(
    etcdBinary,
    [
      '--name=default',
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync',
      '--log-level=error',
    ],
    etcdLog,
  );
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  await waitFor(async () => (await fetch(`${etcdUrl}/health`)).ok, 'etcd', etcd, 30_000, etcdLog);

  const port = await freePort();
  const server = `https://127.0.0.1:${port}`;
  const apiLog = path.join(dir, 'apiserver.log');
  const auditLog = path.join(dir, 'audit.log');
  const apiArgs = [
    `--etcd-servers=${etcdUrl}`,
    `--cert-dir=${path.join(dir, 'cert-dir')}`,
    `--tls-cert-file=${path.join(dir, 'apiserver.crt')}`,
    `--tls-private-key-file=${path.join(dir, 'apiserver.key')}`,
    `--client-ca-file=${path.join(dir, 'ca.crt')}`,
    `--secure-port=${port}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    '--authorization-mode=RBAC',
    // Room for a Service per Registry in bench/operator.ts's 1,000 (a /24 runs out at 254).
    '--service-cluster-ip-range=10.0.0.0/16',
    '--allow-privileged=true',
    '--disable-admission-plugins=ServiceAccount',
    `--service-account-issuer=${server}/`,
    `--service-account-key-file=${path.join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${path.join(dir, 'sa.key')}`,
    `--audit-policy-file=${path.join(dir, 'audit-policy.yaml')}`,
    `--audit-log-path=${auditLog}`,
    '--audit-log-mode=blocking',
    '--endpoint-reconciler-type=none',
    '--v=0',
  ];

  const users = new Map<string, string>();
  const kubeconfigFor = (user: string, groups: string[] = []): string => {
    const key = `${user}|${groups.join(',')}`;
    const existing = users.get(key);
    if (existing) return existing;
    const name = `user-${users.size}`;
    const subject = `/CN=${user}${groups.map((group) => `/O=${group}`).join('')}`;
    issueCertificate(dir, name, subject, 'extendedKeyUsage=clientAuth\n');
    const file = path.join(dir, `${name}.kubeconfig`);
    writeFileSync(
      file,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'test', cluster: { server, 'certificate-authority': path.join(dir, 'ca.crt') } }],
        users: [
          {
            name: user,
            user: {
              'client-certificate': path.join(dir, `${name}.crt`),
              'client-key': path.join(dir, `${name}.key`),
            },
          },
        ],
        contexts: [{ name: 'test', context: { cluster: 'test', user, namespace: 'default' } }],
        'current-context': 'test',
      }),
    );
    users.set(key, file);
    return file;
  };
  const adminKubeconfig = kubeconfigFor('wharf-test-admin', ['system:masters']);
  const admin = new KubeConfig();
  admin.loadFromFile(adminKubeconfig);

  const { Agent, fetch: undiciFetch } = await import('undici');
  const agent = new Agent({
    connect: {
      ca: readFileSync(path.join(dir, 'ca.crt')),
      cert: readFileSync(path.join(dir, 'user-0.crt')),
      key: readFileSync(path.join(dir, 'user-0.key')),
    },
  });
  const startApiServer = async () => {
    apiServer = launch(apiServerBinary, apiArgs, apiLog);
    await waitFor(
      async () => (await undiciFetch(`${server}/readyz`, { dispatcher: agent })).ok,
      'kube-apiserver',
      apiServer,
      120_000,
      apiLog,
    );
  };
  try {
    await startApiServer();
  } catch (error) {
    onExit();
    process.off('exit', onExit);
    throw error;
  }

  return {
    server,
    dir,
    kubeconfigFor,
    adminKubeconfig,
    admin,
    audit() {
      if (!existsSync(auditLog)) return [];
      return readFileSync(auditLog, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as AuditEvent)
        .filter((event) => event.stage === 'ResponseComplete');
    },
    async restartApiServer() {
      await stopChild(apiServer);
      await startApiServer();
    },
    async stop() {
      await stopChild(apiServer);
      await stopChild(etcd);
      await agent.close();
      process.off('exit', onExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
