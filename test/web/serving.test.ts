import { readdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UI_CSP } from '../../server/web/plugin.ts';
import { startIngressProxy } from '../support/ingress-proxy.ts';
import { startServer, type TestServer } from '../support/wharf.ts';
import { ensureUiBuilt } from './built-ui.ts';

const ADMIN_PASSWORD = 'ui-serving-admin-password';
const HTML = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

/** How the registry serves the UI next to the APIs, and that no API client sees it. */
describe('web UI serving', () => {
  let server: TestServer;
  let assets: string[];
  beforeAll(async () => {
    const directory = ensureUiBuilt();
    assets = await readdir(`${directory}/assets`);
    server = await startServer({
      roles: ['auth', 'registry'],
      auth: { adminPassword: ADMIN_PASSWORD, bcryptCost: 10 },
      registry: { credentialCacheSeconds: 0 },
    });
  });
  afterAll(async () => server?.stop());

  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${server.url}${path}`, { headers, redirect: 'manual' });

  it('answers a browser at / and at every /ui/ route with the page, uncached, under a strict CSP', async () => {
    for (const path of [
      '/',
      '/ui',
      '/ui/',
      '/ui/crates/serde',
      '/ui/repository/team/app/api',
      '/ui/tokens',
    ]) {
      const response = await get(path, { accept: HTML });
      expect(response.status, path).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(response.headers.get('cache-control')).toBe('no-cache');
      expect(response.headers.get('content-security-policy')).toBe(UI_CSP);
      expect(response.headers.get('x-frame-options')).toBe('DENY');
      const body = await response.text();
      expect(body).toContain('<div id="app"></div>');
      // Scripts and styles come from files (the CSP forbids inline code).
      expect(body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(body).not.toMatch(/<style|style="/);
    }
    expect(UI_CSP).toContain("default-src 'self'");
    expect(UI_CSP).toContain("frame-ancestors 'none'");
    expect(UI_CSP).not.toContain('unsafe-inline');
  });

  it('serves hashed assets immutable for a year; an unknown asset is a 404', async () => {
    const script = assets.find((name) => /^index-[\w-]+\.js$/.test(name));
    expect(script).toBeDefined();
    const response = await get(`/ui/assets/${script}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(response.headers.get('content-type')).toMatch(/javascript/);
    const identity = await response.arrayBuffer();
    // Precompressed at build time, sent as the browser accepts it.
    for (const encoding of ['br', 'gzip']) {
      const compressed = await get(`/ui/assets/${script}`, { 'accept-encoding': encoding });
      expect(compressed.headers.get('content-encoding')).toBe(encoding);
      expect(compressed.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      // fetch decodes it: the same script.
      expect(Buffer.from(await compressed.arrayBuffer()).equals(Buffer.from(identity))).toBe(true);
    }
    expect((await get('/ui/assets/index-nothere.js')).status).toBe(404);
    expect((await get('/ui/assets/../../package.json')).status).toBe(404);
  });

  it('leaves cargo, docker and API clients where they were, whatever they accept', async () => {
    // Not a browser: the root and UI paths are the server's ordinary 404.
    for (const accept of ['application/json', '*/*', '']) {
      const root = await get('/', accept ? { accept } : {});
      expect(root.status).toBe(404);
      expect(root.headers.get('content-type')).toMatch(/application\/json/);
      expect((await get('/ui/crates/serde', accept ? { accept } : {})).status).toBe(404);
    }
    // Even a client that asks for HTML gets the API's own answer on API paths.
    const v2 = await get('/v2/', { accept: HTML });
    expect(v2.status).toBe(401);
    expect(v2.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    const config = await get('/index/config.json', { accept: HTML });
    expect(config.status).toBe(200);
    expect(await config.json()).toHaveProperty('dl');
    const repositories = await get('/api/v1/repository', { accept: HTML });
    expect(repositories.status).toBe(200);
    expect(await repositories.json()).toEqual({ repositories: [] });
    const me = await get('/me', { accept: HTML });
    expect(me.headers.get('content-type')).toMatch(/text\/plain/);
    // Only the UI's own paths belong to it.
    const uiRoutes = server.wharf.routes.filter((route) => route.url === '/' || route.url.startsWith('/ui'));
    expect(new Set(uiRoutes.map((route) => route.url))).toEqual(
      new Set(['/', '/ui', '/ui/*', '/ui/assets/*', '/ui/settings.json']),
    );
  });

  it('tells the UI the address clients use and how people sign in', async () => {
    const response = await get('/ui/settings.json');
    expect(await response.json()).toEqual({
      baseUrl: server.url,
      registryHost: new URL(server.url).host,
      openidProviders: [],
      protocols: ['cargo', 'oci'],
    });
  });

  it('offers no OpenID provider while the AuthService it asks cannot be reached, and still serves', async () => {
    const alone = await startServer({
      roles: ['registry'],
      registry: { authUrl: 'http://127.0.0.1:1', serviceName: 'registry', servicePassword: 'x'.repeat(24) },
    });
    try {
      const settings = await fetch(`${alone.url}/ui/settings.json`);
      expect(settings.status).toBe(200);
      expect(((await settings.json()) as { openidProviders: string[] }).openidProviders).toEqual([]);
    } finally {
      await alone.stop();
    }
  });

  it('works behind a path-preserving Ingress on the same host as the APIs', async () => {
    const upstream = new URL(server.url);
    const ingress = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: 'wharf' },
      spec: {
        rules: [
          {
            http: {
              paths: [
                {
                  path: '/',
                  pathType: 'Prefix',
                  backend: { service: { name: 'wharf', port: { number: 80 } } },
                },
              ],
            },
          },
        ],
      },
    };
    const proxy = await startIngressProxy(
      [ingress],
      { wharf: { host: upstream.hostname, port: Number(upstream.port) } },
      { host: '127.0.0.1', port: 0 },
    );
    try {
      const address = proxy.server.address() as AddressInfo;
      const base = `http://127.0.0.1:${address.port}`;
      const page = await fetch(`${base}/ui/repository/team/app`, { headers: { accept: HTML } });
      expect(page.status).toBe(200);
      const html = await page.text();
      // Every asset the page names is an absolute path on this host, and is served through the proxy.
      const assetPaths = [...html.matchAll(/(?:src|href)="(\/ui\/assets\/[^"]+)"/g)].map(
        (m) => m[1] as string,
      );
      expect(assetPaths.length).toBeGreaterThanOrEqual(2);
      for (const asset of assetPaths) expect((await fetch(`${base}${asset}`)).status, asset).toBe(200);
      // The commands the pages show name the address clients use.
      const settings = (await (await fetch(`${base}/ui/settings.json`)).json()) as { baseUrl: string };
      expect(settings.baseUrl).toBe(base);
      expect((await fetch(`${base}/api/v1/user/`)).status).toBe(401);
    } finally {
      await proxy.close();
    }
  });

  describe("the AuthService's browser session on /auth/api/v1", () => {
    let cookie: string;
    let csrf: string;
    const signIn = (username: string, password: string, headers: Record<string, string> = {}) =>
      fetch(`${server.url}/auth/api/v1/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ username, password }),
      });
    const cookieOf = (response: Response) =>
      (response.headers.get('set-cookie') ?? '').split(';')[0] as string;
    beforeAll(async () => {
      const signin = await signIn('admin', ADMIN_PASSWORD);
      expect(signin.status).toBe(200);
      cookie = cookieOf(signin);
      const answer = (await signin.json()) as { username: string; admin: boolean; csrf_token: string };
      expect(answer).toMatchObject({ username: 'admin', admin: true });
      csrf = answer.csrf_token;
    });

    it('sets a cookie only for /auth/api/v1: HttpOnly, SameSite=Strict, not the registry session', async () => {
      const signin = await signIn('admin', ADMIN_PASSWORD);
      const header = signin.headers.get('set-cookie') ?? '';
      expect(header).toMatch(
        /^wharf_auth_session=[A-Za-z0-9_-]{43}; Path=\/auth\/api\/v1; HttpOnly; SameSite=Strict; Max-Age=43200$/,
      );
      // Not a credential anywhere else: API v1 does not know it.
      expect((await get('/api/v1/user/', { cookie: cookieOf(signin) })).status).toBe(401);
      // Nor is the registry's session one here.
      const registry = await get('/csrf_token');
      const registryCookie = cookieOf(registry);
      const registryCsrf = ((await registry.json()) as { csrf_token: string }).csrf_token;
      const registrySignin = await fetch(`${server.url}/api/v1/signin`, {
        method: 'POST',
        headers: { cookie: registryCookie, 'x-csrf-token': registryCsrf, 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
      });
      expect(registrySignin.status).toBe(200);
      expect((await get('/auth/api/v1/tokens', { cookie: cookieOf(registrySignin) })).status).toBe(401);
    });

    it('marks the cookie Secure when the public URL is https, and never logs the password', async () => {
      const tls = await startServer({
        roles: ['auth'],
        publicUrl: 'https://registry.example',
        auth: { adminPassword: ADMIN_PASSWORD, bcryptCost: 10 },
      });
      try {
        const signin = await fetch(`${tls.url}/auth/api/v1/session`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
        });
        expect(signin.status).toBe(200);
        expect(signin.headers.get('set-cookie')).toMatch(/; SameSite=Strict; Max-Age=43200; Secure$/);
        expect(tls.logs()).not.toContain(ADMIN_PASSWORD);
      } finally {
        await tls.stop();
      }
    });

    it('reads the session back (who, CSRF token) and refuses a wrong password or a robot', async () => {
      const session = await get('/auth/api/v1/session', { cookie });
      expect(await session.json()).toEqual({ username: 'admin', admin: true, csrf_token: csrf });
      const wrong = await signIn('admin', 'not-the-password');
      expect(wrong.status).toBe(403);
      expect(wrong.headers.get('set-cookie')).toBeNull();
      expect((await signIn('admin+robot', 'whatever')).status).toBe(403);
      // A form post (no JSON object) is not a sign-in: no cross-site page can open a session.
      const form = await fetch(`${server.url}/auth/api/v1/session`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: 'username=admin&password=x',
      });
      expect(form.status).toBe(400);
    });

    const tokens = (method: string, headers: Record<string, string>, body?: unknown) =>
      fetch(`${server.url}/auth/api/v1/tokens`, {
        method,
        headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });

    it('lists and creates tokens with the session and its CSRF token', async () => {
      expect((await tokens('GET', { cookie })).status).toBe(200);
      const created = await tokens('POST', { cookie, 'x-csrf-token': csrf }, { name: 'from-the-ui' });
      expect(created.status).toBe(201);
      const { token } = (await created.json()) as { token: string };
      // The token works on its own, as cargo would use it.
      const me = await fetch(`${server.url}/auth/api/v1/me`, { headers: { authorization: token } });
      expect(((await me.json()) as { name: string }).name).toBe('admin');
    });

    it('refuses a change without the CSRF token, or with a wrong one', async () => {
      for (const headers of [{ cookie }, { cookie, 'x-csrf-token': 'wrong' }] as Record<string, string>[]) {
        const response = await tokens('POST', headers, { name: 'forged' });
        expect(response.status).toBe(403);
        expect(await response.json()).toEqual({ errors: [{ detail: 'CSRF token was invalid or missing' }] });
      }
      const list = (await (await tokens('GET', { cookie })).json()) as { tokens: { name: string }[] };
      expect(list.tokens.map((t) => t.name)).not.toContain('forged');
    });

    it('answers a signed-out browser 401 without a password dialog; API clients still get the challenge', async () => {
      const other = await signIn('admin', ADMIN_PASSWORD);
      const { csrf_token: otherCsrf } = (await other.json()) as { csrf_token: string };
      const ended = await fetch(`${server.url}/auth/api/v1/session`, {
        method: 'DELETE',
        headers: { cookie: cookieOf(other), 'x-csrf-token': otherCsrf },
      });
      expect(ended.status).toBe(204);
      const stale = cookieOf(other);
      const response = await tokens('GET', { cookie: stale });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBeNull();
      // A page's script without any session (a browser marks its requests): no challenge either.
      const script = await tokens('GET', { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' });
      expect(script.status).toBe(401);
      expect(script.headers.get('www-authenticate')).toBeNull();
      const client = await tokens('GET', {});
      expect(client.status).toBe(401);
      expect(client.headers.get('www-authenticate')).toBe('Basic realm="wharf"');
    });

    it('ends when the password changes or the account is disabled', async () => {
      const admin = { cookie, 'x-csrf-token': csrf, 'content-type': 'application/json' };
      const users = (method: string, path: string, body: unknown) =>
        fetch(`${server.url}/auth/api/v1/users${path}`, {
          method,
          headers: admin,
          body: JSON.stringify(body),
        });
      expect((await users('POST', '', { username: 'dee', password: 'dee-password-1234' })).status).toBe(201);
      const first = cookieOf(await signIn('dee', 'dee-password-1234'));
      expect((await get('/auth/api/v1/tokens', { cookie: first })).status).toBe(200);
      expect((await users('PATCH', '/dee', { password: 'dee-password-5678' })).status).toBe(200);
      expect((await get('/auth/api/v1/tokens', { cookie: first })).status).toBe(401);
      const second = cookieOf(await signIn('dee', 'dee-password-5678'));
      expect((await get('/auth/api/v1/tokens', { cookie: second })).status).toBe(200);
      expect((await users('PATCH', '/dee', { disabled: true })).status).toBe(200);
      expect((await get('/auth/api/v1/tokens', { cookie: second })).status).toBe(401);
    });

    it('lets administrators manage groups; others are refused', async () => {
      const admin = { cookie, 'x-csrf-token': csrf, 'content-type': 'application/json' };
      const create = await fetch(`${server.url}/auth/api/v1/groups`, {
        method: 'POST',
        headers: admin,
        body: JSON.stringify({ name: 'Platform' }),
      });
      expect(create.status).toBe(201);
      expect(await create.json()).toEqual({ name: 'platform', users: [], subgroups: [] });
      const add = await fetch(`${server.url}/auth/api/v1/groups/platform/users/admin`, {
        method: 'PUT',
        headers: { cookie, 'x-csrf-token': csrf },
      });
      expect(add.status).toBe(204);
      const missing = await fetch(`${server.url}/auth/api/v1/groups/platform/users/nobody`, {
        method: 'PUT',
        headers: { cookie, 'x-csrf-token': csrf },
      });
      expect(missing.status).toBe(404);
      const list = await fetch(`${server.url}/auth/api/v1/groups`, { headers: { cookie } });
      expect(await list.json()).toEqual({ groups: [{ name: 'platform', users: ['admin'], subgroups: [] }] });
      const remove = await fetch(`${server.url}/auth/api/v1/groups/platform/users/admin`, {
        method: 'DELETE',
        headers: { cookie, 'x-csrf-token': csrf },
      });
      expect(remove.status).toBe(204);
      // A token without administrator rights: someone's own scoped token.
      const scoped = (await (
        await tokens('POST', { cookie, 'x-csrf-token': csrf }, { name: 'pull-only', scopes: ['pull'] })
      ).json()) as { token: string };
      const refused = await fetch(`${server.url}/auth/api/v1/groups`, {
        headers: { authorization: `Bearer ${scoped.token}` },
      });
      expect(refused.status).toBe(403);
    });
  });
});
