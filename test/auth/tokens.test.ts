import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, call, type RunningServer, SERVICE_AUTH, startServer } from '../support/auth-server.ts';

const ADMIN_PASSWORD = 'admin-password-for-tokens';

describe('named tokens, the admin API and rate limits', () => {
  let server: RunningServer;
  let api: string;
  let userToken: string;
  const verify = (token: string) =>
    call(`${server.url}/restauth/verify`, 'POST', { auth: SERVICE_AUTH, json: { token } });

  beforeAll(async () => {
    server = await startServer({
      auth: {
        adminPassword: ADMIN_PASSWORD,
        signup: 'open',
        rateLimit: { perAccountAndAddress: 3, perAccount: 100, perAddress: 50, windowSeconds: 600 },
      },
    });
    api = `${server.url}/auth/api/v1`;
    const created = await call(`${server.url}/ktra/api/v1/new_user/dev`, 'POST', {
      json: { password: 'dev-password' },
    });
    userToken = (created.body as { token: string }).token;
  });
  afterAll(async () => server?.close());

  it('authenticates the API by cargo-style token, Bearer token and Basic password; 401 otherwise', async () => {
    for (const auth of [
      userToken,
      `Bearer ${userToken}`,
      basic('dev', 'dev-password'),
      basic('dev', userToken),
    ]) {
      const me = await call(`${api}/me`, 'GET', { auth });
      expect(me.status, auth.slice(0, 6)).toBe(200);
      expect(me.body).toMatchObject({ name: 'dev', kind: 'user', admin: false });
    }
    for (const auth of [undefined, 'wharf_not-a-token', basic('dev', 'wrong-password'), 'Bearer ']) {
      const refused = await call(`${api}/me`, 'GET', auth ? { auth } : {});
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toMatch(/^Basic/);
    }
  });

  it('creates, lists and revokes named tokens with scopes and expiry', async () => {
    const created = await call(`${api}/tokens`, 'POST', {
      auth: userToken,
      json: { name: 'ci publish', scopes: ['publish-new', 'publish-update'] },
    });
    expect(created.status).toBe(201);
    const token = created.body as { id: string; token: string; scopes: string[]; expiresAt: string | null };
    expect(token.token).toMatch(/^wharf_/);
    expect(token.expiresAt).toBeNull();
    const who = await verify(token.token);
    expect(who.body).toMatchObject({ name: 'dev', scopes: ['publish-new', 'publish-update'], via: 'token' });

    const listed = await call(`${api}/tokens`, 'GET', { auth: userToken });
    const tokens = (listed.body as { tokens: Record<string, unknown>[] }).tokens;
    expect(tokens.map((t) => t.name).sort()).toEqual(['ci publish', 'ktra']);
    // Listing never shows a secret or its hash.
    expect(JSON.stringify(listed.body)).not.toContain(token.token);
    expect(tokens.every((t) => !('hash' in t) && !('token' in t))).toBe(true);

    // A scoped token cannot mint or revoke tokens.
    expect(
      (await call(`${api}/tokens`, 'POST', { auth: token.token, json: { name: 'escalate' } })).status,
    ).toBe(403);
    expect((await call(`${api}/tokens/${token.id}`, 'DELETE', { auth: token.token })).status).toBe(403);

    expect((await call(`${api}/tokens/${token.id}`, 'DELETE', { auth: userToken })).status).toBe(204);
    expect((await call(`${api}/tokens/${token.id}`, 'DELETE', { auth: userToken })).status).toBe(404);
    expect((await verify(token.token)).status).toBe(404);
  });

  it('refuses bad token requests with 400 and expires tokens on time', async () => {
    for (const json of [
      {},
      { name: 'x', scopes: ['delete-everything'] },
      { name: 'x', expiresAt: '2001-01-01T00:00:00Z' },
    ]) {
      const refused = await call(`${api}/tokens`, 'POST', { auth: userToken, json });
      expect(refused.status, JSON.stringify(json)).toBe(400);
      expect(refused.body).toEqual({ errors: [{ detail: expect.any(String) }] });
    }
    const short = await call(`${api}/tokens`, 'POST', {
      auth: userToken,
      json: { name: 'short-lived', scopes: ['pull'], expiresInSeconds: 1 },
    });
    expect(short.status).toBe(201);
    const { token, expiresAt } = short.body as { token: string; expiresAt: string };
    expect(Date.parse(expiresAt)).toBeGreaterThan(Date.now());
    expect((await verify(token)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, Date.parse(expiresAt) - Date.now() + 50));
    expect((await verify(token)).status).toBe(404);
    const later = await call(`${api}/tokens`, 'GET', { auth: userToken });
    expect(JSON.stringify(later.body)).not.toContain('short-lived');
  });

  it('lets administrators manage users: create, get, disable, delete', async () => {
    const admin = { auth: basic('admin', ADMIN_PASSWORD) };
    expect((await call(`${api}/users`, 'GET', { auth: userToken })).status).toBe(403);
    const created = await call(`${api}/users`, 'POST', {
      ...admin,
      json: { username: 'ops', password: 'ops-password' },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ username: 'ops', admin: false, disabled: false });
    expect(
      (await call(`${api}/users`, 'POST', { ...admin, json: { username: 'ops', password: 'ops-password' } }))
        .status,
    ).toBe(409);
    expect(((await call(`${api}/users`, 'GET', admin)).body as { users: string[] }).users).toEqual(
      expect.arrayContaining(['admin', 'dev', 'ops']),
    );
    const opsToken = (
      (await call(`${server.url}/ktra/api/v1/login/ops`, 'POST', { json: { password: 'ops-password' } }))
        .body as {
        token: string;
      }
    ).token;
    expect((await call(`${api}/users/ops`, 'PATCH', { ...admin, json: { disabled: true } })).status).toBe(
      200,
    );
    // A disabled user can neither log in nor use a token.
    expect((await verify(opsToken)).status).toBe(404);
    expect(
      (await call(`${server.url}/ktra/api/v1/login/ops`, 'POST', { json: { password: 'ops-password' } }))
        .status,
    ).toBe(403);
    expect((await call(`${api}/users/ops`, 'PATCH', { ...admin, json: { disabled: false } })).status).toBe(
      200,
    );
    expect((await verify(opsToken)).status).toBe(200);
    expect((await call(`${api}/users/ops`, 'GET', admin)).body).toMatchObject({
      username: 'ops',
      hasPassword: true,
    });
    // An administrator revokes someone else's token by its id (from GET /users/{name}).
    const spare = (
      await call(`${api}/tokens`, 'POST', { auth: opsToken, json: { name: 'spare', scopes: ['pull'] } })
    ).body as { id: string; token: string };
    expect((await verify(spare.token)).status).toBe(200);
    expect((await call(`${api}/users/ops/tokens/${spare.id}`, 'DELETE', { auth: userToken })).status).toBe(
      403,
    );
    expect((await call(`${api}/users/ops/tokens/${spare.id}`, 'DELETE', admin)).status).toBe(204);
    expect((await call(`${api}/users/ops/tokens/${spare.id}`, 'DELETE', admin)).status).toBe(404);
    expect((await verify(spare.token)).status).toBe(404);
    expect((await call(`${api}/users/ops`, 'DELETE', admin)).status).toBe(204);
    expect((await call(`${api}/users/ops`, 'DELETE', admin)).status).toBe(404);
    expect((await call(`${api}/users/ops`, 'GET', admin)).status).toBe(404);
    expect((await verify(opsToken)).status).toBe(404);
  });

  it('lets administrators manage RestAuth services, which then authenticate', async () => {
    const admin = { auth: basic('admin', ADMIN_PASSWORD) };
    const created = await call(`${api}/services/wiki`, 'PUT', {
      ...admin,
      json: { permissions: ['user_verify_password'] },
    });
    expect(created.status).toBe(201);
    const { password } = created.body as { password: string };
    expect(password.length).toBeGreaterThanOrEqual(24);
    const wiki = { auth: basic('wiki', password) };
    expect(
      (
        await call(`${server.url}/restauth/users/dev/`, 'POST', {
          ...wiki,
          form: { password: 'dev-password' },
        })
      ).status,
    ).toBe(200);
    expect((await call(`${server.url}/restauth/users/`, 'GET', wiki)).status).toBe(403);
    // Switched to the released protocol: the same check now answers 204.
    const switched = await call(`${api}/services/wiki`, 'PUT', {
      ...admin,
      json: {
        permissions: ['user_verify_password'],
        password,
        protocol: 'restauth-0.6',
        passwordMinLength: 6,
      },
    });
    expect(switched.status).toBe(200);
    expect(switched.body).toMatchObject({ protocol: 'restauth-0.6', passwordMinLength: 6, groups: 'shared' });
    expect(
      (
        await call(`${server.url}/restauth/users/dev/`, 'POST', {
          ...wiki,
          form: { password: 'dev-password' },
        })
      ).status,
    ).toBe(204);
    for (const json of [{ protocol: 'restauth-0.7' }, { passwordMinLength: 5 }, { groups: 'global' }])
      expect(
        (await call(`${api}/services/wiki`, 'PUT', { ...admin, json: { permissions: [], ...json } })).status,
        JSON.stringify(json),
      ).toBe(400);
    expect(
      (await call(`${api}/services/wiki`, 'PUT', { ...admin, json: { permissions: ['nonsense'] } })).status,
    ).toBe(400);
    expect(
      (await call(`${api}/services/tester`, 'PUT', { ...admin, json: { permissions: [] } })).status,
    ).toBe(409);
    const listed = await call(`${api}/services`, 'GET', admin);
    expect(listed.body).toEqual({
      services: [
        {
          name: 'tester',
          permissions: ['*'],
          forwardsClientAddress: false,
          protocol: 'reference',
          userNames: 'registry',
          passwordMinLength: 8,
          groups: 'shared',
          source: 'config',
        },
        {
          name: 'wiki',
          permissions: ['user_verify_password'],
          forwardsClientAddress: false,
          protocol: 'restauth-0.6',
          userNames: 'registry',
          passwordMinLength: 6,
          groups: 'shared',
          source: 'store',
        },
      ],
    });
    expect((await call(`${api}/services`, 'GET', { auth: userToken })).status).toBe(403);
    expect((await call(`${api}/services/wiki`, 'DELETE', admin)).status).toBe(204);
    expect((await call(`${api}/services/wiki`, 'DELETE', admin)).status).toBe(404);
    expect(
      (
        await call(`${server.url}/restauth/users/dev/`, 'POST', {
          ...wiki,
          form: { password: 'dev-password' },
        })
      ).status,
    ).toBe(401);
  });

  it('throttles password guessing from one source: 429 with Retry-After, even for the right password', async () => {
    await call(`${server.url}/ktra/api/v1/new_user/victim`, 'POST', {
      json: { password: 'victim-password' },
    });
    // Guesses through a RestAuth service that relays no address: the service is the source.
    const restauth = `${server.url}/restauth/users/victim/`;
    for (let i = 0; i < 3; i++) {
      expect(
        (await call(restauth, 'POST', { auth: SERVICE_AUTH, form: { password: `guess-${i}-wrong` } })).status,
      ).toBe(404);
    }
    for (const attempt of [
      () => call(restauth, 'POST', { auth: SERVICE_AUTH, form: { password: 'victim-password' } }),
      () =>
        call(`${server.url}/restauth/verify`, 'POST', {
          auth: SERVICE_AUTH,
          json: { username: 'victim', password: 'victim-password' },
        }),
    ]) {
      const limited = await attempt();
      expect(limited.status).toBe(429);
      const retryAfter = Number(limited.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(600);
    }
    // The victim, from another source (here straight to Ktra), is not locked out; others neither.
    expect(
      (
        await call(`${server.url}/ktra/api/v1/login/victim`, 'POST', {
          json: { password: 'victim-password' },
        })
      ).status,
    ).toBe(200);
    expect(
      (await call(`${server.url}/ktra/api/v1/login/dev`, 'POST', { json: { password: 'dev-password' } }))
        .status,
    ).toBe(200);
  });
});

describe('rate limit per client address', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({
      auth: { signup: 'open', rateLimit: { perAccount: 100, perAddress: 4, windowSeconds: 30 } },
    });
  });
  afterAll(async () => server?.close());

  it('refuses a client that guesses across many usernames', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await call(`${server.url}/ktra/api/v1/login/user${i}`, 'POST', {
        json: { password: 'guess-guess' },
      });
      statuses.push(response.status);
      if (response.status === 429) expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    expect(statuses).toEqual([403, 403, 403, 403, 429, 429]);
  });
});

describe('token checks never pay a bcrypt', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ auth: { bcryptCost: 13, signup: 'open' } });
  });
  afterAll(async () => server?.close());

  it('a token check at bcrypt cost 13 takes a small fraction of one bcrypt', async () => {
    const created = await call(`${server.url}/ktra/api/v1/new_user/slow`, 'POST', {
      json: { password: 'slow-password' },
    });
    const { token } = created.body as { token: string };
    const started = performance.now();
    expect(
      (
        await call(`${server.url}/restauth/users/slow/`, 'POST', {
          auth: SERVICE_AUTH,
          form: { password: 'slow-password' },
        })
      ).status,
    ).toBe(200);
    const passwordMs = performance.now() - started;
    const tokenMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const begin = performance.now();
      expect(
        (await call(`${server.url}/restauth/verify`, 'POST', { auth: SERVICE_AUTH, json: { token } })).status,
      ).toBe(200);
      tokenMs.push(performance.now() - begin);
    }
    tokenMs.sort((a, b) => a - b);
    expect(tokenMs[2]!).toBeLessThan(passwordMs / 4);
  });
});
