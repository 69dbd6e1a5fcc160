import { createHash } from 'node:crypto';
import type { InjectOptions } from 'light-my-request';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../support/wharf.ts';
import { basic, createUser, startOci } from './support.ts';

type Actor = 'anonymous' | 'reader' | 'writer' | 'admin' | 'other' | 'robot' | 'superuser';
const ACTORS: Actor[] = ['anonymous', 'reader', 'writer', 'admin', 'other', 'robot', 'superuser'];
const A = true;
const D = false;

/**
 * The expected allow/deny table: every API v1 and v2 operation × every kind of caller, on the private
 * repository `owner/app` where reader/writer/admin hold that role, the robot `owner+ci` holds write,
 * `other` holds nothing and `root` is a configured superuser. Robots are for the registry protocol:
 * API v1 does not accept them.
 */
const TABLE: Record<string, Record<Actor, boolean>> = {
  //                          anonymous reader writer admin other robot superuser
  'v2 pull manifest': row(D, A, A, A, D, A, A),
  'v2 pull blob': row(D, A, A, A, D, A, A),
  'v2 tag list': row(D, A, A, A, D, A, A),
  'v2 referrers': row(D, A, A, A, D, A, A),
  'v2 start upload': row(D, D, A, A, D, A, A),
  'v2 push manifest': row(D, D, A, A, D, A, A),
  'v2 delete tag': row(D, D, A, A, D, A, A),
  'v2 delete blob': row(D, D, A, A, D, A, A),
  'v2 catalog shows repo': row(D, A, A, A, D, A, A),
  'v2 push to a new repo in owner namespace': row(D, D, D, D, D, D, A),
  'v1 get repository': row(D, A, A, A, D, D, A),
  'v1 list tags': row(D, A, A, A, D, D, A),
  'v1 tag details': row(D, A, A, A, D, D, A),
  'v1 manifest details': row(D, A, A, A, D, D, A),
  'v1 manifest referrers': row(D, A, A, A, D, D, A),
  'v1 find repositories shows repo': row(D, A, A, A, D, D, A),
  'v1 update description': row(D, D, A, A, D, D, A),
  'v1 delete tag': row(D, D, A, A, D, D, A),
  'v1 change visibility': row(D, D, D, A, D, D, A),
  'v1 list user permissions': row(D, D, D, A, D, D, A),
  'v1 set user permission': row(D, D, D, A, D, D, A),
  'v1 delete user permission': row(D, D, D, A, D, D, A),
  'v1 create repository in owner namespace': row(D, D, D, D, D, D, A),
  'v1 list owner robots': row(D, D, D, D, D, D, A),
  'v1 superuser repository list': row(D, D, D, D, D, D, A),
  'v1 delete repository': row(D, D, D, A, D, D, A),
};

function row(...values: boolean[]): Record<Actor, boolean> {
  return Object.fromEntries(ACTORS.map((actor, index) => [actor, values[index]])) as Record<Actor, boolean>;
}

const PASSWORD = 'matrix-password';

describe('authorization matrix (API v1 and v2)', () => {
  let server: TestServer;
  let robotToken = '';
  const sessions = new Map<Actor, { cookie: string; csrf: string }>();
  const inject = (options: InjectOptions) => server.wharf.app.inject(options);

  const username = (actor: Actor) => (actor === 'superuser' ? 'root' : actor);

  async function signIn(user: string): Promise<{ cookie: string; csrf: string }> {
    const csrfResponse = await inject({ method: 'GET', url: '/csrf_token' });
    const first = String(csrfResponse.headers['set-cookie']).split(';')[0] as string;
    const csrf = csrfResponse.json().csrf_token;
    const signin = await inject({
      method: 'POST',
      url: '/api/v1/signin',
      headers: { cookie: first, 'x-csrf-token': csrf },
      payload: { username: user, password: PASSWORD },
    });
    expect(signin.statusCode).toBe(200);
    return { cookie: String(signin.headers['set-cookie']).split(';')[0] as string, csrf };
  }

  async function v2Token(actor: Actor, scope: string): Promise<Record<string, string>> {
    const credentials =
      actor === 'anonymous'
        ? null
        : actor === 'robot'
          ? basic('owner+ci', robotToken)
          : basic(username(actor), PASSWORD);
    const response = await inject({
      method: 'GET',
      url: `/v2/auth?service=wharf&scope=${encodeURIComponent(scope)}`,
      headers: credentials ? { authorization: credentials } : {},
    });
    expect(response.statusCode).toBe(200);
    return { authorization: `Bearer ${response.json().token}` };
  }

  function v1Headers(actor: Actor): Record<string, string> {
    if (actor === 'anonymous') return {};
    if (actor === 'robot') return { authorization: `Bearer ${robotToken}` };
    const session = sessions.get(actor);
    return session ? { cookie: session.cookie, 'x-csrf-token': session.csrf } : {};
  }

  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: '', size: 2 },
      layers: [],
    }),
  );
  const configBlob = Buffer.from('{}');
  const configDigest = `sha256:${createHash('sha256').update(configBlob).digest('hex')}`;
  const body = Buffer.from(manifest.toString().replace('"digest":""', `"digest":"${configDigest}"`));
  const manifestDigest = `sha256:${createHash('sha256').update(body).digest('hex')}`;

  beforeAll(async () => {
    server = await startOci({ registry: { superusers: ['root'] } }, { listen: false });
    for (const user of ['owner', 'reader', 'writer', 'admin', 'other', 'root'])
      await createUser(server, user, PASSWORD);
    const owner = await signIn('owner');
    const ownerHeaders = { cookie: owner.cookie, 'x-csrf-token': owner.csrf };
    const robot = await inject({
      method: 'PUT',
      url: '/api/v1/user/robots/ci',
      headers: ownerHeaders,
      payload: { description: 'CI' },
    });
    expect(robot.statusCode).toBe(201);
    expect(robot.json().name).toBe('owner+ci');
    robotToken = robot.json().token;
    for (const actor of ACTORS) {
      if (actor !== 'anonymous' && actor !== 'robot') sessions.set(actor, await signIn(username(actor)));
    }
  }, 120_000);

  afterAll(async () => server?.stop());

  /** Fresh repository `owner/<name>` with a config blob, a tagged manifest and the grants of the table. */
  async function prepare(name: string): Promise<void> {
    const owner = await signIn('owner');
    const headers = { cookie: owner.cookie, 'x-csrf-token': owner.csrf };
    const created = await inject({
      method: 'POST',
      url: '/api/v1/repository',
      headers,
      payload: { namespace: 'owner', repository: name, visibility: 'private', description: '' },
    });
    expect(created.statusCode).toBe(201);
    for (const [who, role] of [
      ['reader', 'read'],
      ['writer', 'write'],
      ['admin', 'admin'],
      ['owner+ci', 'write'],
    ]) {
      const grant = await inject({
        method: 'PUT',
        url: `/api/v1/repository/owner/${name}/permissions/user/${who}`,
        headers,
        payload: { role },
      });
      expect(grant.statusCode).toBe(200);
    }
    const auth = await v2Token('writer', `repository:owner/${name}:pull,push`);
    expect(
      (
        await inject({
          method: 'POST',
          url: `/v2/owner/${name}/blobs/uploads/?digest=${configDigest}`,
          headers: { ...auth, 'content-type': 'application/octet-stream' },
          payload: configBlob,
        })
      ).statusCode,
    ).toBe(201);
    expect(
      (
        await inject({
          method: 'PUT',
          url: `/v2/owner/${name}/manifests/v1`,
          headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
          payload: body,
        })
      ).statusCode,
    ).toBe(201);
    const keep = await inject({
      method: 'PUT',
      url: `/v2/owner/${name}/manifests/keep`,
      headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      payload: body,
    });
    expect(keep.statusCode).toBe(201);
  }

  const OPERATIONS: Record<string, (actor: Actor, repo: string) => Promise<number>> = {
    'v2 pull manifest': async (actor, repo) =>
      (
        await inject({
          method: 'GET',
          url: `/v2/${repo}/manifests/v1`,
          headers: await v2Token(actor, `repository:${repo}:pull`),
        })
      ).statusCode,
    'v2 pull blob': async (actor, repo) =>
      (
        await inject({
          method: 'GET',
          url: `/v2/${repo}/blobs/${configDigest}`,
          headers: await v2Token(actor, `repository:${repo}:pull`),
        })
      ).statusCode,
    'v2 tag list': async (actor, repo) =>
      (
        await inject({
          method: 'GET',
          url: `/v2/${repo}/tags/list`,
          headers: await v2Token(actor, `repository:${repo}:pull`),
        })
      ).statusCode,
    'v2 referrers': async (actor, repo) =>
      (
        await inject({
          method: 'GET',
          url: `/v2/${repo}/referrers/${manifestDigest}`,
          headers: await v2Token(actor, `repository:${repo}:pull`),
        })
      ).statusCode,
    'v2 start upload': async (actor, repo) =>
      (
        await inject({
          method: 'POST',
          url: `/v2/${repo}/blobs/uploads/`,
          headers: await v2Token(actor, `repository:${repo}:pull,push`),
        })
      ).statusCode,
    'v2 push manifest': async (actor, repo) =>
      (
        await inject({
          method: 'PUT',
          url: `/v2/${repo}/manifests/v2`,
          headers: {
            ...(await v2Token(actor, `repository:${repo}:pull,push`)),
            'content-type': 'application/vnd.oci.image.manifest.v1+json',
          },
          payload: body,
        })
      ).statusCode,
    'v2 delete tag': async (actor, repo) =>
      (
        await inject({
          method: 'DELETE',
          url: `/v2/${repo}/manifests/v1`,
          headers: await v2Token(actor, `repository:${repo}:delete`),
        })
      ).statusCode,
    'v2 delete blob': async (actor, repo) =>
      (
        await inject({
          method: 'DELETE',
          url: `/v2/${repo}/blobs/${configDigest}`,
          headers: await v2Token(actor, `repository:${repo}:delete`),
        })
      ).statusCode,
    'v2 catalog shows repo': async (actor, repo) => {
      const response = await inject({
        method: 'GET',
        url: '/v2/_catalog?n=1000',
        headers: await v2Token(actor, 'registry:catalog:*'),
      });
      if (response.statusCode !== 200) return response.statusCode;
      return response.json().repositories.includes(repo) ? 200 : 404;
    },
    'v2 push to a new repo in owner namespace': async (actor, repo) =>
      (
        await inject({
          method: 'POST',
          url: `/v2/${repo}-new-${actor}/blobs/uploads/`,
          headers: await v2Token(actor, `repository:${repo}-new-${actor}:pull,push`),
        })
      ).statusCode,
    'v1 get repository': async (actor, repo) =>
      (await inject({ method: 'GET', url: `/api/v1/repository/${repo}`, headers: v1Headers(actor) }))
        .statusCode,
    'v1 list tags': async (actor, repo) =>
      (await inject({ method: 'GET', url: `/api/v1/repository/${repo}/tag/`, headers: v1Headers(actor) }))
        .statusCode,
    'v1 tag details': async (actor, repo) =>
      (await inject({ method: 'GET', url: `/api/v1/repository/${repo}/tag/keep`, headers: v1Headers(actor) }))
        .statusCode,
    'v1 manifest details': async (actor, repo) =>
      (
        await inject({
          method: 'GET',
          url: `/api/v1/repository/${repo}/manifest/${manifestDigest}`,
          headers: v1Headers(actor),
        })
      ).statusCode,
    'v1 manifest referrers': async (actor, repo) =>
      (
        await inject({
          method: 'GET',
          url: `/api/v1/repository/${repo}/manifest/${manifestDigest}/referrers`,
          headers: v1Headers(actor),
        })
      ).statusCode,
    'v1 find repositories shows repo': async (actor, repo) => {
      const response = await inject({
        method: 'GET',
        url: `/api/v1/find/repositories?query=${encodeURIComponent(repo.split('/')[1] as string)}`,
        headers: v1Headers(actor),
      });
      if (response.statusCode !== 200) return response.statusCode;
      const names = response
        .json()
        .results.map((r: { namespace: { name: string }; name: string }) => `${r.namespace.name}/${r.name}`);
      return names.includes(repo) ? 200 : 404;
    },
    'v1 update description': async (actor, repo) =>
      (
        await inject({
          method: 'PUT',
          url: `/api/v1/repository/${repo}`,
          headers: v1Headers(actor),
          payload: { description: `by ${actor}` },
        })
      ).statusCode,
    'v1 delete tag': async (actor, repo) =>
      (
        await inject({
          method: 'DELETE',
          url: `/api/v1/repository/${repo}/tag/keep`,
          headers: v1Headers(actor),
        })
      ).statusCode,
    'v1 change visibility': async (actor, repo) =>
      (
        await inject({
          method: 'POST',
          url: `/api/v1/repository/${repo}/changevisibility`,
          headers: v1Headers(actor),
          payload: { visibility: 'private' },
        })
      ).statusCode,
    'v1 list user permissions': async (actor, repo) =>
      (
        await inject({
          method: 'GET',
          url: `/api/v1/repository/${repo}/permissions/user/`,
          headers: v1Headers(actor),
        })
      ).statusCode,
    'v1 set user permission': async (actor, repo) =>
      (
        await inject({
          method: 'PUT',
          url: `/api/v1/repository/${repo}/permissions/user/other`,
          headers: v1Headers(actor),
          payload: { role: 'read' },
        })
      ).statusCode,
    'v1 delete user permission': async (actor, repo) =>
      (
        await inject({
          method: 'DELETE',
          url: `/api/v1/repository/${repo}/permissions/user/reader`,
          headers: v1Headers(actor),
        })
      ).statusCode,
    'v1 create repository in owner namespace': async (actor) =>
      (
        await inject({
          method: 'POST',
          url: '/api/v1/repository',
          headers: v1Headers(actor),
          payload: { namespace: 'owner', repository: `made-by-${actor}`, visibility: 'private' },
        })
      ).statusCode,
    'v1 list owner robots': async (actor) =>
      (await inject({ method: 'GET', url: '/api/v1/organization/owner/robots', headers: v1Headers(actor) }))
        .statusCode,
    'v1 superuser repository list': async (actor) =>
      (await inject({ method: 'GET', url: '/api/v1/superuser/repositories/', headers: v1Headers(actor) }))
        .statusCode,
    'v1 delete repository': async (actor, repo) =>
      (await inject({ method: 'DELETE', url: `/api/v1/repository/${repo}`, headers: v1Headers(actor) }))
        .statusCode,
  };

  it('covers every operation of the table', () => {
    expect(Object.keys(OPERATIONS).sort()).toEqual(Object.keys(TABLE).sort());
  });

  for (const actor of ACTORS) {
    it(`enforces the table for ${actor}`, async () => {
      const repo = `owner/app-${actor}`;
      await prepare(`app-${actor}`);
      const observed: Record<string, string> = {};
      const expected: Record<string, string> = {};
      for (const [operation, run] of Object.entries(OPERATIONS)) {
        const status = await run(actor, repo);
        expect(status, `${operation} as ${actor}`).not.toBe(500);
        observed[operation] = status < 300 ? 'allow' : 'deny';
        expected[operation] = (TABLE[operation] as Record<Actor, boolean>)[actor] ? 'allow' : 'deny';
      }
      expect(observed).toEqual(expected);
    }, 120_000);
  }

  it('refuses HTTP Basic on API v1 and state changes without the CSRF token', async () => {
    const viaBasic = await inject({
      method: 'GET',
      url: '/api/v1/user/',
      headers: { authorization: basic('owner', PASSWORD) },
    });
    expect(viaBasic.statusCode).toBe(401);
    const session = sessions.get('admin') as { cookie: string };
    const noCsrf = await inject({
      method: 'PUT',
      url: '/api/v1/repository/owner/app-admin',
      headers: { cookie: session.cookie },
      payload: { description: 'x' },
    });
    expect(noCsrf.statusCode).toBe(403);
    const me = await inject({ method: 'GET', url: '/api/v1/user/', headers: { cookie: session.cookie } });
    expect(me.json()).toMatchObject({ username: 'admin', anonymous: false, super_user: false });
  });

  it('signs out: the session stops working', async () => {
    const session = await signIn('other');
    const out = await inject({
      method: 'POST',
      url: '/api/v1/signout',
      headers: { cookie: session.cookie, 'x-csrf-token': session.csrf },
    });
    expect(out.statusCode).toBe(200);
    expect(
      (await inject({ method: 'GET', url: '/api/v1/user/', headers: { cookie: session.cookie } })).statusCode,
    ).toBe(401);
  });
});
