import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metadata, publishBody, simpleCrate } from '../cargo/crate-file.ts';
import { digestOf, imageManifest } from '../oci/layout.ts';
import { startServer, type TestServer } from '../support/wharf.ts';

/**
 * Every token scope × every operation on every surface, over real sockets. The account is an
 * administrator, who may do everything: a refusal here is the token's scopes and nothing else (the
 * account dimension is test/oci/authorization.test.ts's). The expected table is written out, not
 * derived from server/identity/scopes.ts, so that a change to the scope table shows up here.
 */
type Column =
  | 'unscoped'
  | 'publish-new'
  | 'publish-update'
  | 'yank'
  | 'change-owners'
  | 'download'
  | 'pull'
  | 'push'
  | 'delete'
  | 'repo-admin'
  | 'crate-other';
const COLUMNS: Column[] = [
  'unscoped',
  'publish-new',
  'publish-update',
  'yank',
  'change-owners',
  'download',
  'pull',
  'push',
  'delete',
  'repo-admin',
  'crate-other',
];
const Y = true;
const N = false;

const TABLE: Record<string, boolean[]> = {
  //                                   unscoped p-new p-upd yank owners dl  pull push del  admin crate:other*
  'cargo: read the private index': [Y, Y, Y, Y, Y, Y, N, N, N, N, Y],
  'cargo: search': [Y, Y, Y, Y, Y, Y, N, N, N, N, Y],
  'cargo: download a .crate': [Y, Y, Y, Y, Y, Y, N, N, N, N, Y],
  'cargo: publish a new crate': [Y, Y, N, N, N, N, N, N, N, N, N],
  'cargo: publish a new version': [Y, N, Y, N, N, N, N, N, N, N, N],
  'cargo: yank': [Y, N, N, Y, N, N, N, N, N, N, N],
  'cargo: add an owner': [Y, N, N, N, Y, N, N, N, N, N, N],
  'v2/auth: granted pull': [Y, N, N, N, N, N, Y, Y, N, N, N],
  'v2/auth: granted push': [Y, N, N, N, N, N, N, Y, N, N, N],
  'v2/auth: granted delete': [Y, N, N, N, N, N, N, N, Y, N, N],
  'v2/auth: granted the catalog': [Y, N, N, N, N, N, Y, Y, N, N, N],
  'v2: pull a manifest': [Y, N, N, N, N, N, Y, Y, N, N, N],
  'v2: push a blob': [Y, N, N, N, N, N, N, Y, N, N, N],
  'v2: delete a tag': [Y, N, N, N, N, N, N, N, Y, N, N],
  'api v1: read a repository': [Y, N, N, N, N, N, Y, Y, N, N, N],
  'api v1: delete a tag': [Y, N, N, N, N, N, N, N, Y, N, N],
  'api v1: change the description': [Y, N, N, N, N, N, N, N, N, Y, N],
  'api v1: change visibility': [Y, N, N, N, N, N, N, N, N, Y, N],
  'api v1: grant a permission': [Y, N, N, N, N, N, N, N, N, Y, N],
  'api v1: create a repository': [Y, N, N, N, N, N, N, N, N, Y, N],
  'api v1: create a robot': [Y, N, N, N, N, N, N, N, N, N, N],
  'api v1: superuser repository list': [Y, N, N, N, N, N, N, N, N, N, N],
  'api v1: who am I': [Y, Y, Y, Y, Y, Y, Y, Y, Y, Y, Y],
  'auth api: who am I': [Y, Y, Y, Y, Y, Y, Y, Y, Y, Y, Y],
  'auth api: list my tokens': [Y, Y, Y, Y, Y, Y, Y, Y, Y, Y, Y],
  'auth api: create a token': [Y, N, N, N, N, N, N, N, N, N, N],
  'auth api: list users': [Y, N, N, N, N, N, N, N, N, N, N],
  'ktra: create a user': [Y, N, N, N, N, N, N, N, N, N, N],
};

const PASSWORD = 'root-password-123';

describe('token scopes on every surface', () => {
  let server: TestServer;
  const tokens = new Map<Column, string>();
  let unique = 0;
  const fresh = (prefix: string) => `${prefix}${++unique}`;

  const call = (
    method: string,
    path: string,
    init: { headers?: Record<string, string>; body?: unknown } = {},
  ) => {
    const body = init.body;
    const isBuffer = Buffer.isBuffer(body);
    return fetch(`${server.url}${path}`, {
      method,
      headers: {
        ...(body !== undefined && !isBuffer ? { 'content-type': 'application/json' } : {}),
        ...init.headers,
      },
      ...(body !== undefined ? { body: isBuffer ? (body as Buffer) : JSON.stringify(body) } : {}),
    });
  };
  const basic = (user: string, secret: string) =>
    `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;
  const ROOT = { authorization: basic('root', PASSWORD) };

  async function publish(token: string, name: string, version: string): Promise<number> {
    const body = publishBody(metadata(name, version), await simpleCrate(name, version));
    return (await call('PUT', '/api/v1/crates/new', { headers: { authorization: token }, body })).status;
  }

  /** A registry JWT for these scopes, asked with the token as password (how `docker login` uses it). */
  async function registryToken(token: string, scope: string): Promise<{ token: string; actions: string[] }> {
    const response = await call('GET', `/v2/auth?service=wharf&scope=${encodeURIComponent(scope)}`, {
      headers: { authorization: basic('root', token) },
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { token: string };
    const claims = JSON.parse(Buffer.from(body.token.split('.')[1] as string, 'base64url').toString()) as {
      access: { actions: string[] }[];
    };
    return { token: body.token, actions: claims.access[0]?.actions ?? [] };
  }

  const config = Buffer.from('{}');
  const configDigest = digestOf(config);

  /** A repository `root/<name>` with a config blob and the tag `v1`, pushed with the password. */
  async function repository(name = `root/${fresh('repo')}`): Promise<string> {
    const jwt = (await (
      await call('GET', `/v2/auth?service=wharf&scope=repository:${name}:pull,push`, { headers: ROOT })
    ).json()) as { token: string };
    const bearer = { authorization: `Bearer ${jwt.token}` };
    expect(
      (
        await call('POST', `/v2/${name}/blobs/uploads/?digest=${configDigest}`, {
          headers: bearer,
          body: config,
        })
      ).status,
    ).toBe(201);
    const tagged = await call('PUT', `/v2/${name}/manifests/v1`, {
      headers: { ...bearer, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: imageManifest(config),
    });
    expect(tagged.status).toBe(201);
    return name;
  }

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const ok = (status: number) => status >= 200 && status < 300;

  const OPERATIONS: Record<string, (token: string) => Promise<boolean>> = {
    'cargo: read the private index': async (token) =>
      ok((await call('GET', '/index/config.json', { headers: { authorization: token } })).status),
    'cargo: search': async (token) =>
      ok((await call('GET', '/api/v1/crates?q=matrix', { headers: { authorization: token } })).status),
    'cargo: download a .crate': async (token) =>
      ok(
        (await call('GET', '/api/v1/crates/matrixbase/1.0.0/download', { headers: { authorization: token } }))
          .status,
      ),
    'cargo: publish a new crate': async (token) => ok(await publish(token, fresh('matrixnew'), '1.0.0')),
    'cargo: publish a new version': async (token) =>
      ok(await publish(token, 'matrixbase', `1.0.${++unique}`)),
    'cargo: yank': async (token) =>
      ok(
        (await call('DELETE', '/api/v1/crates/matrixbase/1.0.0/yank', { headers: { authorization: token } }))
          .status,
      ),
    'cargo: add an owner': async (token) =>
      ok(
        (
          await call('PUT', '/api/v1/crates/matrixbase/owners', {
            headers: { authorization: token },
            body: { users: ['root'] },
          })
        ).status,
      ),
    'v2/auth: granted pull': async (token) =>
      (await registryToken(token, 'repository:root/base:pull')).actions.includes('pull'),
    'v2/auth: granted push': async (token) =>
      (await registryToken(token, 'repository:root/base:push')).actions.includes('push'),
    'v2/auth: granted delete': async (token) =>
      (await registryToken(token, 'repository:root/base:delete')).actions.includes('delete'),
    'v2/auth: granted the catalog': async (token) =>
      (await registryToken(token, 'registry:catalog:*')).actions.includes('*'),
    'v2: pull a manifest': async (token) => {
      const jwt = await registryToken(token, 'repository:root/base:pull');
      return ok((await call('GET', '/v2/root/base/manifests/v1', { headers: bearer(jwt.token) })).status);
    },
    'v2: push a blob': async (token) => {
      const jwt = await registryToken(token, 'repository:root/base:pull,push');
      const blob = Buffer.from(fresh('blob'));
      const digest = digestOf(blob);
      return ok(
        (
          await call('POST', `/v2/root/base/blobs/uploads/?digest=${digest}`, {
            headers: bearer(jwt.token),
            body: blob,
          })
        ).status,
      );
    },
    'v2: delete a tag': async (token) => {
      const name = await repository();
      const jwt = await registryToken(token, `repository:${name}:delete`);
      return ok((await call('DELETE', `/v2/${name}/manifests/v1`, { headers: bearer(jwt.token) })).status);
    },
    'api v1: read a repository': async (token) =>
      ok((await call('GET', '/api/v1/repository/root/base', { headers: bearer(token) })).status),
    'api v1: delete a tag': async (token) => {
      const name = await repository();
      return ok(
        (await call('DELETE', `/api/v1/repository/${name}/tag/v1`, { headers: bearer(token) })).status,
      );
    },
    'api v1: change the description': async (token) =>
      ok(
        (
          await call('PUT', '/api/v1/repository/root/base', {
            headers: bearer(token),
            body: { description: 'x' },
          })
        ).status,
      ),
    'api v1: change visibility': async (token) =>
      ok(
        (
          await call('POST', '/api/v1/repository/root/base/changevisibility', {
            headers: bearer(token),
            body: { visibility: 'private' },
          })
        ).status,
      ),
    'api v1: grant a permission': async (token) =>
      ok(
        (
          await call('PUT', '/api/v1/repository/root/base/permissions/user/other', {
            headers: bearer(token),
            body: { role: 'admin' },
          })
        ).status,
      ),
    'api v1: create a repository': async (token) =>
      ok(
        (
          await call('POST', '/api/v1/repository', {
            headers: bearer(token),
            body: { namespace: 'root', repository: fresh('created'), visibility: 'private' },
          })
        ).status,
      ),
    'api v1: create a robot': async (token) =>
      ok(
        (await call('PUT', `/api/v1/user/robots/${fresh('bot')}`, { headers: bearer(token), body: {} }))
          .status,
      ),
    'api v1: superuser repository list': async (token) =>
      ok((await call('GET', '/api/v1/superuser/repositories/', { headers: bearer(token) })).status),
    'api v1: who am I': async (token) =>
      ok((await call('GET', '/api/v1/user/', { headers: bearer(token) })).status),
    'auth api: who am I': async (token) =>
      ok((await call('GET', '/auth/api/v1/me', { headers: bearer(token) })).status),
    'auth api: list my tokens': async (token) =>
      ok((await call('GET', '/auth/api/v1/tokens', { headers: bearer(token) })).status),
    'auth api: create a token': async (token) =>
      ok(
        (await call('POST', '/auth/api/v1/tokens', { headers: bearer(token), body: { name: fresh('t') } }))
          .status,
      ),
    'auth api: list users': async (token) =>
      ok((await call('GET', '/auth/api/v1/users', { headers: bearer(token) })).status),
    'ktra: create a user': async (token) =>
      ok(
        (
          await call('POST', `/ktra/api/v1/new_user/${fresh('person')}`, {
            headers: bearer(token),
            body: { password: 'a-good-password' },
          })
        ).status,
      ),
  };

  beforeAll(async () => {
    server = await startServer({
      logLevel: 'warn',
      auth: { adminPassword: PASSWORD, bcryptCost: 10 },
      registry: { superusers: ['root'], cargo: { authRequired: true } },
    });
    // The administrator `admin` creates `root` (an administrator too) and `other`.
    const admin = { authorization: basic('admin', PASSWORD) };
    for (const [name, isAdmin] of [
      ['root', true],
      ['other', false],
    ] as const) {
      const created = await call('POST', '/auth/api/v1/users', {
        headers: admin,
        body: { username: name, password: PASSWORD, admin: isAdmin },
      });
      expect(created.status).toBe(201);
    }
    for (const column of COLUMNS) {
      const body =
        column === 'unscoped'
          ? { name: column }
          : column === 'crate-other'
            ? { name: column, crateScopes: ['other*'] }
            : { name: column, scopes: [column] };
      const response = await call('POST', '/auth/api/v1/tokens', { headers: ROOT, body });
      expect(response.status, await response.clone().text()).toBe(201);
      tokens.set(column, ((await response.json()) as { token: string }).token);
    }
    const unscoped = tokens.get('unscoped') as string;
    expect(await publish(unscoped, 'matrixbase', '1.0.0')).toBe(200);
    // `root/base`: the repository most OCI operations act on.
    await repository('root/base');
  }, 120_000);
  afterAll(async () => server?.stop());

  for (const [operation, expected] of Object.entries(TABLE)) {
    it(operation, async () => {
      const actual: Record<string, boolean> = {};
      for (const column of COLUMNS)
        actual[column] = await OPERATIONS[operation]!(tokens.get(column) as string);
      expect(actual).toEqual(Object.fromEntries(COLUMNS.map((column, index) => [column, expected[index]])));
    });
  }

  it('covers every operation of the table', () => {
    expect(Object.keys(OPERATIONS).sort()).toEqual(Object.keys(TABLE).sort());
  });
});
