import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, imageManifest } from '../oci/layout.ts';
import { startWharfProcess, type WharfProcess } from '../support/spawn-wharf.ts';

/**
 * Revocation reaches every credential: each kind of credential × each change to its user, refused
 * (or stripped of the rights it lost) within `registry.credentialCacheSeconds`, when the change is
 * made through the same process and through another process on the same store. `kept` marks what
 * a change does not touch (a password change leaves API tokens alone; a registry JWT runs out its
 * few minutes of life for a demotion, as docs/identity.md says).
 */
type Kind =
  | 'password'
  | 'api token'
  | 'robot token'
  | 'registry JWT from a password'
  | 'registry JWT from an API token'
  | 'refresh token from a password'
  | 'refresh token from an API token'
  | 'API v1 session';
type Event = 'disable' | 'delete' | 'demote' | 'revoke token' | 'change password';
const EVENTS: Event[] = ['disable', 'delete', 'demote', 'revoke token', 'change password'];
const R = 'refused';
const K = 'kept';

const TABLE: Record<Kind, Record<Event, typeof R | typeof K>> = {
  //                                   disable delete demote revoke-token change-password
  password: row(R, R, R, K, R),
  'api token': row(R, R, R, R, K),
  'robot token': row(R, R, K, R, K),
  'registry JWT from a password': row(R, R, K, K, R),
  'registry JWT from an API token': row(R, R, K, R, K),
  'refresh token from a password': row(R, R, R, K, R),
  'refresh token from an API token': row(R, R, R, R, K),
  'API v1 session': row(R, R, R, K, R),
};

function row(...values: (typeof R | typeof K)[]): Record<Event, typeof R | typeof K> {
  return Object.fromEntries(EVENTS.map((event, index) => [event, values[index]])) as Record<
    Event,
    typeof R | typeof K
  >;
}

const CACHE_SECONDS = 1;
const ADMIN_PASSWORD = 'admin-password-revocation';
const PASSWORD = 'user-password-revocation';

const basic = (user: string, secret: string) =>
  `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;

interface Held {
  user: string;
  /** The credential under test (a token, a JWT, a cookie…). */
  secret: string;
  csrf?: string;
  /** The user's unscoped API token, used to set things up and as the token another revocation hits. */
  management: { token: string; id: string };
  apiToken?: { token: string; id: string };
}

describe.each([
  ['one process', false],
  ['two processes on one store', true],
])('revocation reaches every credential (%s)', (_name, twoProcesses) => {
  let dataDir: string;
  let user: WharfProcess;
  let admin: WharfProcess;
  let counter = 0;
  /** The administrator's API token: checking it costs no bcrypt, unlike its password. */
  const ADMIN = { authorization: '' };

  const call = async (
    base: string,
    method: string,
    url: string,
    init: {
      headers?: Record<string, string>;
      json?: unknown;
      form?: Record<string, string>;
      body?: Buffer;
    } = {},
  ) => {
    const headers: Record<string, string> = { ...init.headers };
    let body: string | Buffer | undefined;
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    } else if (init.body) body = init.body;
    return fetch(`${base}${url}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  };

  async function v2Token(
    authorization: string,
    scope: string,
  ): Promise<{ status: number; actions: string[]; token?: string }> {
    const response = await call(
      user.url,
      'GET',
      `/v2/auth?service=wharf&scope=${encodeURIComponent(scope)}`,
      {
        headers: { authorization },
      },
    );
    if (response.status !== 200) return { status: response.status, actions: [] };
    const { token } = (await response.json()) as { token: string };
    const claims = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString());
    return { status: 200, actions: claims.access[0]?.actions ?? [], token };
  }

  async function refresh(refreshToken: string, scope: string) {
    const response = await call(user.url, 'POST', '/v2/auth', {
      form: { grant_type: 'refresh_token', service: 'wharf', refresh_token: refreshToken, scope },
    });
    if (response.status !== 200) return { status: response.status, actions: [] as string[] };
    const { access_token } = (await response.json()) as { access_token: string };
    const claims = JSON.parse(Buffer.from(access_token.split('.')[1] as string, 'base64url').toString());
    return { status: 200, actions: (claims.access[0]?.actions ?? []) as string[] };
  }

  async function newToken(name: string): Promise<{ token: string; id: string }> {
    const response = await call(user.url, 'POST', '/auth/api/v1/tokens', {
      headers: { authorization: basic(name, PASSWORD) },
      json: { name: `t${++counter}` },
    });
    expect(response.status).toBe(201);
    return (await response.json()) as { token: string; id: string };
  }

  /** Obtains the credential of this kind for a fresh administrator. */
  async function acquire(kind: Kind): Promise<Held> {
    const name = `u${++counter}`;
    expect(
      (
        await call(admin.url, 'POST', '/auth/api/v1/users', {
          headers: ADMIN,
          json: { username: name, password: PASSWORD, admin: true },
        })
      ).status,
    ).toBe(201);
    const management = await newToken(name);
    const held: Held = { user: name, secret: PASSWORD, management };
    switch (kind) {
      case 'password':
        return held;
      case 'api token':
        held.apiToken = await newToken(name);
        held.secret = held.apiToken.token;
        return held;
      case 'robot token': {
        const robot = await call(user.url, 'PUT', '/api/v1/user/robots/ci', {
          headers: { authorization: `Bearer ${management.token}` },
          json: {},
        });
        expect(robot.status).toBe(201);
        held.secret = ((await robot.json()) as { token: string }).token;
        return held;
      }
      case 'registry JWT from a password':
      case 'registry JWT from an API token': {
        if (!kind.endsWith('password')) held.apiToken = await newToken(name);
        const secret = held.apiToken?.token ?? PASSWORD;
        const jwt = await v2Token(basic(name, secret), 'repository:owner/public:pull');
        held.secret = jwt.token as string;
        return held;
      }
      case 'refresh token from a password':
      case 'refresh token from an API token': {
        if (!kind.endsWith('password')) held.apiToken = await newToken(name);
        const secret = held.apiToken?.token ?? PASSWORD;
        const response = await call(user.url, 'POST', '/v2/auth', {
          form: {
            grant_type: 'password',
            service: 'wharf',
            username: name,
            password: secret,
            access_type: 'offline',
          },
        });
        expect(response.status).toBe(200);
        held.secret = ((await response.json()) as { refresh_token: string }).refresh_token;
        return held;
      }
      case 'API v1 session': {
        const csrf = await call(user.url, 'GET', '/csrf_token');
        const cookie = String(csrf.headers.get('set-cookie')).split(';')[0] as string;
        const { csrf_token } = (await csrf.json()) as { csrf_token: string };
        const signin = await call(user.url, 'POST', '/api/v1/signin', {
          headers: { cookie, 'x-csrf-token': csrf_token },
          json: { username: name, password: PASSWORD },
        });
        expect(signin.status).toBe(200);
        held.secret = String(signin.headers.get('set-cookie')).split(';')[0] as string;
        held.csrf = csrf_token;
        return held;
      }
    }
  }

  /**
   * Whether the credential still does what it did. For `demote`, that is something only an
   * administrator may do; otherwise any use of the credential.
   */
  async function works(kind: Kind, held: Held, event: Event): Promise<boolean> {
    const admin = event === 'demote';
    switch (kind) {
      case 'password': {
        const answer = await v2Token(basic(held.user, PASSWORD), 'repository:owner/private:pull');
        return admin ? answer.actions.includes('pull') : answer.status === 200;
      }
      case 'api token': {
        const url = admin ? '/api/v1/superuser/repositories/' : '/api/v1/user/';
        return (
          (await call(user.url, 'GET', url, { headers: { authorization: `Bearer ${held.secret}` } }))
            .status === 200
        );
      }
      case 'robot token':
        return (
          (await v2Token(basic(`${held.user}+ci`, held.secret), 'repository:owner/public:pull')).status ===
          200
        );
      case 'registry JWT from a password':
      case 'registry JWT from an API token':
        return (
          (
            await call(user.url, 'GET', '/v2/owner/public/manifests/v1', {
              headers: { authorization: `Bearer ${held.secret}` },
            })
          ).status === 200
        );
      case 'refresh token from a password':
      case 'refresh token from an API token': {
        const answer = await refresh(held.secret, 'repository:owner/private:pull');
        return admin ? answer.actions.includes('pull') : answer.status === 200;
      }
      case 'API v1 session': {
        const headers = { cookie: held.secret, 'x-csrf-token': held.csrf as string };
        if (admin)
          return (await call(user.url, 'GET', '/api/v1/superuser/repositories/', { headers })).status === 200;
        // A state-changing call: sessions of disabled users used to keep these.
        const created = await call(user.url, 'POST', '/api/v1/repository', {
          headers,
          json: { namespace: held.user, repository: `r${++counter}`, visibility: 'private' },
        });
        return created.status === 201;
      }
    }
  }

  async function apply(event: Event, kind: Kind, held: Held): Promise<void> {
    const at = `/auth/api/v1/users/${held.user}`;
    let response: Response;
    switch (event) {
      case 'disable':
        response = await call(admin.url, 'PATCH', at, { headers: ADMIN, json: { disabled: true } });
        break;
      case 'delete':
        response = await call(admin.url, 'DELETE', at, { headers: ADMIN });
        break;
      case 'demote':
        response = await call(admin.url, 'PATCH', at, { headers: ADMIN, json: { admin: false } });
        break;
      case 'change password':
        response = await call(admin.url, 'PATCH', at, {
          headers: ADMIN,
          json: { password: 'a-new-password-77' },
        });
        break;
      case 'revoke token':
        if (kind === 'robot token') {
          response = await call(admin.url, 'POST', '/api/v1/user/robots/ci/regenerate', {
            headers: { authorization: `Bearer ${held.management.token}` },
          });
        } else {
          // The credential's own token when it stands on one; otherwise another token of the user.
          const id = held.apiToken?.id ?? held.management.id;
          response = await call(admin.url, 'DELETE', `${at}/tokens/${id}`, { headers: ADMIN });
        }
        break;
    }
    expect(response.status, `${event}: ${await response.clone().text()}`).toBeLessThan(300);
  }

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-revocation-'));
    const env = {
      WHARF_STORE: 'fs',
      WHARF_DATA_DIR: dataDir,
      WHARF_ADMIN_PASSWORD: ADMIN_PASSWORD,
      WHARF_CREDENTIAL_CACHE_SECONDS: String(CACHE_SECONDS),
    };
    user = await startWharfProcess(env);
    admin = twoProcesses ? await startWharfProcess(env) : user;
    const adminToken = await call(admin.url, 'POST', '/auth/api/v1/tokens', {
      headers: { authorization: basic('admin', ADMIN_PASSWORD) },
      json: { name: 'setup' },
    });
    ADMIN.authorization = `Bearer ${((await adminToken.json()) as { token: string }).token}`;
    // `owner/public` (a manifest anyone may pull) and `owner/private` (only owner and administrators).
    await call(admin.url, 'POST', '/auth/api/v1/users', {
      headers: ADMIN,
      json: { username: 'owner', password: PASSWORD },
    });
    const config = Buffer.from('{}');
    const digest = digestOf(config);
    const manifest = imageManifest(config);
    for (const repository of ['owner/public', 'owner/private']) {
      const jwt = await v2Token(basic('owner', PASSWORD), `repository:${repository}:pull,push`);
      const bearer = { authorization: `Bearer ${jwt.token}` };
      expect(
        (
          await call(user.url, 'POST', `/v2/${repository}/blobs/uploads/?digest=${digest}`, {
            headers: bearer,
            body: config,
          })
        ).status,
      ).toBe(201);
      expect(
        (
          await call(user.url, 'PUT', `/v2/${repository}/manifests/v1`, {
            headers: { ...bearer, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
            body: manifest,
          })
        ).status,
      ).toBe(201);
    }
    const ownerToken = (
      (await (
        await call(user.url, 'POST', '/auth/api/v1/tokens', {
          headers: { authorization: basic('owner', PASSWORD) },
          json: { name: 'setup' },
        })
      ).json()) as { token: string }
    ).token;
    expect(
      (
        await call(user.url, 'POST', '/api/v1/repository/owner/public/changevisibility', {
          headers: { authorization: `Bearer ${ownerToken}` },
          json: { visibility: 'public' },
        })
      ).status,
    ).toBe(200);
  }, 120_000);

  afterAll(async () => {
    await user?.stop();
    if (twoProcesses) await admin?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('matches the table for every credential kind and every change', async () => {
    const cells = (Object.keys(TABLE) as Kind[]).flatMap((kind) => EVENTS.map((event) => ({ kind, event })));
    const held = new Map<string, Held>();
    for (const { kind, event } of cells) {
      const credential = await acquire(kind);
      expect(await works(kind, credential, event), `${kind} works before ${event}`).toBe(true);
      held.set(`${kind}|${event}`, credential);
    }
    for (const { kind, event } of cells) await apply(event, kind, held.get(`${kind}|${event}`) as Held);
    // Every answer cached before the changes has expired now.
    await new Promise((resolve) => setTimeout(resolve, CACHE_SECONDS * 1000 + 200));
    const actual: Record<string, Record<string, string>> = {};
    for (const { kind, event } of cells) {
      actual[kind] ??= {};
      (actual[kind] as Record<string, string>)[event] = (await works(
        kind,
        held.get(`${kind}|${event}`) as Held,
        event,
      ))
        ? K
        : R;
    }
    expect(actual).toEqual(TABLE);
  }, 180_000);
});
