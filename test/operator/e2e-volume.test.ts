/**
 * End to end in storage mode volume, with nothing but the cluster (no S3, no Secret made by hand):
 * `helm install --set quickstart.enabled=true` makes an AuthService and a Registry, the operator
 * reconciles them, the KUBELET STAND-IN starts each server exactly as its pod template says, its
 * PersistentVolumeClaim standing as a directory of this machine mounted at the claim's mount path,
 * and the commands the install's NOTES print log cargo and skopeo in through the Ingress host.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resourcePath } from '../../operator/kube/client.ts';
import { fetchSecret } from '../../operator/runtime/objects.ts';
import { CARGO, cargoHome, registryToml, writeCrate } from '../cargo/cargo-cli.ts';
import { writeOciLayout } from '../oci/layout.ts';
import { type IngressObject, startIngressProxy } from '../support/ingress-proxy.ts';
import {
  canRunPods,
  type Deployment,
  loopbackAddress,
  type Pod,
  runWithHosts,
  skopeoWithHosts,
  startPod,
  waitReady,
} from '../support/kubelet-standin.ts';
import { toolPath } from '../support/tools.ts';
import {
  condition,
  eventually,
  type Harness,
  markDeploymentsAvailable,
  OPERATOR_NAMESPACE,
  startHarness,
  waitForRegistryConfigured,
  wharfPath,
} from './harness.ts';

const NS = 'e2e-volume';
const HOST = 'crates.volume.test';
const DEPLOYMENTS = ['wharf-auth', 'wharf-registry'];
let h: Harness;
/** What `helm install` printed: NOTES.txt with the next commands. */
let notes: string;
let pods: Pod[] = [];
let proxy: Awaited<ReturnType<typeof startIngressProxy>> | undefined;
const ingressAddress = loopbackAddress();
/** The directories standing for the bound volumes, by claim name. */
const volumes: Record<string, string> = {};
let volumesRoot: string;
let addresses: Record<string, string>;

function viaIngress(method: string, urlPath: string, body?: unknown, auth?: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        host: ingressAddress,
        port: 80,
        method,
        path: urlPath,
        headers: {
          host: HOST,
          ...(payload ? { 'content-type': 'application/json' } : {}),
          ...(auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {}),
        },
      },
      (response) => {
        let text = '';
        response.on('data', (chunk) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** One pod per Deployment, as the stand-in kubelet runs them, each on its claim's directory. */
async function startPods(): Promise<void> {
  const hosts = Object.fromEntries(DEPLOYMENTS.map((name) => [`${name}.${NS}.svc`, addresses[name]!]));
  pods = [];
  for (const name of DEPLOYMENTS) {
    const deployment = (await h.admin.get<Deployment>(resourcePath('apps/v1', 'Deployment', NS, name)))!;
    pods.push(await startPod(h.admin, deployment, addresses[name]!, hosts, volumes));
  }
  for (const pod of pods) await waitReady(pod);
}

/** Every file of the fs store's objects under a volume directory, relative to it. */
async function storedFiles(claim: string): Promise<string[]> {
  const root = path.join(volumes[claim]!, 'objects');
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)));
}

describe.runIf(canRunPods())('operator end to end in storage mode volume (kubelet stand-in)', () => {
  beforeAll(async () => {
    h = await startHarness();
    await h.helm('install', 'wharf', 'charts/wharf', '--namespace', OPERATOR_NAMESPACE, '--create-namespace');
    await h.admin.request('POST', '/api/v1/namespaces', {
      body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    });
    await h.startOperator();
    notes = await h.helm(
      'install',
      'quick',
      'charts/wharf',
      '--namespace',
      NS,
      '--set',
      'quickstart.enabled=true,leaderElection.enabled=false',
      '--set',
      `quickstart.registry.host=${HOST},quickstart.trustedProxies[0]=${ingressAddress}`,
    );
    // The AuthService's configuration lists the Registry before its pod starts.
    await waitForRegistryConfigured(h, NS, 'wharf', 'wharf');

    volumesRoot = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-volumes-'));
    for (const claim of ['wharf-auth-data', 'wharf-registry-data']) {
      volumes[claim] = path.join(volumesRoot, claim);
      await mkdir(volumes[claim]!);
    }
    addresses = Object.fromEntries(DEPLOYMENTS.map((name) => [name, loopbackAddress()]));
    await startPods();
    await markDeploymentsAvailable(h.admin, NS);
    // Registered once the AuthService's pods that know its credentials run.
    await eventually(
      async () =>
        condition(await h.admin.get(wharfPath('Registry', NS, 'wharf')), 'CredentialsRegistered')?.status ===
        'True',
      'Registry registered',
    );
    const ingress = (await h.admin.get<IngressObject>(
      resourcePath('networking.k8s.io/v1', 'Ingress', NS, 'wharf-registry'),
    ))!;
    proxy = await startIngressProxy(
      [ingress],
      Object.fromEntries(DEPLOYMENTS.map((name) => [name, { host: addresses[name]!, port: 8080 }])),
      { host: ingressAddress, port: 80 },
    );
  }, 300_000);

  afterAll(async () => {
    await proxy?.close();
    for (const pod of pods) await pod.stop();
    await h?.stop();
    if (volumesRoot) await rm(volumesRoot, { recursive: true, force: true });
  });

  it('brings both resources to Ready with no S3 anywhere', async () => {
    await eventually(
      async () =>
        condition(await h.admin.get(wharfPath('Registry', NS, 'wharf')), 'Ready')?.status === 'True',
      'Registry Ready',
    );
    expect(condition(await h.admin.get(wharfPath('AuthService', NS, 'wharf')), 'Ready')?.status).toBe('True');
    for (const pod of pods) expect(pod.output()).toMatch(/"store":"fs","dataDir":"\/var\/lib\/wharf"/);
  });

  it('creates a user through the Ingress host; the AuthService keeps it on its own volume', async () => {
    const admin = await fetchSecret(h.admin, NS, 'wharf-auth-admin');
    const created = await viaIngress(
      'POST',
      '/ktra/api/v1/new_user/alice',
      { password: 'alice-password-1' },
      `admin:${admin!.password}`,
    );
    expect(created.status, created.body).toBe(200);
    expect((await storedFiles('wharf-auth-data')).join('\n')).toMatch(/alice/);
    expect((await storedFiles('wharf-registry-data')).join('\n')).not.toMatch(/alice/);
  });

  it("cargo logs in with the NOTES' command, publishes and builds through the Ingress host, the crate on the Registry volume", async () => {
    // NOTES command 1 reads the password the operator generated; command 2, run as printed, turns
    // it into a cargo token through the Ingress host.
    expect(notes).toContain(
      `PASSWORD=$(kubectl -n ${NS} get secret wharf-auth-admin -o jsonpath='{.data.password}' | base64 -d)`,
    );
    expect(notes).toContain(`index = "sparse+http://${HOST}/index/"`);
    const password = (await fetchSecret(h.admin, NS, 'wharf-auth-admin'))!.password!;
    const loginCommand = /^ {2}curl [\s\S]*?cargo login --registry wharf$/m.exec(notes)?.[0];
    expect(loginCommand).toBeDefined();
    const work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-volume-cargo-'));
    try {
      const home = await cargoHome(registryToml('wharf', `http://${HOST}`));
      const env = {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        CARGO_HOME: home,
        CARGO_TARGET_DIR: path.join(work, 'target'),
        RUSTC: execFileSync('rustup', ['which', 'rustc'], { encoding: 'utf8' }).trim(),
        CARGO_TERM_COLOR: 'never',
      };
      const hosts = { [HOST]: ingressAddress };
      const login = await runWithHosts(hosts, 'sh', ['-c', loginCommand!], {
        cwd: work,
        env: { ...env, PASSWORD: password },
      });
      expect(login.code, login.stderr).toBe(0);
      const library = await writeCrate(work, {
        name: 'volume-hello',
        version: '0.1.0',
        files: { 'src/lib.rs': 'pub fn hello() -> &\'static str { "hello from a volume" }\n' },
      });
      // No token in the environment: cargo uses the one `cargo login` stored.
      const published = await runWithHosts(
        hosts,
        CARGO,
        ['publish', '--registry', 'wharf', '--no-verify', '--allow-dirty'],
        { cwd: library, env },
      );
      expect(published.code, published.stderr).toBe(0);
      expect((await storedFiles('wharf-registry-data')).join('\n')).toMatch(/volume-hello/);
      expect((await storedFiles('wharf-auth-data')).join('\n')).not.toMatch(/volume-hello/);
      const user = await writeCrate(work, {
        name: 'volume-user',
        version: '0.1.0',
        manifest: '[dependencies]\nvolume-hello = { version = "0.1", registry = "wharf" }\n',
        files: { 'src/main.rs': 'fn main() { println!("{}", volume_hello::hello()); }\n' },
      });
      const built = await runWithHosts(hosts, CARGO, ['build', '--quiet'], { cwd: user, env });
      expect(built.code, built.stderr).toBe(0);
      expect(execFileSync(path.join(work, 'target', 'debug', 'volume-user'), { encoding: 'utf8' })).toBe(
        'hello from a volume\n',
      );
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 300_000);

  it('skopeo logs in, pushes and pulls an image through the Ingress host, and finds it after the pods restart', async () => {
    const work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-volume-oci-'));
    try {
      const layout = await writeOciLayout(path.join(work, 'layout'));
      const skopeo = await skopeoWithHosts({ [HOST]: ingressAddress }, work);
      // NOTES command 3 is `docker login`; skopeo speaks the same protocol (no Docker engine here).
      const dockerLogin = `echo "$PASSWORD" | docker login ${HOST} -u admin --password-stdin`;
      expect(notes).toContain(dockerLogin);
      const login = await runWithHosts(
        { [HOST]: ingressAddress },
        'sh',
        [
          '-c',
          dockerLogin.replace(
            'docker login',
            `${await toolPath('skopeo')} login --tls-verify=false --authfile=${path.join(work, 'auth.json')}`,
          ),
        ],
        {
          cwd: work,
          env: {
            PATH: process.env.PATH ?? '',
            HOME: work,
            PASSWORD: (await fetchSecret(h.admin, NS, 'wharf-auth-admin'))!.password!,
          },
        },
      );
      expect(login.code, login.stderr).toBe(0);
      const push = await skopeo(
        'copy',
        '--dest-tls-verify=false',
        `oci:${path.join(work, 'layout')}:v1`,
        `docker://${HOST}/admin/app:v1`,
      );
      expect(push.code, push.stderr).toBe(0);
      const blob = layout.image.digest.replace('sha256:', '');
      expect((await storedFiles('wharf-registry-data')).join('\n')).toMatch(new RegExp(blob));

      // Recreate: the old pods stop, new ones start on the same volumes; nothing was lost.
      for (const pod of pods) await pod.stop();
      await startPods();
      const inspect = await skopeo('inspect', '--tls-verify=false', `docker://${HOST}/admin/app:v1`);
      expect(inspect.code, inspect.stderr).toBe(0);
      expect(JSON.parse(inspect.stdout).Digest).toBe(layout.image.digest);
      const pull = await skopeo(
        'copy',
        '--src-tls-verify=false',
        `docker://${HOST}/admin/app:v1`,
        `oci:${path.join(work, 'pulled')}:v1`,
      );
      expect(pull.code, pull.stderr).toBe(0);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 300_000);
});
