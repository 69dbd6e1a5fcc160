import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metadata, publishBody, simpleCrate } from '../cargo/crate-file.ts';
import {
  basic,
  type FuzzTarget,
  type RawRequest,
  type RawResponse,
  SERVICE,
  send,
  startFuzzTarget,
  storeChanges,
  storeSnapshot,
} from './harness.ts';

/**
 * Each finding of issue #10 §3 (an attacker's session got 500s from them, or input that should
 * have been refused went in), replayed over real sockets: refused the right way now, in the
 * surface's own format, and with nothing written to the store.
 */
let target: FuzzTarget;
let url: string;

beforeAll(async () => {
  target = await startFuzzTarget();
  url = target.server.url;
}, 120_000);
afterAll(() => target?.stop());

const JSON_TYPE = { 'content-type': 'application/json' };
const call = (raw: RawRequest) => send(url, raw);
const get = (path: string, headers: Record<string, string> = {}) => call({ method: 'GET', path, headers });
const body = (value: unknown) => Buffer.from(JSON.stringify(value));
const parsed = (response: RawResponse) => JSON.parse(response.body.toString()) as Record<string, unknown>;
const detail = (response: RawResponse) => (parsed(response).errors as { detail: string }[])[0]?.detail;
const ociCode = (response: RawResponse) => (parsed(response).errors as { code: string }[])[0]?.code;
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Runs requests that must all be refused, and checks that none of them wrote to the store. */
async function refusedWithoutTrace<T>(requests: () => Promise<T>): Promise<T> {
  const before = await storeSnapshot(target.server.store);
  const result = await requests();
  expect(storeChanges(before, await storeSnapshot(target.server.store))).toEqual([]);
  return result;
}

describe('cargo URLs: crate names and versions are checked before they become store keys', () => {
  it('answers 400 in cargo format for names and versions no crate can have (were 500)', async () => {
    const token = { authorization: target.fixtures.aliceToken };
    await refusedWithoutTrace(async () => {
      const cases: [RawRequest, RegExp][] = [
        [{ method: 'GET', path: '/api/v1/crates/a%20b/1.0.0/download', headers: {} }, /crate name "a b"/],
        [{ method: 'GET', path: '/api/v1/crates/..%2F..%2Fx/1.0.0/download', headers: {} }, /crate name/],
        [{ method: 'GET', path: '/api/v1/crates/demo/..%2F1/download', headers: {} }, /not a version/],
        [{ method: 'GET', path: '/api/v1/crates/a%2Fb/owners', headers: {} }, /crate name "a\/b"/],
        [
          { method: 'DELETE', path: '/api/v1/crates/demo/1.0.0%2F..%2Fx/yank', headers: token },
          /not a version/,
        ],
        [{ method: 'PUT', path: '/api/v1/crates/demo/%25/unyank', headers: token }, /not a version/],
        [
          {
            method: 'PUT',
            path: '/api/v1/crates/a%20c/owners',
            headers: { ...token, ...JSON_TYPE },
            body: body({ users: ['bob'] }),
          },
          /crate name "a c"/,
        ],
        [
          { method: 'GET', path: '/ktra/api/v1/mirror/a%20b/1.0.0/download', headers: {} },
          /crate name "a b"/,
        ],
      ];
      for (const [request, expected] of cases) {
        const response = await call(request);
        expect(response.status, `${request.method} ${request.path}`).toBe(400);
        expect(detail(response)).toMatch(expected);
      }
    });
  });
});

describe('paths are percent-decoded once', () => {
  it('/v2/ and API v1 take %25 as a literal % and refuse it as a name (was 500, anonymous)', async () => {
    await refusedWithoutTrace(async () => {
      const v2 = await get('/v2/%25/tags/list');
      expect(v2.status).toBe(400);
      expect(parsed(v2)).toEqual({
        errors: [{ code: 'NAME_INVALID', message: 'invalid repository name', detail: { name: '%' } }],
      });
      const manifest = await get('/v2/a%25b/manifests/latest');
      expect([manifest.status, ociCode(manifest)]).toEqual([400, 'NAME_INVALID']);
      const apiV1 = await get('/api/v1/repository/%25');
      expect(apiV1.status).toBe(404);
      expect(parsed(apiV1)).toMatchObject({ status: 404, error_type: 'not_found' });
      const tag = await call({
        method: 'DELETE',
        path: '/api/v1/repository/alice/app/tag/%25',
        headers: { authorization: `Bearer ${target.fixtures.aliceToken}` },
      });
      expect(tag.status).toBe(400);
      expect(parsed(tag)).toMatchObject({ error_type: 'invalid_request', error_message: 'invalid tag name' });
    });
  });
});

describe('API v1 names are checked where they are parsed', () => {
  const alice = () => ({ authorization: `Bearer ${target.fixtures.aliceToken}` });

  it('refuses a tag name that is not a tag (`..` reached the store key check: 500)', async () => {
    await refusedWithoutTrace(async () => {
      for (const tag of ['%2E%2E', '.hidden', 'a%3Ab', 'x'.repeat(129)]) {
        const response = await call({
          method: 'DELETE',
          path: `/api/v1/repository/alice/app/tag/${tag}`,
          headers: alice(),
        });
        expect(response.status, tag).toBe(400);
        expect(parsed(response).error_type).toBe('invalid_request');
      }
    });
    // Real tags are still listed.
    expect((await get('/api/v1/repository/alice/app/tag/', alice())).status).toBe(200);
  });

  it('refuses grantee and organization names no account can have', async () => {
    await refusedWithoutTrace(async () => {
      for (const who of ['..%2B..', 'a%20b', '%2E%2E', 'x%2B..']) {
        const response = await call({
          method: 'PUT',
          path: `/api/v1/repository/alice/app/permissions/user/${who}`,
          headers: { ...alice(), ...JSON_TYPE },
          body: body({ role: 'read' }),
        });
        expect(response.status, who).toBe(400);
        expect(parsed(response).error_type).toBe('invalid_request');
      }
      const admin = { authorization: `Bearer ${target.fixtures.adminToken}`, ...JSON_TYPE };
      const robot = await call({
        method: 'PUT',
        path: '/api/v1/organization/%2E%2E/robots/builder',
        headers: admin,
        body: body({ description: 'x' }),
      });
      expect(robot.status).toBe(400);
      expect(parsed(robot).error_message).toBe('invalid organization name');
    });
  });
});

describe("Fastify's own refusals are answered in each surface's format", () => {
  it('API v1: invalid JSON, an empty JSON body, 413 and 415 (all were 500)', async () => {
    const alice = { authorization: `Bearer ${target.fixtures.aliceToken}` };
    await refusedWithoutTrace(async () => {
      const cases: [RawRequest, number][] = [
        [
          {
            method: 'POST',
            path: '/api/v1/repository',
            headers: { ...alice, ...JSON_TYPE },
            body: Buffer.from('{bad'),
          },
          400,
        ],
        [
          {
            method: 'POST',
            path: '/api/v1/repository',
            headers: { ...alice, ...JSON_TYPE },
            body: Buffer.alloc(0),
          },
          400,
        ],
        [
          {
            method: 'POST',
            path: '/api/v1/repository',
            headers: { ...alice, ...JSON_TYPE },
            body: Buffer.alloc(65 * 1024, 0x20),
          },
          413,
        ],
        [
          {
            method: 'POST',
            path: '/api/v1/repository',
            headers: { ...alice, 'content-type': 'text/foo' },
            body: Buffer.from('x'),
          },
          415,
        ],
        [
          { method: 'POST', path: '/api/v1/signin', headers: JSON_TYPE, body: Buffer.from('{"username":') },
          400,
        ],
      ];
      for (const [request, status] of cases) {
        const response = await call(request);
        expect(response.status, `${request.path} ${request.headers['content-type']}`).toBe(status);
        expect(parsed(response)).toMatchObject({ status, error_type: 'invalid_request' });
      }
    });
  });

  it('RestAuth, the token endpoint, /v2/ and unknown routes answer in their own formats', async () => {
    const service = { authorization: basic(SERVICE.name, SERVICE.password) };
    await refusedWithoutTrace(async () => {
      const restauth = await call({
        method: 'POST',
        path: '/restauth/users',
        headers: { ...service, ...JSON_TYPE },
        body: Buffer.from('{"username":'),
      });
      expect([restauth.status, typeof parsed(restauth).error]).toEqual([400, 'string']);
      const grant = await call({
        method: 'POST',
        path: '/v2/auth',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from('grant_type=magic'),
      });
      expect([grant.status, parsed(grant)]).toEqual([400, { error: 'invalid_request' }]);
      const badUrl = await get('/v2/alice/app/manifests/%zz');
      expect([badUrl.status, ociCode(badUrl)]).toEqual([400, 'NAME_INVALID']);
      const restauthBadUrl = await get('/restauth/users/%zz', service);
      expect([restauthBadUrl.status, typeof parsed(restauthBadUrl).error]).toEqual([400, 'string']);
      const missing = await get('/api/v1/nowhere');
      expect(parsed(missing)).toMatchObject({ status: 404, error_type: 'not_found' });
      const missingCargo = await get('/api/v1/crates/demo/1.0.0/nowhere');
      expect([missingCargo.status, typeof detail(missingCargo)]).toEqual([404, 'string']);
      // The body of a request no route takes is parsed at the root: its refusals, too, are
      // answered in the path's format.
      for (const [type, status] of [
        ['a/b/c', 415],
        ['application/json', 400],
      ] as const) {
        const unrouted = await call({
          method: 'PUT',
          path: '/api/v1/crates/x//unyank',
          headers: { 'content-type': type },
          body: Buffer.from('x'),
        });
        expect([unrouted.status, typeof detail(unrouted)], type).toEqual([status, 'string']);
        const unroutedV1 = await call({
          method: 'PUT',
          path: '/api/v1/nowhere',
          headers: { 'content-type': type },
          body: Buffer.from('x'),
        });
        expect(parsed(unroutedV1), type).toMatchObject({ status, error_type: 'invalid_request' });
      }
    });
  });
});

describe('/auth/api/v1/tokens', () => {
  it('refuses an out-of-range expiresInSeconds with 400 and creates no token (was 500)', async () => {
    const alice = { authorization: target.fixtures.aliceToken, ...JSON_TYPE };
    await refusedWithoutTrace(async () => {
      for (const expiresInSeconds of [1e300, 2 ** 53 - 1, 100 * 365 * 24 * 3600 + 1]) {
        const response = await call({
          method: 'POST',
          path: '/auth/api/v1/tokens',
          headers: alice,
          body: body({ name: 'forever', expiresInSeconds }),
        });
        expect(response.status, String(expiresInSeconds)).toBe(400);
        expect(detail(response)).toMatch(/expiresInSeconds/);
      }
    });
    const tenYears = await call({
      method: 'POST',
      path: '/auth/api/v1/tokens',
      headers: alice,
      body: body({ name: 'ten years', expiresInSeconds: 10 * 365 * 24 * 3600 }),
    });
    expect(tenYears.status).toBe(201);
  });
});

describe('publish checks are exactly as strict as crates.io', () => {
  const publish = async (meta: unknown, name: string, version: string) =>
    call({
      method: 'PUT',
      path: '/api/v1/crates/new',
      headers: { authorization: target.fixtures.aliceToken },
      body: publishBody(meta, await simpleCrate(name, version)),
    });
  const dependency = (fields: Record<string, unknown>) => ({
    features: [],
    optional: false,
    default_features: true,
    target: null,
    kind: 'normal',
    registry: null,
    explicit_name_in_toml: null,
    ...fields,
  });
  const indexLine = async (path: string) =>
    JSON.parse((await get(path)).body.toString().trim().split('\n').at(-1) as string);

  it('publishes dependencies renamed to core, alloc and std, as memchr, cfg-if and hashbrown do', async () => {
    const deps = [
      dependency({
        name: 'rustc-std-workspace-core',
        version_req: '^1.0.0',
        explicit_name_in_toml: 'core',
        optional: true,
      }),
      dependency({
        name: 'rustc-std-workspace-alloc',
        version_req: '^1.0',
        explicit_name_in_toml: 'alloc',
        optional: true,
      }),
      dependency({
        name: 'rustc-std-workspace-std',
        version_req: '^1.0',
        explicit_name_in_toml: 'std',
        optional: true,
      }),
      dependency({ name: 'compiler_builtins', version_req: '^0.1.2', explicit_name_in_toml: '_builtins' }),
    ];
    const features = { 'rustc-dep-of-std': ['core', 'alloc', 'dep:std', '_builtins/mem'] };
    const response = await publish(metadata('uses-core', '0.1.0', { deps, features }), 'uses-core', '0.1.0');
    expect(response.status, response.body.toString()).toBe(200);
    const line = await indexLine('/index/us/es/uses-core');
    expect(line.deps.map((d: { name: string; package?: string }) => [d.name, d.package])).toEqual([
      ['core', 'rustc-std-workspace-core'],
      ['alloc', 'rustc-std-workspace-alloc'],
      ['std', 'rustc-std-workspace-std'],
      ['_builtins', 'compiler_builtins'],
    ]);
    // A crate of its own is still not published under a reserved name.
    const reserved = await publish(metadata('core', '0.1.0'), 'core', '0.1.0');
    expect([reserved.status, detail(reserved)]).toEqual([
      400,
      'invalid crate name: the crate name "core" is reserved',
    ]);
  });

  it('refuses dependency requirements that are not semver requirements (went into the index)', async () => {
    await refusedWithoutTrace(async () => {
      for (const req of [
        '',
        'latest',
        '>=1.0 <2.0',
        '1.2.3.4',
        '01.0',
        '^',
        '1.*.3',
        '1 || 2',
        '*',
        'x',
        '1.0,',
        '=1.0.0-01',
      ]) {
        const meta = metadata('bad-req', '0.1.0', {
          deps: [dependency({ name: 'serde', version_req: req })],
        });
        const response = await publish(meta, 'bad-req', '0.1.0');
        expect(response.status, JSON.stringify(req)).toBe(400);
        expect(detail(response)).toMatch(/dependency `serde`: /);
      }
    });
    expect((await get('/index/ba/d-/bad-req')).status).toBe(404);
    // The requirement grammar cargo writes is accepted, spaces and all.
    const good = ['>= 1.2, < 2', '~1', '=1.0.0-alpha.1', '1.*', '1.2.*', '^0.0.3', '<=1.5.0+build'];
    const meta = metadata('good-req', '0.1.0', {
      deps: good.map((req, i) => dependency({ name: `dep${i}`, version_req: req })),
    });
    const response = await publish(meta, 'good-req', '0.1.0');
    expect(response.status, response.body.toString()).toBe(200);
    expect((await indexLine('/index/go/od/good-req')).deps.map((d: { req: string }) => d.req)).toEqual(good);
  });

  it('keeps a feature named __proto__ and takes Unicode feature names, as crates.io does', async () => {
    const features = JSON.parse('{"__proto__": [], "café": ["__proto__"], "default": ["café"]}');
    const response = await publish(metadata('odd-features', '0.1.0', { features }), 'odd-features', '0.1.0');
    expect(response.status, response.body.toString()).toBe(200);
    const line = await indexLine('/index/od/d-/odd-features');
    expect(Object.keys(line.features).sort()).toEqual(['__proto__', 'café', 'default']);
    const bad = await publish(
      metadata('bad-feature', '0.1.0', { features: { default: ['dep:'] } }),
      'bad-feature',
      '0.1.0',
    );
    expect([bad.status, detail(bad)]).toEqual([400, expect.stringMatching(/invalid feature "dep:"/)]);
  });
});

describe('OCI content is held to what it declares', () => {
  const bearer = () => ({ authorization: `Bearer ${target.fixtures.aliceJwt}` });

  it('refuses a manifest whose descriptor size disagrees with the stored blob: MANIFEST_INVALID', async () => {
    const [config, layer] = target.fixtures.image.blobs as [string, string];
    const configSize = (
      await call({ method: 'HEAD', path: `/v2/alice/app/blobs/${config}`, headers: bearer() })
    ).headers['content-length'];
    const manifest = (layerSize: unknown) =>
      body({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: config,
          size: Number(configSize),
        },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size: layerSize }],
      });
    const put = (bytes: Buffer) =>
      call({
        method: 'PUT',
        path: `/v2/alice/app/manifests/${sha256(bytes)}`,
        headers: { ...bearer(), 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
        body: bytes,
      });
    await refusedWithoutTrace(async () => {
      for (const size of [1, 10_000, -1, 1.5, '25', undefined]) {
        const response = await put(manifest(size));
        expect(response.status, String(size)).toBe(400);
        expect(ociCode(response)).toBe('MANIFEST_INVALID');
      }
    });
    const wrong = await put(manifest(1));
    expect(parsed(wrong).errors).toEqual([
      expect.objectContaining({
        detail: { digest: layer, size: 1, stored: 'a layer of the fuzz image'.length },
      }),
    ]);
    expect((await put(manifest('a layer of the fuzz image'.length))).status).toBe(201);
  });

  it('refuses an index whose child manifest size disagrees with the stored manifest', async () => {
    const { manifest } = target.fixtures.image;
    const size = (
      await call({ method: 'HEAD', path: `/v2/alice/app/manifests/${manifest}`, headers: bearer() })
    ).headers['content-length'];
    const index = (childSize: number) =>
      body({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifest, size: childSize },
        ],
      });
    const put = (bytes: Buffer) =>
      call({
        method: 'PUT',
        path: '/v2/alice/app/manifests/multi',
        headers: { ...bearer(), 'content-type': 'application/vnd.oci.image.index.v1+json' },
        body: bytes,
      });
    const wrong = await refusedWithoutTrace(() => put(index(Number(size) + 1)));
    expect([wrong.status, ociCode(wrong)]).toEqual([400, 'MANIFEST_INVALID']);
    expect((await put(index(Number(size)))).status).toBe(201);
  });

  it('refuses chunks whose Content-Range disagrees with the body, and records nothing of them', async () => {
    const start = await call({ method: 'POST', path: '/v2/alice/app/blobs/uploads/', headers: bearer() });
    expect(start.status).toBe(202);
    const location = String(start.headers.location);
    const chunk = Buffer.from('01234');
    const patch = (range: string, chunked: boolean) =>
      call({
        method: 'PATCH',
        path: location,
        headers: { ...bearer(), 'content-type': 'application/octet-stream', 'content-range': range },
        body: chunk,
        chunked,
      });
    await refusedWithoutTrace(async () => {
      const longer = await patch('0-9', false);
      expect([longer.status, ociCode(longer)]).toEqual([400, 'SIZE_INVALID']);
      const shorter = await patch('0-1', false);
      expect([shorter.status, ociCode(shorter)]).toEqual([400, 'SIZE_INVALID']);
      // Without a Content-Length the body is held to the range as it streams.
      const streamedShort = await patch('0-9', true);
      expect([streamedShort.status, ociCode(streamedShort)]).toEqual([400, 'SIZE_INVALID']);
      const streamedLong = await patch('0-2', true);
      expect([streamedLong.status, ociCode(streamedLong)]).toEqual([400, 'SIZE_INVALID']);
      const backwards = await patch('4-0', false);
      expect(backwards.status).toBe(416);
    });
    const status = await call({ method: 'GET', path: location, headers: bearer() });
    expect([status.status, status.headers.range]).toEqual([204, '0-0']);
    const good = await patch('0-4', true);
    expect([good.status, good.headers.range]).toEqual([202, '0-4']);
    const done = await call({
      method: 'PUT',
      path: `${location}?digest=${sha256(chunk)}`,
      headers: { ...bearer(), 'content-range': '5-9', 'content-type': 'application/octet-stream' },
      body: Buffer.from('56'),
    });
    expect([done.status, ociCode(done)]).toEqual([400, 'SIZE_INVALID']);
  });
});

describe('names people choose never resolve through Object.prototype', () => {
  const service = { authorization: basic(SERVICE.name, SERVICE.password), ...JSON_TYPE };

  it('RestAuth properties named constructor, toString and __proto__ do not exist until created', async () => {
    for (const prop of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const missing = await get(`/restauth/users/bob/props/${prop}`, service);
      expect(missing.status, prop).toBe(404);
      expect(missing.headers['resource-type']).toBe('property');
    }
    const created = await call({
      method: 'POST',
      path: '/restauth/users/bob/props',
      headers: service,
      body: body({ prop: 'constructor', value: 'a builder' }),
    });
    expect(created.status).toBe(201);
    const put = await call({
      method: 'PUT',
      path: '/restauth/users/bob/props/__proto__',
      headers: service,
      body: body({ value: 'proto' }),
    });
    expect(put.status).toBe(201);
    const form = await call({
      method: 'PUT',
      path: '/restauth/users/bob/props',
      headers: { ...service, 'content-type': 'application/x-www-form-urlencoded' },
      body: Buffer.from('toString=form'),
    });
    expect(form.status).toBe(200);
    const all = parsed(await get('/restauth/users/bob/props', service));
    expect(Object.hasOwn(all, '__proto__')).toBe(true);
    expect([all.constructor, Object.getOwnPropertyDescriptor(all, '__proto__')?.value, all.toString]).toEqual(
      ['a builder', 'proto', 'form'],
    );
    expect((await get('/restauth/users/bob/props/constructor', service)).body.toString()).toBe('"a builder"');
  });

  it('a group named constructor does not exist until created, and __proto__ is no group (was 500)', async () => {
    expect((await get('/restauth/groups/constructor', service)).status).toBe(404);
    expect((await get('/restauth/groups/constructor/users', service)).status).toBe(404);
    const withGroup = await call({
      method: 'POST',
      path: '/restauth/users',
      headers: service,
      body: body({ username: 'dave', password: 'dave-password-long', groups: ['__proto__'] }),
    });
    expect(withGroup.status).toBe(404);
    expect(withGroup.headers['resource-type']).toBe('group');
    const create = await call({
      method: 'POST',
      path: '/restauth/groups',
      headers: service,
      body: body({ group: 'constructor', users: ['bob'] }),
    });
    expect(create.status).toBe(201);
    expect(JSON.parse((await get('/restauth/groups/constructor/users', service)).body.toString())).toEqual([
      'bob',
    ]);
  });

  it('API v1 grants and OCI token actions named after Object.prototype members are not there', async () => {
    const alice = { authorization: `Bearer ${target.fixtures.aliceToken}` };
    const grant = await get('/api/v1/repository/alice/app/permissions/user/constructor', alice);
    expect(grant.status).toBe(404);
    const token = await get(
      `/v2/auth?service=wharf&scope=${encodeURIComponent('repository:alice/protonew:pull,constructor,toString')}`,
      { authorization: basic('alice', target.fixtures.aliceToken) },
    );
    const claims = JSON.parse(
      Buffer.from(String(parsed(token).token).split('.')[1] as string, 'base64url').toString(),
    ) as { access: { actions: string[] }[] };
    expect(claims.access[0]?.actions).toEqual(['pull']);
  });
});

describe('nothing left behind', () => {
  it('the server still answers /healthz and /readyz', async () => {
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
  });
});
