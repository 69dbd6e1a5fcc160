import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cargo, cargoHome, registryToml, writeCrate } from '../cargo/cargo-cli.ts';
import { launchChromium } from '../openid/chromium.ts';
import { startProvider, type TestProvider } from '../openid/op.ts';
import { registryIngress, startIngressProxy } from '../support/ingress-proxy.ts';
import { startWharfProcess, type WharfProcess } from '../support/spawn-wharf.ts';
import { ensureUiBuilt } from './built-ui.ts';

const SCREENSHOTS = new URL('../../test-results/ui/', import.meta.url);
const ADMIN_PASSWORD = 'split-ui-admin-password';

/**
 * The UI in the operator's deployment: an AuthService process and a Registry process, each with its
 * own store, behind one host whose Ingress routes the operator's identity paths (IDENTITY_PATHS,
 * /auth/api/v1 among them) to the AuthService and the rest to the Registry. Chromium signs in once,
 * makes a token on the Tokens page that real cargo publishes with, and manages users as an admin.
 */
describe('web UI with the AuthService in its own process', () => {
  let dir: string;
  let auth: WharfProcess;
  let registry: WharfProcess;
  let proxy: Awaited<ReturnType<typeof startIngressProxy>>;
  let base: string;
  let browser: Browser;
  let page: Page;
  let provider: TestProvider;
  const servicePassword = 'registry-service-password-0123';

  beforeAll(async () => {
    ensureUiBuilt();
    await mkdir(SCREENSHOTS, { recursive: true });
    dir = await mkdtemp(path.join(tmpdir(), 'wharf-split-ui-'));
    // The host's address first (the backends are filled in once they listen): the OpenID provider
    // redirects people back to it.
    const backends: Record<string, { host: string; port: number }> = {};
    proxy = await startIngressProxy(
      [registryIngress({ registry: 'crates-registry', auth: 'main-auth' })],
      backends,
      { host: '127.0.0.1', port: 0 },
    );
    base = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
    provider = await startProvider({ redirectBaseUrl: base });
    const authConfig = path.join(dir, 'auth.yaml');
    // Only the AuthService knows the provider: the registry learns it from there.
    await writeFile(
      authConfig,
      JSON.stringify({
        auth: {
          bcryptCost: 10,
          services: [
            {
              name: 'registry',
              passwordEnv: 'REGISTRY_SERVICE_PASSWORD',
              permissions: [
                'token_verify',
                'user_verify_password',
                'user_exists',
                'group_exists',
                'group_users_list',
              ],
            },
          ],
        },
        openid: {
          tokenEncryptionKey: randomBytes(32).toString('base64'),
          providers: [
            {
              name: 'corp',
              issuerUrl: provider.issuer,
              clientId: provider.clientId,
              clientSecret: provider.clientSecret,
              redirectBaseUrl: base,
              additionalScopes: ['profile', 'groups'],
              authorizedGroups: ['firm/crate-owners'],
              allowInsecureRequests: true,
            },
          ],
        },
      }),
    );
    [auth, browser] = await Promise.all([
      startWharfProcess({
        WHARF_ROLES: 'auth',
        WHARF_CONFIG: authConfig,
        WHARF_DATA_DIR: path.join(dir, 'auth-data'),
        WHARF_ADMIN_PASSWORD: ADMIN_PASSWORD,
        REGISTRY_SERVICE_PASSWORD: servicePassword,
      }),
      launchChromium(),
    ]);
    registry = await startWharfProcess({
      WHARF_ROLES: 'registry',
      WHARF_DATA_DIR: path.join(dir, 'registry-data'),
      WHARF_AUTH_URL: auth.url,
      WHARF_AUTH_SERVICE_NAME: 'registry',
      WHARF_AUTH_SERVICE_PASSWORD: servicePassword,
      WHARF_CREDENTIAL_CACHE_SECONDS: '0',
      // A superuser of the registry's data who is no administrator of accounts.
      WHARF_SUPERUSERS: 'sam',
    });
    const address = (url: string) => ({ host: new URL(url).hostname, port: Number(new URL(url).port) });
    backends['crates-registry'] = address(registry.url);
    backends['main-auth'] = address(auth.url);
    page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  }, 600_000);
  afterAll(async () => {
    await browser?.close();
    await proxy?.close();
    await registry?.stop();
    await auth?.stop();
    await provider?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function signIn(on: Page, user: string, password: string) {
    await on.goto(`${base}/ui/signin`);
    await on.getByLabel('User name').fill(user);
    await on.getByLabel('Password').fill(password);
    await on.locator('form.stack button[type="submit"]').click();
    await on.getByRole('button', { name: `Sign out ${user}` }).waitFor();
  }

  it('signs in to both services with one form, and the admin manages users', {
    timeout: 120_000,
  }, async () => {
    await signIn(page, 'admin', ADMIN_PASSWORD);
    // Two sessions, each from its own process: the registry's and the AuthService's.
    const cookies = await page.context().cookies();
    expect(cookies.map((cookie) => cookie.name).sort()).toEqual(['wharf_auth_session', 'wharf_oci_session']);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
    await page.getByRole('heading', { name: 'Administration' }).waitFor();
    await page.getByLabel('User name', { exact: true }).fill('sam');
    await page.getByLabel('Password (empty: OpenID only)').fill('sam-password-12345');
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByRole('rowheader', { name: 'sam', exact: true }).waitFor();
    await page.screenshot({ path: new URL('split-admin-users.png', SCREENSHOTS).pathname, fullPage: true });
    // The user exists where accounts live: the AuthService's own API, asked directly.
    const basic = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
    const user = await fetch(`${auth.url}/auth/api/v1/users/sam`, { headers: { authorization: basic } });
    expect(user.status).toBe(200);
    // Every /auth/api/v1 request reached the AuthService, none the registry.
    expect(proxy.hits.get('main-auth')).toBeGreaterThan(0);
  });

  it('creates a token on the Tokens page that cargo publishes with', { timeout: 300_000 }, async () => {
    // A private repository of the admin's, which only a superuser besides them may see.
    const basic = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
    const issued = await fetch(`${base}/auth/api/v1/tokens`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'setup' }),
    });
    const { token: adminToken } = (await issued.json()) as { token: string };
    const created = await fetch(`${base}/api/v1/repository`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ namespace: 'admin', repository: 'tools', visibility: 'private' }),
    });
    expect(created.status).toBe(201);
    const person = await (await browser.newContext()).newPage();
    await signIn(person, 'sam', 'sam-password-12345');
    await person.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tokens' }).click();
    await person.getByLabel('Name', { exact: true }).fill('split-publish');
    await person.getByRole('button', { name: 'Create token' }).click();
    await person.getByRole('heading', { name: 'Token “split-publish” created' }).waitFor();
    const token = (await person.locator('.created .copy-line code').first().textContent())?.trim() ?? '';
    expect(token).toMatch(/^wharf_/);
    await person.screenshot({ path: new URL('split-tokens.png', SCREENSHOTS).pathname, fullPage: true });

    const home = await cargoHome(registryToml('split', base));
    const work = await mkdtemp(path.join(dir, 'crate-'));
    const crate = await writeCrate(work, { name: 'split-ui-demo', version: '0.1.0' });
    const published = await cargo(['publish', '--no-verify', '--registry', 'split'], {
      cwd: crate,
      home,
      targetDir: path.join(work, 'target'),
      env: { CARGO_REGISTRIES_SPLIT_TOKEN: token },
    });
    expect(published.code, published.stderr).toBe(0);

    // Revoked in the UI, cargo is refused (the registry caches no credential here).
    person.once('dialog', (dialog) => dialog.accept());
    await person.getByRole('button', { name: 'Revoke split-publish' }).click();
    await person.getByText('Token split-publish revoked.').waitFor();
    const yank = await cargo(['yank', '--registry', 'split', 'split-ui-demo@0.1.0'], {
      cwd: crate,
      home,
      targetDir: path.join(work, 'target'),
      env: { CARGO_REGISTRIES_SPLIT_TOKEN: token },
    });
    expect(yank.code).not.toBe(0);

    // A registry superuser but no AuthService administrator: the Admin page says what that allows,
    // and offers no account management (which the AuthService would refuse).
    await person.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
    await person.getByText('You are a superuser of this registry').waitFor();
    expect(await person.getByRole('button', { name: 'Create user' }).count()).toBe(0);
    await person.screenshot({
      path: new URL('split-admin-superuser.png', SCREENSHOTS).pathname,
      fullPage: true,
    });
    // Signing out ends both sessions.
    await person.getByRole('button', { name: 'Sign out sam' }).click();
    await person.getByRole('link', { name: 'Sign in' }).first().waitFor();
    const left = (await person.context().cookies()).map((cookie) => cookie.name);
    expect(left).not.toContain('wharf_auth_session');
  });

  it('offers the OpenID provider the AuthService has, and its sign-in opens both sessions', {
    timeout: 120_000,
  }, async () => {
    const settings = (await (await fetch(`${base}/ui/settings.json`)).json()) as {
      openidProviders: string[];
    };
    expect(settings.openidProviders).toEqual(['corp']);
    const person = await (await browser.newContext()).newPage();
    await person.goto(`${base}/ui/signin?next=/ui/tokens`);
    await person.getByRole('link', { name: 'Sign in with corp' }).click();
    await person.waitForSelector('input[name="login"]');
    await person.fill('input[name="login"]', 'alice');
    await person.fill('input[name="password"]', 'any-password');
    await Promise.all([person.waitForURL(/\/interaction\//), person.click('button[type="submit"]')]);
    await person.waitForSelector('button[type="submit"]');
    await Promise.all([person.waitForURL(/\/ui\/tokens$/), person.click('button[type="submit"]')]);
    await person.getByRole('heading', { name: 'Your tokens' }).waitFor();
    await person.getByLabel('Name', { exact: true }).fill('from-openid');
    await person.getByRole('button', { name: 'Create token' }).click();
    await person.getByRole('heading', { name: 'Token “from-openid” created' }).waitFor();
    const token = (await person.locator('.created .copy-line code').first().textContent())?.trim() ?? '';
    // The token is the AuthService's, and the registry accepts it (checked over RestAuth).
    const user = await fetch(`${base}/api/v1/user/`, { headers: { authorization: `Bearer ${token}` } });
    expect(user.status).toBe(200);
    const me = await fetch(`${auth.url}/auth/api/v1/me`, { headers: { authorization: token } });
    expect(((await me.json()) as { name: string }).name).toMatch(/alice/);
  });

  it('says where accounts are when the host does not route /auth/api/v1 to the AuthService', {
    timeout: 60_000,
  }, async () => {
    // The registry's own address, with no Ingress in front: its pages work, accounts are elsewhere.
    const person = await (await browser.newContext()).newPage();
    await person.goto(`${registry.url}/ui/signin`);
    await person.getByLabel('User name').fill('admin');
    await person.getByLabel('Password').fill(ADMIN_PASSWORD);
    await person.locator('form.stack button[type="submit"]').click();
    await person.getByRole('button', { name: 'Sign out admin' }).waitFor();
    await person.goto(`${registry.url}/ui/tokens`);
    await person.getByRole('heading', { name: 'Accounts are not reachable at this address' }).waitFor();
  });
});
