/**
 * End to end: the operator reconciles an AuthService and a Registry on a real control plane; then a
 * KUBELET STAND-IN starts the servers exactly as the generated pod templates say (command, args,
 * env, mounted ConfigMaps/Secrets as files, non-root user) on MinIO, and an ingress proxy built from
 * the generated Ingress routes clients by host and path.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
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
import {
  condition,
  createNamespaceWithS3Secret,
  eventually,
  type Harness,
  markDeploymentsAvailable,
  OPERATOR_NAMESPACE,
  startHarness,
  waitForRegistryConfigured,
  wharfPath,
} from './harness.ts';

const NS = 'e2e';
const HOST = 'crates.example.test';
let h: Harness;
const pods: Pod[] = [];
let proxy: Awaited<ReturnType<typeof startIngressProxy>> | undefined;
const ingressAddress = loopbackAddress();

/**
 * An HTTP request to the ingress address with a Host header, as a client resolving HOST would send,
 * from `from` (a loopback address standing for the client machine) when given.
 */
function viaIngress(method: string, path: string, body?: unknown, auth?: string, from?: string) {
  return new Promise<{ status: number; body: string; headers: Record<string, string | undefined> }>(
    (resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          host: ingressAddress,
          port: 80,
          method,
          path,
          ...(from ? { localAddress: from } : {}),
          headers: {
            host: HOST,
            ...(payload ? { 'content-type': 'application/json' } : {}),
            ...(auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {}),
          },
        },
        (response) => {
          let text = '';
          response.on('data', (chunk) => (text += chunk));
          response.on('end', () =>
            resolve({
              status: response.statusCode ?? 0,
              body: text,
              headers: { location: response.headers.location },
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(payload);
    },
  );
}

describe.runIf(canRunPods())('operator end to end (kubelet stand-in)', () => {
  beforeAll(async () => {
    h = await startHarness();
    await h.helm('install', 'wharf', 'charts/wharf', '--namespace', OPERATOR_NAMESPACE, '--create-namespace');
    await createNamespaceWithS3Secret(h, NS);
    await h.startOperator();
    const storage = {
      endpoint: h.minio.endpoint,
      forcePathStyle: true,
      credentialsSecretRef: { name: 's3' },
      deletionPolicy: 'Delete',
    };
    await h.admin.create({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'AuthService',
      metadata: { name: 'main', namespace: NS },
      spec: { storage },
    } as KubernetesObject);
    await h.admin.create({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'Registry',
      metadata: { name: 'crates', namespace: NS },
      spec: {
        authServiceRef: { name: 'main' },
        storage,
        // The stand-in controller's own address, as the servers see it.
        ingress: { host: HOST, trustedProxies: [ingressAddress] },
      },
    } as KubernetesObject);
    // The AuthService's configuration must already list the Registry before its pod starts.
    await waitForRegistryConfigured(h, NS, 'main', 'crates');

    // The stand-in: one pod per Deployment, Service names resolving to the pod addresses.
    const deployments = ['main-auth', 'crates-registry'];
    const addresses = Object.fromEntries(deployments.map((name) => [name, loopbackAddress()]));
    const hosts = Object.fromEntries(deployments.map((name) => [`${name}.${NS}.svc`, addresses[name]!]));
    for (const name of deployments) {
      const deployment = (await h.admin.get<Deployment>(resourcePath('apps/v1', 'Deployment', NS, name)))!;
      pods.push(await startPod(h.admin, deployment, addresses[name]!, hosts));
    }
    for (const pod of pods) await waitReady(pod);
    await markDeploymentsAvailable(h.admin, NS);
    // Registered once the AuthService's pods that know its credentials run.
    await eventually(
      async () =>
        condition(await h.admin.get(wharfPath('Registry', NS, 'crates')), 'CredentialsRegistered')?.status ===
        'True',
      'Registry registered',
    );

    const ingress = (await h.admin.get<IngressObject>(
      resourcePath('networking.k8s.io/v1', 'Ingress', NS, 'crates-registry'),
    ))!;
    proxy = await startIngressProxy(
      [ingress],
      Object.fromEntries(pods.map((pod) => [pod.name, { host: pod.ip, port: pod.port }])),
      {
        host: ingressAddress,
        port: 80,
      },
    );
  }, 300_000);

  afterAll(async () => {
    await proxy?.close();
    for (const pod of pods) await pod.stop();
    await h?.stop();
  });

  it('brings both resources to Ready once their pods serve', async () => {
    await eventually(
      async () =>
        condition(await h.admin.get(wharfPath('Registry', NS, 'crates')), 'Ready')?.status === 'True',
      'Registry Ready',
    );
    expect(condition(await h.admin.get(wharfPath('AuthService', NS, 'main')), 'Ready')?.status).toBe('True');
  });

  it('routes the Ktra user endpoints on the Registry host to the AuthService', async () => {
    const admin = await fetchSecret(h.admin, NS, 'main-auth-admin');
    const created = await viaIngress(
      'POST',
      '/ktra/api/v1/new_user/alice',
      { password: 'alice-password-1' },
      `admin:${admin!.password}`,
    );
    expect(created.status, created.body).toBe(200);
    expect(JSON.parse(created.body).token).toMatch(/^wharf_/);
    const login = await viaIngress('POST', '/ktra/api/v1/login/alice', { password: 'alice-password-1' });
    expect(login.status).toBe(200);
    const wrong = await viaIngress('POST', '/ktra/api/v1/login/alice', { password: 'nope-nope-nope' });
    expect(wrong.status).toBe(403);
    expect(proxy!.hits.get('main-auth')).toBeGreaterThanOrEqual(3);
  });

  it("sees each client's own address behind the Ingress, and believes no one else's X-Forwarded-For", async () => {
    const auth = pods.find((pod) => pod.name === 'main-auth')!;
    const failures = () =>
      auth
        .output()
        .split('\n')
        .filter((line) => line.includes('"login.failed"'));
    const before = failures().length;
    const client = loopbackAddress();
    const wrong = await viaIngress(
      'POST',
      '/ktra/api/v1/login/alice',
      { password: 'wrong-password-1' },
      undefined,
      client,
    );
    expect(wrong.status).toBe(403);
    await eventually(async () => failures().length > before, 'an audit line');
    // The identity paths reach the AuthService through the Registry's Ingress: it believes the
    // controller listed in the Registry's spec.ingress.trustedProxies.
    expect(failures().at(-1)).toContain(`"address":"${client}"`);
    // A pod that calls the server directly is not a trusted proxy: its header is ignored.
    const pod = loopbackAddress();
    const forged = await new Promise<number>((resolve, reject) => {
      request(
        {
          host: auth.ip,
          port: auth.port,
          localAddress: pod,
          method: 'POST',
          path: '/ktra/api/v1/login/alice',
          headers: { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.23' },
        },
        (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        },
      )
        .on('error', reject)
        .end(JSON.stringify({ password: 'wrong-password-2' }));
    });
    expect(forged).toBe(403);
    await eventually(async () => failures().length > before + 1, 'a second audit line');
    expect(failures().at(-1)).toContain(`"address":"${pod}"`);
  });

  it('serves /metrics on the pod port `metrics` only, never through the Ingress', async () => {
    for (const pod of pods) {
      const metrics = await fetch(`http://${pod.ip}:9464/metrics`);
      expect(metrics.status, pod.name).toBe(200);
      expect(await metrics.text()).toContain('wharf_http_requests_total');
      expect((await fetch(`http://${pod.ip}:${pod.port}/metrics`)).status, pod.name).toBe(404);
    }
    expect((await viaIngress('GET', '/metrics')).status).toBe(404);
  });

  it('routes everything else to the Registry', async () => {
    const before = proxy!.hits.get('crates-registry') ?? 0;
    const ready = await viaIngress('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(proxy!.hits.get('crates-registry')).toBe(before + 1);
  });

  it('gives the Registry working RestAuth credentials at its AuthService', async () => {
    const client = await fetchSecret(h.admin, NS, 'crates-registry-client');
    const auth = pods.find((pod) => pod.name === 'main-auth')!;
    const verify = await fetch(`http://${auth.ip}:${auth.port}/restauth/users/alice/`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`registry-crates:${client!.password}`).toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ password: 'alice-password-1' }),
    });
    expect([200, 204]).toContain(verify.status); // RestAuth: password correct
    const wrongService = await fetch(`http://${auth.ip}:${auth.port}/restauth/users/alice/`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from('registry-crates:not-the-password').toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ password: 'alice-password-1' }),
    });
    expect(wrongService.status).toBe(401);
  });

  it('cargo publish and cargo build work through the Ingress host', async () => {
    const login = await viaIngress('POST', '/ktra/api/v1/login/alice', { password: 'alice-password-1' });
    const token = JSON.parse(login.body).token as string;
    const work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-cargo-'));
    try {
      const home = await cargoHome(registryToml('wharf', `http://${HOST}`));
      const env = {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        CARGO_HOME: home,
        CARGO_TARGET_DIR: path.join(work, 'target'),
        RUSTC: execFileSync('rustup', ['which', 'rustc'], { encoding: 'utf8' }).trim(),
        CARGO_TERM_COLOR: 'never',
        CARGO_REGISTRIES_WHARF_TOKEN: token,
      };
      const hosts = { [HOST]: ingressAddress };
      const library = await writeCrate(work, {
        name: 'e2e-hello',
        version: '0.1.0',
        files: { 'src/lib.rs': 'pub fn hello() -> &\'static str { "hello through the ingress" }\n' },
      });
      const registryHitsBefore = proxy!.hits.get('crates-registry') ?? 0;
      const published = await runWithHosts(
        hosts,
        CARGO,
        ['publish', '--registry', 'wharf', '--no-verify', '--allow-dirty'],
        { cwd: library, env },
      );
      expect(published.code, published.stderr).toBe(0);
      const user = await writeCrate(work, {
        name: 'e2e-user',
        version: '0.1.0',
        manifest: '[dependencies]\ne2e-hello = { version = "0.1", registry = "wharf" }\n',
        files: { 'src/main.rs': 'fn main() { println!("{}", e2e_hello::hello()); }\n' },
      });
      const built = await runWithHosts(hosts, CARGO, ['build', '--quiet'], { cwd: user, env });
      expect(built.code, built.stderr).toBe(0);
      expect(execFileSync(path.join(work, 'target', 'debug', 'e2e-user'), { encoding: 'utf8' })).toBe(
        'hello through the ingress\n',
      );
      expect(proxy!.hits.get('crates-registry')).toBeGreaterThan(registryHitsBefore + 2);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 300_000);

  it('skopeo logs in, pushes and pulls an image through the Ingress host', async () => {
    const work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-oci-'));
    try {
      const layout = await writeOciLayout(path.join(work, 'layout'));
      const skopeo = await skopeoWithHosts({ [HOST]: ingressAddress }, work);
      const before = proxy!.hits.get('crates-registry') ?? 0;
      const login = await skopeo(
        'login',
        '--tls-verify=false',
        '-u',
        'alice',
        '-p',
        'alice-password-1',
        HOST,
      );
      expect(login.code, login.stderr).toBe(0);
      const push = await skopeo(
        'copy',
        '--dest-tls-verify=false',
        `oci:${path.join(work, 'layout')}:v1`,
        `docker://${HOST}/alice/app:v1`,
      );
      expect(push.code, push.stderr).toBe(0);
      const inspect = await skopeo('inspect', '--tls-verify=false', `docker://${HOST}/alice/app:v1`);
      expect(inspect.code, inspect.stderr).toBe(0);
      expect(JSON.parse(inspect.stdout).Digest).toBe(layout.image.digest);
      const pull = await skopeo(
        'copy',
        '--src-tls-verify=false',
        `docker://${HOST}/alice/app:v1`,
        `oci:${path.join(work, 'pulled')}:v1`,
      );
      expect(pull.code, pull.stderr).toBe(0);
      expect(proxy!.hits.get('crates-registry')).toBeGreaterThan(before + 4);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 300_000);

  it('configures OpenID login: a registered client, and the rolled AuthService pod redirects /me to the provider', async () => {
    const oidcModule = 'oidc-provider';
    const { Provider } = (await import(oidcModule)) as {
      Provider: new (
        issuer: string,
        configuration: Record<string, unknown>,
      ) => { callback: () => (request: IncomingMessage, response: ServerResponse) => void };
    };
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    server.on(
      'request',
      new Provider(issuer, { features: { registration: { enabled: true } }, clients: [] }).callback(),
    );
    try {
      await h.admin.create({
        apiVersion: 'wharf.dev/v1alpha1',
        kind: 'OpenIdProvider',
        metadata: { name: 'sso', namespace: NS },
        spec: {
          issuerUrl: issuer,
          allowInsecureRequests: true,
          redirectUris: [
            `http://${HOST}/ktra/api/v1/openid/me`,
            `http://${HOST}/ktra/api/v1/openid/replace_token`,
          ],
        },
      } as KubernetesObject);
      const deploymentPath = resourcePath('apps/v1', 'Deployment', NS, 'main-auth');
      const hashBefore = (await h.admin.get<
        Deployment & { spec: { template: { metadata: { annotations: Record<string, string> } } } }
      >(deploymentPath))!.spec.template.metadata.annotations['wharf.dev/config-hash'];
      await h.admin.mergePatch(wharfPath('AuthService', NS, 'main'), {
        spec: { openIdProviders: [{ name: 'sso' }] },
      });
      const deployment = await eventually(
        async () => {
          const current = await h.admin.get<
            Deployment & { spec: { template: { metadata: { annotations: Record<string, string> } } } }
          >(deploymentPath);
          return (
            current?.spec.template.metadata.annotations['wharf.dev/config-hash'] !== hashBefore && current
          );
        },
        'the AuthService pod template rolled',
        60_000,
      );

      // The stand-in rolls the pod: the old one stops, a new one starts from the new template.
      const index = pods.findIndex((pod) => pod.name === 'main-auth');
      const old = pods[index]!;
      await old.stop();
      const hosts = Object.fromEntries(pods.map((pod) => [`${pod.name}.${NS}.svc`, pod.ip]));
      const fresh = await startPod(h.admin, deployment, old.ip, hosts);
      pods[index] = fresh;
      await waitReady(fresh);

      const me = await viaIngress('GET', '/me');
      expect([302, 303], me.body).toContain(me.status);
      const location = new URL(me.headers.location ?? '');
      expect(location.origin).toBe(issuer);
      expect(location.searchParams.get('redirect_uri')).toBe(`http://${HOST}/ktra/api/v1/openid/me`);
      const secret = await fetchSecret(h.admin, NS, 'sso-oidc-client');
      expect(location.searchParams.get('client_id')).toBe(secret!.client_id);
    } finally {
      server.close();
    }
  }, 300_000);
});
