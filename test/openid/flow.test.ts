import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWharf } from '../../server/app.ts';
import { createOpenIdLogin } from '../../server/auth/openid/login.ts';
import { openIdLoginUrl, openIdSessionOf } from '../../server/auth/openid/session-client.ts';
import { ConfigError, validateConfig } from '../../server/config/load.ts';
import { createLogger } from '../../server/observability/logger.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import { Browserless, type Visit } from './browserless.ts';
import { ADMIN_PASSWORD, type Harness, startHarness } from './harness.ts';

/**
 * The OpenID login flow over HTTP, through a real provider (oidc-provider) and its login and
 * consent pages, with a cookie jar; two wharf replicas answer in turn.
 */
describe('OpenID login against oidc-provider', () => {
  let wharf: Harness;
  beforeAll(async () => {
    wharf = await startHarness();
  });
  afterAll(async () => {
    await wharf?.close();
  });

  const json = (visit: Visit | URL) => JSON.parse((visit as Visit).body) as Record<string, unknown>;

  it('gives a first-time user a new token on /me, then the same token as existing_token', async () => {
    const browser = new Browserless();
    const first = (await browser.signIn(`${wharf.baseUrl}/me`, 'alice')) as Visit;
    expect(first.response.status).toBe(200);
    const reply = json(first);
    expect(Object.keys(reply).sort()).toEqual(['new_token', 'revoked_token', 'username']);
    expect(reply.username).toBe('corp:alice');
    expect(reply.revoked_token).toBeNull();
    const token = reply.new_token as string;
    expect(token).toMatch(/^wharf_/);
    expect(await wharf.auth.accountOfToken(token)).toBe('alice');

    // Same browser: the session answers without going to the provider again.
    const again = await browser.request(`${wharf.baseUrl}/ktra/api/v1/openid/me`);
    expect(again.response.status).toBe(200);
    expect(json(again)).toEqual({ username: 'corp:alice', existing_token: token });

    // Another browser signs in again: still the one active token.
    const other = (await new Browserless().signIn(
      `${wharf.baseUrl}/ktra/api/v1/openid/me`,
      'alice',
    )) as Visit;
    expect(json(other)).toEqual({ username: 'corp:alice', existing_token: token });
    expect(other.response.headers.get('cache-control')).toBe('no-store');
  });

  it('replaces the token: the old one stops working at once, the new one works', async () => {
    const browser = new Browserless();
    const me = json((await browser.signIn(`${wharf.baseUrl}/me`, 'alice')) as Visit);
    const old = (me.existing_token ?? me.new_token) as string;
    const replaced = (await browser.signIn(`${wharf.baseUrl}/replace_token`, 'alice')) as Visit;
    expect(replaced.response.status).toBe(200);
    const reply = json(replaced);
    expect(Object.keys(reply).sort()).toEqual(['new_token', 'revoked_token', 'username']);
    expect(reply).toMatchObject({ username: 'corp:alice', revoked_token: old });
    expect(reply.new_token).not.toBe(old);
    expect(await wharf.auth.accountOfToken(old)).toBeNull();
    expect(await wharf.auth.accountOfToken(reply.new_token as string)).toBe('alice');
    // docker login: the account name with the token as the password.
    expect(await wharf.auth.accountOfPassword('alice', old)).toBeNull();
    expect(await wharf.auth.accountOfPassword('alice', reply.new_token as string)).toBe('alice');
    expect(await wharf.auth.accountOfPassword('carol', reply.new_token as string)).toBeNull();
    // A HEAD (link checker, prefetcher) never replaces the token.
    const head = await fetch(`${wharf.baseUrl}/replace_token`, {
      method: 'HEAD',
      headers: { cookie: browser.jar.header(new URL(wharf.baseUrl)) },
    });
    expect(head.status).toBe(404);
    expect(await wharf.auth.accountOfToken(reply.new_token as string)).toBe('alice');
    // With the session, the Ktra path replaces again without a provider round trip.
    const second = json(await browser.request(`${wharf.baseUrl}/ktra/api/v1/openid/replace_token`));
    expect(second.revoked_token).toBe(reply.new_token);
    expect(json(await browser.request(`${wharf.baseUrl}/me`))).toEqual({
      username: 'corp:alice',
      existing_token: second.new_token,
    });
    // Tokens never travel in a URL.
    for (const url of browser.history) expect(url).not.toContain('wharf_');
  });

  it('admits a user listed in authorizedUsers even without an authorized group', async () => {
    const visit = (await new Browserless().signIn(`${wharf.baseUrl}/me`, 'carol')) as Visit;
    expect(visit.response.status).toBe(200);
    expect(json(visit).username).toBe('corp:carol');
  });

  it('refuses a user outside both allow-lists with a clear page and no token', async () => {
    const browser = new Browserless('text/html,application/xhtml+xml');
    const visit = (await browser.signIn(`${wharf.baseUrl}/me`, 'bob')) as Visit;
    expect(visit.response.status).toBe(403);
    expect(visit.response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(visit.body).toContain('Access refused');
    expect(visit.body).toContain('bob');
    expect(visit.body).not.toContain('wharf_');
    expect(browser.jar.get('127.0.0.1', 'wharf_sso')).toBeUndefined();
    expect(await wharf.auth.userExists('bob')).toBe(false);
    const api = (await new Browserless().signIn(`${wharf.baseUrl}/me`, 'bob')) as Visit;
    expect(api.response.status).toBe(403);
    expect(json(api)).toHaveProperty('errors');
  });

  it('refuses a replayed state', async () => {
    const browser = new Browserless();
    const callback = (await browser.signIn(`${wharf.baseUrl}/me`, 'alice', { stopAtCallback: true })) as URL;
    expect((await browser.request(callback)).response.status).toBe(200);
    const replay = await browser.request(callback);
    expect(replay.response.status).toBe(400);
    expect(JSON.stringify(json(replay))).toContain('already used');
  });

  it('refuses a callback delivered to another browser, and burns its state', async () => {
    const victim = new Browserless();
    const callback = (await victim.signIn(`${wharf.baseUrl}/me`, 'alice', { stopAtCallback: true })) as URL;
    const attacker = new Browserless();
    const stolen = await attacker.request(callback);
    expect(stolen.response.status).toBe(400);
    expect(JSON.stringify(json(stolen))).toContain('another browser');
    expect(attacker.jar.get('127.0.0.1', 'wharf_sso')).toBeUndefined();
    expect((await victim.request(callback)).response.status).toBe(400);
  });

  it('refuses a state that wharf never issued', async () => {
    const visit = await new Browserless().request(`${wharf.baseUrl}/me?code=abc&state=${'x'.repeat(43)}`);
    expect(visit.response.status).toBe(400);
    expect(JSON.stringify(json(visit))).toContain('unknown');
  });

  it('shows an error from the provider as a clear page', async () => {
    const browser = new Browserless('text/html');
    const callback = (await browser.signIn(`${wharf.baseUrl}/me`, 'alice', { stopAtCallback: true })) as URL;
    const denied = new URL(callback.pathname, wharf.baseUrl);
    denied.searchParams.set('error', 'access_denied');
    denied.searchParams.set('error_description', 'The user <b>declined</b> the request');
    denied.searchParams.set('state', callback.searchParams.get('state')!);
    const visit = await browser.request(denied);
    expect(visit.response.status).toBe(403);
    expect(visit.body).toContain('The identity provider did not sign you in');
    expect(visit.body).toContain('access_denied');
    expect(visit.body).toContain('The user &#60;b&#62;declined&#60;/b&#62; the request');
  });

  it('signs in for another page of this host (API v1) without an open redirect', async () => {
    const evil = await new Browserless().request(
      `${wharf.baseUrl}/ktra/api/v1/openid/login?return_to=${encodeURIComponent('//evil.example/x')}`,
    );
    expect(evil.response.status).toBe(400);
    const browser = new Browserless();
    expect((await browser.request(`${wharf.baseUrl}/ktra/api/v1/openid/session`)).response.status).toBe(401);
    const back = await browser.signIn(
      `${wharf.baseUrl}/ktra/api/v1/openid/login?return_to=/api/v1/user/`,
      'alice',
    );
    expect((back as Visit).url.href).toBe(`${wharf.baseUrl}/api/v1/user/`);
    const session = await browser.request(`${wharf.baseUrl}/ktra/api/v1/openid/session`);
    expect(json(session)).toMatchObject({
      username: 'corp:alice',
      account: 'alice',
      groups: ['firm/crate-owners', 'firm/everyone'],
      principal: { kind: 'user', name: 'alice', via: 'session', admin: false },
    });
    expect(
      (await browser.request(`${wharf.baseUrl}/ktra/api/v1/openid/logout`, { method: 'POST' })).response
        .status,
    ).toBe(204);
    expect((await browser.request(`${wharf.baseUrl}/ktra/api/v1/openid/session`)).response.status).toBe(401);
  });

  it('turns the Ktra password endpoints off for people, but not for the bootstrap admin', async () => {
    await new Browserless().signIn(`${wharf.baseUrl}/me`, 'alice');
    const post = (url: string, body: unknown) =>
      fetch(`${wharf.baseUrl}${url}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    for (const [url, body] of [
      ['/ktra/api/v1/new_user/mallory', { password: 'mallory-password' }],
      ['/ktra/api/v1/login/alice', { password: 'guess-password' }],
      ['//ktra/api/v1/login/alice', { password: 'guess-password' }],
      [
        '/ktra/api/v1/change_password/alice',
        { old_password: 'guess-password', new_password: 'new-password' },
      ],
    ] as const) {
      const response = await post(url, body);
      expect(response.status, url).toBe(403);
      expect(JSON.stringify(await response.json())).toContain('sign in with your SSO at /me');
    }
    expect(await wharf.auth.userExists('mallory')).toBe(false);
    const admin = await post('/ktra/api/v1/login/admin', { password: ADMIN_PASSWORD });
    expect(admin.status).toBe(200);
    expect(await wharf.auth.accountOfToken(((await admin.json()) as { token: string }).token)).toBe('admin');
    // The federated account has no password at all.
    expect(await wharf.auth.accountOfPassword('alice', 'any-password')).toBeNull();
  });

  it('counts sign-ins and refusals in wharf_authentications_total', async () => {
    // Two replicas, one counter each.
    let text = '';
    for (const url of wharf.metricsUrls) text += await (await fetch(`${url}/metrics`)).text();
    const sum = (result: string) =>
      [
        ...text.matchAll(
          new RegExp(`wharf_authentications_total\\{method="openid",result="${result}"\\} (\\d+)`, 'g'),
        ),
      ]
        .map((match) => Number(match[1]))
        .reduce((a, b) => a + b, 0);
    expect(sum('success')).toBeGreaterThanOrEqual(5);
    expect(sum('failure')).toBeGreaterThanOrEqual(3); // bob, replay, another browser, unknown state, denied
  });

  it('never writes a token, code or state into its logs', async () => {
    const browser = new Browserless();
    const callback = (await browser.signIn(`${wharf.baseUrl}/me`, 'alice', { stopAtCallback: true })) as URL;
    const reply = json(await browser.request(callback));
    const token = (reply.existing_token ?? reply.new_token) as string;
    const logs = wharf.logs.join('');
    expect(logs).toContain('OpenID sign-in');
    expect(logs).not.toContain(token);
    expect(logs).not.toContain(callback.searchParams.get('code')!);
    expect(logs).not.toContain(callback.searchParams.get('state')!);
  });
});

describe('OpenID provider checks at start-up', () => {
  it('refuses a provider whose discovery has no userinfo_endpoint, naming it', async () => {
    await expect(startHarness({ op: { userinfo: false } })).rejects.toThrow(
      /OpenID provider "corp" \(http:\/\/127\.0\.0\.1:\d+\).*no userinfo_endpoint/,
    );
  });

  it("stops start-up with the provider's name when its discovery fails", async () => {
    const dead = createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const issuer = `http://127.0.0.1:${(dead.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => dead.close(() => resolve())); // nothing listens there now
    const config = validateConfig({
      store: { dataDir: tmpdir() },
      openid: {
        tokenEncryptionKey: randomBytes(32).toString('base64'),
        providers: [
          {
            name: 'gone',
            issuerUrl: issuer,
            clientId: 'c',
            clientSecret: 's',
            redirectBaseUrl: 'http://127.0.0.1:1',
            allowInsecureRequests: true,
          },
        ],
      },
    });
    const dir = await mkdtemp(path.join(tmpdir(), 'wharf-oidc-dead-'));
    const store = await FsObjectStore.open(dir);
    try {
      const attempt = createOpenIdLogin({
        config: config.openid,
        store,
        logger: createLogger('silent'),
        identity: {} as never,
      });
      await expect(attempt).rejects.toThrow(ConfigError);
      await expect(attempt).rejects.toThrow(
        new RegExp(`OpenID provider "gone" \\(${issuer}\\): discovery failed`),
      );
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses an ID token whose nonce is not the one sent', async () => {
    const wharf = await startHarness({ op: { tamperNonce: true } });
    try {
      const browser = new Browserless('text/html');
      const visit = (await browser.signIn(`${wharf.baseUrl}/me`, 'alice')) as Visit;
      expect(visit.response.status).toBe(502);
      expect(visit.body).toContain('Sign-in could not be completed');
      expect(visit.body).toMatch(/nonce/);
      expect(browser.jar.get('127.0.0.1', 'wharf_sso')).toBeUndefined();
      expect(await wharf.auth.userExists('alice')).toBe(false);
    } finally {
      await wharf.close();
    }
  });

  it('warns at start-up when both allow-lists are empty: everyone may sign in', async () => {
    const wharf = await startHarness({ provider: { authorizedGroups: [], authorizedUsers: [] } });
    try {
      expect(wharf.logs.join('')).toMatch(/WARNING.*corp.*no authorizedGroups and no authorizedUsers/);
      const visit = (await new Browserless().signIn(`${wharf.baseUrl}/me`, 'bob')) as Visit;
      expect(visit.response.status).toBe(200);
    } finally {
      await wharf.close();
    }
  });
});

describe('accounts across providers and local users', () => {
  let wharf: Harness;
  beforeAll(async () => {
    wharf = await startHarness({
      extraProviders: [{ name: 'partner' }, { name: 'guests', accountPrefix: 'guest-' }],
    });
  });
  afterAll(async () => {
    await wharf?.close();
  });

  it('asks which provider to use when there are several', async () => {
    const page = await new Browserless('text/html').request(`${wharf.baseUrl}/me`);
    expect(page.response.status).toBe(200);
    for (const name of ['corp', 'partner', 'guests']) expect(page.body).toContain(`/me?provider=${name}`);
    // The links come from the route, not the raw URL: `//me` must not become a link to host "me".
    const doubled = await new Browserless('text/html').request(`${wharf.baseUrl}//me`);
    expect(doubled.body).toContain('href="/me?provider=corp"');
    expect(doubled.body).not.toContain('href="//');
    const api = await new Browserless().request(`${wharf.baseUrl}/me`);
    expect(api.response.status).toBe(400);
    expect(api.body).toContain('corp, partner, guests');
  });

  it('never lets another provider sign into an account linked to a provider identity', async () => {
    const first = (await new Browserless().signIn(`${wharf.baseUrl}/me?provider=corp`, 'alice')) as Visit;
    expect(first.response.status).toBe(200);
    const other = (await new Browserless().signIn(`${wharf.baseUrl}/me?provider=partner`, 'alice')) as Visit;
    expect(other.response.status).toBe(403);
    expect(other.body).toContain('already belongs to someone else');
    const prefixed = (await new Browserless().signIn(
      `${wharf.baseUrl}/me?provider=guests`,
      'alice',
    )) as Visit;
    expect(prefixed.response.status).toBe(200);
    expect(JSON.parse(prefixed.body).username).toBe('guests:alice');
    expect(await wharf.auth.userExists('guest-alice')).toBe(true);
  });

  it('never turns a local account into a federated one', async () => {
    await wharf.auth.createLocalUser('carol', 'carols-own-password'); // before carol's first SSO login
    const visit = (await new Browserless().signIn(`${wharf.baseUrl}/me?provider=corp`, 'carol')) as Visit;
    expect(visit.response.status).toBe(403);
    expect(visit.body).toContain('already belongs to someone else');
  });
});

describe('sessions after the allow-lists change', () => {
  it('ends the sessions of people the new configuration no longer admits', async () => {
    const wharf = await startHarness();
    let tightened: Awaited<ReturnType<typeof buildWharf>> | undefined;
    try {
      const browser = new Browserless();
      await browser.signIn(`${wharf.baseUrl}/me`, 'carol'); // admitted through authorizedUsers
      const cookie = browser.jar.header(new URL(wharf.baseUrl));
      expect(await openIdSessionOf(cookie, { authUrl: wharf.baseUrl })).toMatchObject({ account: 'carol' });
      // The same store, restarted with carol removed from authorizedUsers.
      const config = structuredClone(wharf.config);
      config.openid.providers[0]!.authorizedUsers = [];
      tightened = await buildWharf(
        config,
        await FsObjectStore.open(config.store.dataDir),
        createLogger('silent'),
      );
      await tightened.app.ready();
      expect(await openIdSessionOf(cookie, { app: tightened.app })).toBeNull();
      const me = await tightened.app.inject({ url: '/me', headers: { cookie } });
      expect(me.statusCode).toBe(302); // back to the provider, where carol will be refused
    } finally {
      await tightened?.close();
      await wharf.close();
    }
  });
});

describe('sessions after the account changes', () => {
  it('ends the sessions of a disabled account: no token page, no principal for API v1', async () => {
    const wharf = await startHarness();
    try {
      const browser = new Browserless();
      await browser.signIn(`${wharf.baseUrl}/me`, 'carol');
      const cookie = browser.jar.header(new URL(wharf.baseUrl));
      expect(await openIdSessionOf(cookie, { authUrl: wharf.baseUrl })).toMatchObject({ account: 'carol' });
      const disabled = await fetch(`${wharf.baseUrl}/auth/api/v1/users/carol`, {
        method: 'PATCH',
        headers: {
          authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ disabled: true }),
      });
      expect(disabled.status).toBe(200);
      expect(await openIdSessionOf(cookie, { authUrl: wharf.baseUrl })).toBeNull();
      const me = await fetch(`${wharf.baseUrl}/me`, { headers: { cookie }, redirect: 'manual' });
      expect(me.status).toBe(302); // back to the provider: the session no longer stands
      expect(await me.text()).not.toContain('wharf_');
    } finally {
      await wharf.close();
    }
  });
});

describe('API v1 hook: who signed in through OpenID', () => {
  let wharf: Harness;
  let app: Awaited<ReturnType<typeof buildWharf>> | undefined;
  beforeAll(async () => {
    wharf = await startHarness();
  });
  afterAll(async () => {
    await app?.close();
    await wharf?.close();
  });

  it('answers the same in process (inject) and over HTTP (AuthService elsewhere)', async () => {
    const browser = new Browserless();
    const back = (await browser.signIn(
      `${wharf.baseUrl}${openIdLoginUrl('/api/v1/signin/openid/done')}`,
      'alice',
    )) as Visit;
    expect(back.url.pathname).toBe('/api/v1/signin/openid/done');
    const cookie = browser.jar.header(new URL(wharf.baseUrl));
    const expected = {
      username: 'corp:alice',
      account: 'alice',
      groups: ['firm/crate-owners', 'firm/everyone'],
      principal: {
        kind: 'user',
        name: 'alice',
        groups: [],
        scopes: null,
        via: 'session',
        admin: false,
        credential: { type: 'account', user: 'alice' },
      },
    };
    expect(await openIdSessionOf(cookie, { authUrl: wharf.baseUrl })).toEqual(expected);
    // A second process on the same store, all roles in one: the in-process path.
    app = await buildWharf(
      wharf.config,
      await FsObjectStore.open(wharf.config.store.dataDir),
      createLogger('silent'),
    );
    await app.app.ready();
    expect(await openIdSessionOf(cookie, { app: app.app })).toEqual(expected);
    expect(await openIdSessionOf('wharf_sso=forged', { app: app.app })).toBeNull();
    expect(await openIdSessionOf(undefined, { authUrl: wharf.baseUrl })).toBeNull();
  });
});
