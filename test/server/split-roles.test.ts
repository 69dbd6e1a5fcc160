import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cargo, cargoHome, registryToml, writeCrate } from '../cargo/cargo-cli.ts';
import { startWharfProcess, type WharfProcess } from '../support/spawn-wharf.ts';

// The deployment the operator makes: an AuthService process and a Registry process, each with its
// own store, the Registry reaching the AuthService only over RestAuth as a configured service.
describe('auth and registry roles in separate processes', () => {
  let dir: string;
  let auth: WharfProcess;
  let registry: WharfProcess;
  const servicePassword = 'registry-service-password-0123';

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'wharf-split-'));
    const authConfig = path.join(dir, 'auth.yaml');
    await writeFile(
      authConfig,
      [
        'auth:',
        '  signup: open',
        '  services:',
        '    - name: registry',
        '      passwordEnv: REGISTRY_SERVICE_PASSWORD',
        '      permissions: [token_verify, user_verify_password, user_exists, group_exists, group_users_list]',
      ].join('\n'),
    );
    auth = await startWharfProcess({
      WHARF_ROLES: 'auth',
      WHARF_CONFIG: authConfig,
      WHARF_DATA_DIR: path.join(dir, 'auth-data'),
      REGISTRY_SERVICE_PASSWORD: servicePassword,
    });
    registry = await startWharfProcess({
      WHARF_ROLES: 'registry',
      WHARF_DATA_DIR: path.join(dir, 'registry-data'),
      WHARF_AUTH_URL: auth.url,
      WHARF_AUTH_SERVICE_NAME: 'registry',
      WHARF_AUTH_SERVICE_PASSWORD: servicePassword,
      WHARF_CREDENTIAL_CACHE_SECONDS: '1',
    });
  });
  afterAll(async () => {
    await registry?.stop();
    await auth?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function newUser(name: string, password: string): Promise<string> {
    const response = await fetch(`${auth.url}/ktra/api/v1/new_user/${name}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password }),
    });
    expect(response.status).toBe(200);
    return ((await response.json()) as { token: string }).token;
  }

  it('serves only its own role: identity paths on the AuthService, data paths on the Registry', async () => {
    expect((await fetch(`${registry.url}/index/config.json`)).status).toBe(200);
    expect((await fetch(`${auth.url}/index/config.json`)).status).toBe(404);
    expect((await fetch(`${registry.url}/ktra/api/v1/login/x`, { method: 'POST' })).status).toBe(404);
    // The web UI is the Registry's; its account pages call the AuthService's /auth/api/v1, which an
    // Ingress routes there (test/web/split-ui.test.ts), and which the Registry does not serve.
    const html = { accept: 'text/html' };
    expect((await fetch(`${auth.url}/ui/tokens`, { headers: html })).status).toBe(404);
    expect((await fetch(`${registry.url}/auth/api/v1/session`)).status).toBe(404);
    // No OpenID provider on the AuthService: the Registry's sign-in page offers none (it asks there).
    const providers = await fetch(`${auth.url}/auth/api/v1/openid/providers`);
    expect(await providers.json()).toEqual({ providers: [] });
    const settings = await fetch(`${registry.url}/ui/settings.json`);
    expect(((await settings.json()) as { openidProviders: string[] }).openidProviders).toEqual([]);
  });

  it('issues Docker tokens for a password and for an API token checked by the AuthService', async () => {
    const token = await newUser('sam', 'sam-password-123');
    const basic = (user: string, secret: string) =>
      `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;
    const scope = 'repository:sam/app:pull,push';
    const withPassword = await fetch(`${registry.url}/v2/auth?service=wharf&scope=${scope}`, {
      headers: { authorization: basic('sam', 'sam-password-123') },
    });
    expect(withPassword.status).toBe(200);
    const withToken = await fetch(`${registry.url}/v2/auth?service=wharf&scope=${scope}`, {
      headers: { authorization: basic('sam', token) },
    });
    expect(withToken.status).toBe(200);
    const wrong = await fetch(`${registry.url}/v2/auth?service=wharf&scope=${scope}`, {
      headers: { authorization: basic('sam', 'not-the-password') },
    });
    expect(wrong.status).toBe(401);
  });

  it('lets cargo publish with an AuthService token, and refuses it once replaced', async () => {
    const first = await newUser('pat', 'pat-password-123');
    const home = await cargoHome(registryToml('split', registry.url));
    const work = await mkdtemp(path.join(dir, 'crate-'));
    const crate = await writeCrate(work, { name: 'split-roles-demo', version: '0.1.0' });
    const env = { CARGO_REGISTRIES_SPLIT_TOKEN: first };
    const targetDir = path.join(work, 'target');
    const published = await cargo(['publish', '--no-verify', '--registry', 'split'], {
      cwd: crate,
      home,
      targetDir,
      env,
    });
    expect(published.stderr).toContain('Published split-roles-demo v0.1.0');
    expect(published.code).toBe(0);

    // A new login replaces the token; after the registry's credential cache bound it is refused.
    const login = await fetch(`${auth.url}/ktra/api/v1/login/pat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'pat-password-123' }),
    });
    const { token: second } = (await login.json()) as { token: string };
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const yankOld = await cargo(['yank', '--registry', 'split', 'split-roles-demo@0.1.0'], {
      cwd: crate,
      home,
      targetDir,
      env,
    });
    expect(yankOld.code).not.toBe(0);
    expect(yankOld.stderr).toMatch(/403|401|token/i);
    const yankNew = await cargo(['yank', '--registry', 'split', 'split-roles-demo@0.1.0'], {
      cwd: crate,
      home,
      targetDir,
      env: { CARGO_REGISTRIES_SPLIT_TOKEN: second },
    });
    expect(yankNew.code).toBe(0);
  });
});
