import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, call, type RunningServer, SERVICE_AUTH, startServer } from '../support/auth-server.ts';

describe('RestAuth API over a real socket', () => {
  let server: RunningServer;
  let restauth: string;
  const as = { auth: SERVICE_AUTH };
  const limitedAuth = basic('verifier', 'verifier-password-0123');

  beforeAll(async () => {
    server = await startServer({
      auth: {
        services: [
          { name: 'tester', password: 'service-password-0123456789', permissions: ['*'] },
          {
            name: 'verifier',
            password: 'verifier-password-0123',
            permissions: ['user_verify_password', 'user_exists'],
          },
        ],
      },
    });
    restauth = `${server.url}/restauth`;
  });
  afterAll(async () => server?.close());

  it('asks services to authenticate: 401 with WWW-Authenticate when credentials are missing or wrong', async () => {
    for (const auth of [
      undefined,
      basic('tester', 'wrong-password-123'),
      basic('nobody', 'x'),
      'Bearer abc',
    ]) {
      const response = await call(`${restauth}/users/`, 'GET', auth ? { auth } : {});
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^Basic realm="/);
    }
  });

  it('creates users from form and JSON bodies: 201, then 409 for a duplicate, 400 for bad input', async () => {
    expect(
      (
        await call(`${restauth}/users/`, 'POST', {
          ...as,
          form: { username: 'alice', password: 'alice-pass-1' },
        })
      ).status,
    ).toBe(201);
    expect(
      (await call(`${restauth}/users`, 'POST', { ...as, json: { username: 'bob', password: 'bob-pass-12' } }))
        .status,
    ).toBe(201);
    expect(
      (await call(`${restauth}/users/`, 'POST', { ...as, json: { user: 'carol', password: 'carol-pass-1' } }))
        .status,
    ).toBe(201);
    // Usernames are case-insensitive: ALICE is alice.
    expect(
      (
        await call(`${restauth}/users/`, 'POST', {
          ...as,
          form: { username: 'ALICE', password: 'alice-pass-2' },
        })
      ).status,
    ).toBe(409);
    for (const body of [
      { password: 'no-username-1' },
      { username: 'bad/name', password: 'password-123' },
      { username: 'bad:name', password: 'password-123' },
      { username: 'robot+name', password: 'password-123' },
      { username: '-leading-dash', password: 'password-123' },
      { username: 'x'.repeat(65), password: 'password-123' },
      { username: 'shortpass', password: 'short' },
    ]) {
      expect(
        (await call(`${restauth}/users/`, 'POST', { ...as, json: body })).status,
        JSON.stringify(body),
      ).toBe(400);
    }
    expect((await call(`${restauth}/users/`, 'POST', { ...as, json: 'not an object' })).status).toBe(400);
  });

  it('lists users and answers existence: 200 or 404 with Resource-Type', async () => {
    const list = await call(`${restauth}/users/`, 'GET', as);
    expect(list.status).toBe(200);
    expect(list.body).toEqual(expect.arrayContaining(['alice', 'bob', 'carol']));
    expect((await call(`${restauth}/users/alice`, 'GET', as)).status).toBe(200);
    expect((await call(`${restauth}/users/Alice/`, 'GET', as)).status).toBe(200);
    const missing = await call(`${restauth}/users/nobody/`, 'GET', as);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('resource-type')).toBe('user');
  });

  it('verifies passwords: 200 when right, 404 for a wrong password and an unknown user alike', async () => {
    expect(
      (await call(`${restauth}/users/alice/`, 'POST', { ...as, form: { password: 'alice-pass-1' } })).status,
    ).toBe(200);
    expect(
      (await call(`${restauth}/users/alice`, 'POST', { ...as, json: { password: 'alice-pass-1' } })).status,
    ).toBe(200);
    const wrong = await call(`${restauth}/users/alice/`, 'POST', {
      ...as,
      form: { password: 'wrong-password' },
    });
    const unknown = await call(`${restauth}/users/ghost/`, 'POST', {
      ...as,
      form: { password: 'wrong-password' },
    });
    expect(wrong.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect(unknown.text).not.toBe('');
    expect((await call(`${restauth}/users/alice/`, 'POST', { ...as, form: { other: 'x' } })).status).toBe(
      400,
    );
    expect((await call(`${restauth}/users/alice/`, 'POST', as)).status).toBe(400);
  });

  it('takes as long to refuse an unknown user as a wrong password (a bcrypt either way)', async () => {
    const time = async (user: string) => {
      const started = performance.now();
      await call(`${restauth}/users/${user}/`, 'POST', { ...as, json: { password: 'timing-guess-1' } });
      return performance.now() - started;
    };
    await call(`${restauth}/users/`, 'POST', {
      ...as,
      json: { username: 'timing', password: 'timing-pass-1' },
    });
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 4; i++) {
      known.push(await time('timing'));
      unknown.push(await time(`ghost${i}`));
    }
    const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    // Both pay a bcrypt at the configured cost (tens of ms); a skipped bcrypt would be ~1 ms.
    expect(median(unknown)).toBeGreaterThan(median(known) * 0.3);
  });

  it('changes passwords with PUT: 200, 400 for a bad one, 403 for a rename, 404 for an unknown user', async () => {
    expect(
      (await call(`${restauth}/users/bob/`, 'PUT', { ...as, form: { password: 'bob-new-pass' } })).status,
    ).toBe(200);
    expect(
      (await call(`${restauth}/users/bob/`, 'POST', { ...as, form: { password: 'bob-pass-12' } })).status,
    ).toBe(404);
    expect(
      (await call(`${restauth}/users/bob/`, 'POST', { ...as, form: { password: 'bob-new-pass' } })).status,
    ).toBe(200);
    expect((await call(`${restauth}/users/bob/`, 'PUT', { ...as, json: { password: 'short' } })).status).toBe(
      400,
    );
    expect((await call(`${restauth}/users/bob/`, 'PUT', { ...as, json: {} })).status).toBe(400);
    expect(
      (await call(`${restauth}/users/bob/`, 'PUT', { ...as, json: { username: 'robert' } })).status,
    ).toBe(403);
    expect(
      (await call(`${restauth}/users/ghost/`, 'PUT', { ...as, json: { password: 'ghost-pass-1' } })).status,
    ).toBe(404);
    // An empty password turns password login off.
    expect((await call(`${restauth}/users/carol/`, 'PUT', { ...as, form: { password: '' } })).status).toBe(
      200,
    );
    expect(
      (await call(`${restauth}/users/carol/`, 'POST', { ...as, form: { password: 'carol-pass-1' } })).status,
    ).toBe(404);
  });

  it('deletes users: 200, then 404', async () => {
    await call(`${restauth}/users/`, 'POST', {
      ...as,
      json: { username: 'doomed', password: 'doomed-pass' },
    });
    expect((await call(`${restauth}/users/doomed/`, 'DELETE', as)).status).toBe(200);
    expect((await call(`${restauth}/users/doomed/`, 'DELETE', as)).status).toBe(404);
    expect((await call(`${restauth}/users/doomed/`, 'GET', as)).status).toBe(404);
  });

  it('refuses operations a service has no permission for with 403', async () => {
    const verifier = { auth: limitedAuth };
    expect(
      (await call(`${restauth}/users/alice/`, 'POST', { ...verifier, form: { password: 'alice-pass-1' } }))
        .status,
    ).toBe(200);
    expect((await call(`${restauth}/users/alice/`, 'GET', verifier)).status).toBe(200);
    expect((await call(`${restauth}/users/`, 'GET', verifier)).status).toBe(403);
    expect(
      (
        await call(`${restauth}/users/`, 'POST', {
          ...verifier,
          json: { username: 'x1', password: 'password-1' },
        })
      ).status,
    ).toBe(403);
    expect((await call(`${restauth}/users/alice/`, 'DELETE', verifier)).status).toBe(403);
    expect((await call(`${restauth}/groups/`, 'GET', verifier)).status).toBe(403);
    expect(
      (await call(`${restauth}/verify`, 'POST', { ...verifier, json: { token: 'wharf_x' } })).status,
    ).toBe(403);
  });

  it('keeps user properties: create 201/409, get, set (200 old value / 201 new), delete 200/404', async () => {
    const props = `${restauth}/users/alice/props`;
    expect(
      (await call(`${props}/`, 'POST', { ...as, form: { prop: 'email', value: 'alice@example.com' } }))
        .status,
    ).toBe(201);
    expect(
      (await call(`${props}/`, 'POST', { ...as, json: { prop: 'email', value: 'other@example.com' } }))
        .status,
    ).toBe(409);
    const all = await call(`${props}/`, 'GET', as);
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ email: 'alice@example.com', 'date joined': expect.any(String) });
    const one = await call(`${props}/email/`, 'GET', as);
    expect(one.body).toBe('alice@example.com');
    expect(one.headers.get('content-type')).toMatch(/^application\/json/);
    const replaced = await call(`${props}/email`, 'PUT', { ...as, json: { value: 'a@example.org' } });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toBe('alice@example.com');
    expect((await call(`${props}/full%20name`, 'PUT', { ...as, form: { value: 'Alice A.' } })).status).toBe(
      201,
    );
    const many = await call(`${props}/`, 'PUT', {
      ...as,
      json: { url: 'https://alice.example', lang: 'en' },
    });
    expect(many.status).toBe(200);
    expect(many.body).toMatchObject({ url: 'https://alice.example', lang: 'en', 'full name': 'Alice A.' });
    expect((await call(`${props}/lang/`, 'DELETE', as)).status).toBe(200);
    const gone = await call(`${props}/lang/`, 'GET', as);
    expect(gone.status).toBe(404);
    expect(gone.headers.get('resource-type')).toBe('property');
    expect((await call(`${props}/lang/`, 'DELETE', as)).status).toBe(404);
    expect((await call(`${restauth}/users/ghost/props/`, 'GET', as)).status).toBe(404);
    expect((await call(`${props}/`, 'POST', { ...as, json: { prop: 'bad/name', value: 'x' } })).status).toBe(
      400,
    );
  });

  it('manages groups with members and nested groups: a subgroup inherits its metagroups members', async () => {
    const groups = `${restauth}/groups`;
    expect((await call(`${groups}/`, 'POST', { ...as, form: { group: 'staff' } })).status).toBe(201);
    expect(
      (await call(`${groups}`, 'POST', { ...as, json: { group: 'developers', users: ['bob'] } })).status,
    ).toBe(201);
    expect((await call(`${groups}/`, 'POST', { ...as, json: { group: 'staff' } })).status).toBe(409);
    expect((await call(`${groups}/`, 'POST', { ...as, json: { group: 'bad/group' } })).status).toBe(400);
    expect((await call(`${groups}/`, 'POST', { ...as, json: {} })).status).toBe(400);
    expect((await call(`${groups}/`, 'GET', as)).body).toEqual(['developers', 'staff']);
    expect((await call(`${groups}/staff/`, 'GET', as)).status).toBe(200);
    expect((await call(`${groups}/nope/`, 'GET', as)).status).toBe(404);

    expect((await call(`${groups}/staff/users/`, 'POST', { ...as, form: { user: 'alice' } })).status).toBe(
      200,
    );
    expect((await call(`${groups}/staff/users/`, 'POST', { ...as, form: { user: 'ghost' } })).status).toBe(
      404,
    );
    expect((await call(`${groups}/nope/users/`, 'POST', { ...as, form: { user: 'alice' } })).status).toBe(
      404,
    );
    // developers becomes a subgroup of staff: staff's members are developers too.
    expect(
      (await call(`${groups}/staff/groups/`, 'POST', { ...as, json: { group: 'developers' } })).status,
    ).toBe(200);
    expect((await call(`${groups}/staff/groups/`, 'POST', { ...as, json: { group: 'nope' } })).status).toBe(
      404,
    );
    expect((await call(`${groups}/staff/groups/`, 'POST', { ...as, json: { group: 'staff' } })).status).toBe(
      400,
    );
    expect((await call(`${groups}/staff/groups/`, 'GET', as)).body).toEqual(['developers']);
    expect((await call(`${groups}/developers/users/`, 'GET', as)).body).toEqual(['alice', 'bob']);
    expect((await call(`${groups}/staff/users/`, 'GET', as)).body).toEqual(['alice']);
    expect((await call(`${groups}/developers/users/alice/`, 'GET', as)).status).toBe(200);
    expect((await call(`${groups}/staff/users/bob/`, 'GET', as)).status).toBe(404);
    expect((await call(`${groups}/?user=alice`, 'GET', as)).body).toEqual(['developers', 'staff']);
    expect((await call(`${groups}/?user=ghost`, 'GET', as)).status).toBe(404);

    // The registry's view: /verify returns the expanded groups.
    const verified = await call(`${restauth}/verify`, 'POST', {
      ...as,
      json: { username: 'alice', password: 'alice-pass-1' },
    });
    expect(verified.status).toBe(200);
    expect(verified.body).toMatchObject({
      name: 'alice',
      kind: 'user',
      groups: ['developers', 'staff'],
      via: 'password',
      admin: false,
      scopes: null,
    });

    expect((await call(`${groups}/staff/groups/developers/`, 'DELETE', as)).status).toBe(200);
    expect((await call(`${groups}/staff/groups/developers/`, 'DELETE', as)).status).toBe(404);
    expect((await call(`${groups}/developers/users/`, 'GET', as)).body).toEqual(['bob']);
    expect((await call(`${groups}/staff/users/alice/`, 'DELETE', as)).status).toBe(200);
    expect((await call(`${groups}/staff/users/alice/`, 'DELETE', as)).status).toBe(404);
    // A user created with properties and groups in one request (RestAuth 0.6).
    const withExtras = await call(`${restauth}/users/`, 'POST', {
      ...as,
      json: { username: 'dana', password: 'dana-pass-1', properties: { team: 'infra' }, groups: ['staff'] },
    });
    expect(withExtras.status).toBe(201);
    expect((await call(`${restauth}/users/dana/props/team`, 'GET', as)).body).toBe('infra');
    expect((await call(`${groups}/staff/users/dana/`, 'GET', as)).status).toBe(200);
    const unknownGroup = await call(`${restauth}/users/`, 'POST', {
      ...as,
      json: { username: 'eve', password: 'eve-pass-1', groups: ['nope'] },
    });
    expect(unknownGroup.status).toBe(404);
    expect(unknownGroup.headers.get('resource-type')).toBe('group');
    expect((await call(`${restauth}/users/eve`, 'GET', as)).status).toBe(404);
    // Deleting a user removes it from its groups.
    expect((await call(`${restauth}/users/dana/`, 'DELETE', as)).status).toBe(200);
    expect((await call(`${groups}/staff/users/`, 'GET', as)).body).toEqual([]);

    expect((await call(`${groups}/staff/`, 'DELETE', as)).status).toBe(200);
    expect((await call(`${groups}/staff/`, 'DELETE', as)).status).toBe(404);
    expect((await call(`${groups}/staff/users/`, 'GET', as)).status).toBe(404);
  });

  it('answers the registry token check: 404 for an unknown token, 400 without a credential', async () => {
    expect((await call(`${restauth}/verify`, 'POST', { ...as, json: { token: 'wharf_nope' } })).status).toBe(
      404,
    );
    expect(
      (
        await call(`${restauth}/verify`, 'POST', {
          ...as,
          json: { username: 'alice', password: 'nope-nope' },
        })
      ).status,
    ).toBe(404);
    expect((await call(`${restauth}/verify`, 'POST', { ...as, json: {} })).status).toBe(400);
  });

  it('answers 405 for a method a resource does not support', async () => {
    const response = await call(`${restauth}/users/`, 'DELETE', as);
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET, POST');
    expect((await call(`${restauth}/groups/staff/`, 'PUT', { ...as, json: {} })).status).toBe(405);
  });

  it('counts credential checks in /metrics', async () => {
    const metrics = await call(`${server.metricsUrl}/metrics`, 'GET');
    expect(metrics.text).toMatch(/wharf_authentications_total\{method="password",result="success"\} [1-9]/);
    expect(metrics.text).toMatch(/wharf_authentications_total\{method="password",result="failure"\} [1-9]/);
    expect(metrics.text).toMatch(/wharf_authentications_total\{method="service",result="failure"\} [1-9]/);
  });
});
