import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../support/wharf.ts';

/**
 * wharf_authentications_total counts each credential check once, where it is made: a `docker login`
 * is one password check (the registry and the AuthService used to count it both), and an answer the
 * registry remembers is not a check at all.
 */
describe('wharf_authentications_total', () => {
  let server: TestServer;
  const basic = (user: string, secret: string) =>
    `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;
  const call = (method: string, url: string, headers: Record<string, string> = {}, json?: unknown) =>
    fetch(`${server.url}${url}`, {
      method,
      headers: { ...headers, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });
  /** The counter's value for one method and result (0 when absent). */
  async function count(method: string, result: string): Promise<number> {
    const text = await server.wharf.metrics.registry.metrics();
    const match = new RegExp(
      `^wharf_authentications_total\\{method="${method}",result="${result}"\\} (\\d+)`,
      'm',
    ).exec(text);
    return match ? Number(match[1]) : 0;
  }
  async function counts(): Promise<Record<string, number>> {
    const result: Record<string, number> = {};
    for (const method of ['password', 'token', 'robot', 'refresh_token'])
      for (const outcome of ['success', 'failure', 'throttled']) {
        const value = await count(method, outcome);
        if (value > 0) result[`${method} ${outcome}`] = value;
      }
    return result;
  }
  /** What changed in the counters while `action` ran. */
  async function delta(action: () => Promise<unknown>): Promise<Record<string, number>> {
    const before = await counts();
    await action();
    const after = await counts();
    const changed: Record<string, number> = {};
    for (const [key, value] of Object.entries(after))
      if (value !== (before[key] ?? 0)) changed[key] = value - (before[key] ?? 0);
    return changed;
  }

  let token = '';
  beforeAll(async () => {
    server = await startServer({
      logLevel: 'warn',
      auth: { signup: 'open', bcryptCost: 10, rateLimit: { perUser: 3, perAddress: 100, windowSeconds: 60 } },
      registry: { credentialCacheSeconds: 60 },
    });
    expect(
      (await call('POST', '/ktra/api/v1/new_user/meter', {}, { password: 'meter-password' })).status,
    ).toBe(200);
    const created = await call(
      'POST',
      '/auth/api/v1/tokens',
      { authorization: basic('meter', 'meter-password') },
      { name: 'm' },
    );
    token = ((await created.json()) as { token: string }).token;
  });
  afterAll(async () => server?.stop());

  it('a docker login is one password check; the same login again within the cache bound is none', async () => {
    const login = async () => {
      expect((await call('GET', '/v2/')).status).toBe(401);
      const answer = await call('GET', '/v2/auth?service=wharf', {
        authorization: basic('meter', 'meter-password'),
      });
      expect(answer.status).toBe(200);
    };
    expect(await delta(login)).toEqual({ 'password success': 1 });
    expect(await delta(login)).toEqual({});
  });

  it('a wrong password is one failure; throttled attempts are counted apart', async () => {
    const wrong = (password: string) =>
      call('GET', '/v2/auth?service=wharf', { authorization: basic('meter', password) });
    expect(await delta(async () => expect((await wrong('wrong-1')).status).toBe(401))).toEqual({
      'password failure': 1,
    });
    const changes = await delta(async () => {
      for (const attempt of ['wrong-2', 'wrong-3', 'wrong-4']) await wrong(attempt);
    });
    expect(changes).toEqual({ 'password failure': 2, 'password throttled': 1 });
  });

  it('an API token used by cargo and API v1 over and over is checked once', async () => {
    expect(
      await delta(async () => {
        for (let i = 0; i < 3; i++) {
          expect((await call('GET', '/api/v1/user/', { authorization: `Bearer ${token}` })).status).toBe(200);
          expect((await call('GET', '/api/v1/crates/nothing/owners', { authorization: token })).status).toBe(
            404,
          );
        }
      }),
    ).toEqual({ 'token success': 1 });
  });

  it('the AuthService own API checks every request (it is the authority, no cache)', async () => {
    expect(
      await delta(async () => {
        for (let i = 0; i < 2; i++)
          expect((await call('GET', '/auth/api/v1/me', { authorization: `Bearer ${token}` })).status).toBe(
            200,
          );
      }),
    ).toEqual({ 'token success': 2 });
  });
});
