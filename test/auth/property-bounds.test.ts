import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type RunningServer, SERVICE_AUTH, startServer } from '../support/auth-server.ts';

/**
 * Bounds on RestAuth properties, on every path that writes them: a value is at most 4096 bytes
 * (UTF-8), a user has at most 64 properties (`date joined` included). Past them the answer is 400,
 * like any other value RestAuth finds unacceptable, and nothing of the request is written.
 */
describe('RestAuth property bounds over a real socket', () => {
  let server: RunningServer;
  let restauth: string;
  const as = { auth: SERVICE_AUTH };

  beforeAll(async () => {
    server = await startServer();
    restauth = `${server.url}/restauth`;
    for (const user of ['alice', 'bob'])
      expect(
        (await call(`${restauth}/users/`, 'POST', { ...as, json: { user, password: `${user}-pass-1` } }))
          .status,
      ).toBe(201);
  });
  afterAll(async () => server?.close());

  const props = async (user: string) =>
    (await call(`${restauth}/users/${user}/props/`, 'GET', as)).body as Record<string, string>;

  it('takes a value of 4096 bytes and refuses 4097, counting bytes, not characters', async () => {
    const url = `${restauth}/users/alice/props/`;
    expect((await call(url, 'POST', { ...as, json: { prop: 'key', value: 'k'.repeat(4096) } })).status).toBe(
      201,
    );
    const over = await call(url, 'POST', { ...as, json: { prop: 'big', value: 'k'.repeat(4097) } });
    expect(over.status).toBe(400);
    expect(over.body).toEqual({ error: 'property big is longer than 4096 bytes' });
    // 1366 euro signs are 1366 characters and 4098 bytes.
    const euros = await call(`${url}euros`, 'PUT', { ...as, json: { value: '€'.repeat(1366) } });
    expect(euros.status).toBe(400);
    expect(Object.keys(await props('alice')).sort()).toEqual(['date joined', 'key']);
  });

  it('refuses an oversize value when replacing a property, keeping the old value', async () => {
    const url = `${restauth}/users/alice/props/key`;
    expect((await call(url, 'PUT', { ...as, json: { value: 'x'.repeat(5000) } })).status).toBe(400);
    expect((await call(url, 'GET', as)).body).toBe('k'.repeat(4096));
  });

  it('refuses the 9 MiB value of the finding before parsing it (413, the JSON body limit)', async () => {
    const response = await call(`${restauth}/users/alice/props/`, 'POST', {
      ...as,
      json: { prop: 'huge', value: 'x'.repeat(9 * 1024 * 1024) },
    });
    expect(response.status).toBe(413);
    expect(response.body).toEqual({ error: expect.stringMatching(/too large/i) });
    expect(await props('alice')).not.toHaveProperty('huge');
  });

  it('refuses a property name over 64 characters', async () => {
    const response = await call(`${restauth}/users/alice/props/`, 'PUT', {
      ...as,
      json: { ['n'.repeat(65)]: 'v' },
    });
    expect(response.status).toBe(400);
    expect(await props('alice')).not.toHaveProperty('n'.repeat(65));
  });

  it('holds a user to 64 properties; a PUT of several that would pass it writes none of them', async () => {
    const url = `${restauth}/users/bob/props/`;
    // `date joined` + 63 = 64.
    const fill = Object.fromEntries(Array.from({ length: 63 }, (_, i) => [`p${i}`, 'v']));
    expect((await call(url, 'PUT', { ...as, json: fill })).status).toBe(200);
    expect(Object.keys(await props('bob'))).toHaveLength(64);

    const one = await call(url, 'POST', { ...as, json: { prop: 'p63', value: 'v' } });
    expect(one.status).toBe(400);
    expect(one.body).toEqual({ error: 'a user has at most 64 properties' });
    expect((await call(`${url}p63`, 'PUT', { ...as, json: { value: 'v' } })).status).toBe(400);
    const several = await call(url, 'PUT', { ...as, json: { p0: 'changed', extra: 'v' } });
    expect(several.status).toBe(400);
    const after = await props('bob');
    expect(Object.keys(after)).toHaveLength(64);
    expect(after.p0).toBe('v');

    // At the bound, existing properties still change, and a deleted one makes room again.
    expect((await call(url, 'PUT', { ...as, json: { p0: 'changed', p1: 'changed' } })).status).toBe(200);
    expect((await call(`${url}p62`, 'DELETE', as)).status).toBe(200);
    expect((await call(url, 'POST', { ...as, json: { prop: 'p63', value: 'v' } })).status).toBe(201);
  });

  it('applies the same bounds to properties given when a user is created, creating no user', async () => {
    for (const [user, properties] of [
      ['carol', { bio: 'b'.repeat(4097) }],
      ['dave', Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`p${i}`, 'v']))],
    ] as const) {
      const created = await call(`${restauth}/users/`, 'POST', {
        ...as,
        json: { user, password: `${user}-pass-1`, properties },
      });
      expect(created.status, user).toBe(400);
      expect((await call(`${restauth}/users/${user}`, 'GET', as)).status, user).toBe(404);
    }
    const fits = Object.fromEntries(Array.from({ length: 63 }, (_, i) => [`p${i}`, 'v'.repeat(3000)]));
    const created = await call(`${restauth}/users/`, 'POST', {
      ...as,
      json: { user: 'erin', password: 'erin-pass-1', properties: fits },
    });
    expect(created.status).toBe(201);
    expect(Object.keys(await props('erin'))).toHaveLength(64);
  });
});
