import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessPolicy } from '../../server/access/policy.ts';
import type { Principal } from '../../server/identity/principal.ts';
import { indexPath } from '../../server/registry/cargo/paths.ts';
import { scrape } from '../support/metrics.ts';
import { makeCrate, metadata, publishBody, simpleCrate } from './crate-file.ts';
import { allKeys, startRegistry, type TestRegistry } from './support.ts';

let registry: TestRegistry;
let alice: string;
let bob: string;

beforeAll(async () => {
  registry = await startRegistry({ cargo: { maxCrateBytes: 64 * 1024 }, listen: false });
  await registry.accounts.addUser('alice', { groups: ['devs'] });
  await registry.accounts.addUser('bob');
  alice = await registry.accounts.token('alice');
  bob = await registry.accounts.token('bob');
});
afterAll(() => registry.close());

async function publish(token: string, meta: unknown, crate: Buffer) {
  return registry.app.inject({
    method: 'PUT',
    url: '/api/v1/crates/new',
    headers: { authorization: token },
    payload: publishBody(meta, crate),
  });
}
const detail = (res: { json(): unknown }) =>
  (res.json() as { errors: { detail: string }[] }).errors[0]?.detail;

describe('index layout', () => {
  it('follows cargo paths', () => {
    expect(indexPath('a')).toBe('1/a');
    expect(indexPath('ab')).toBe('2/ab');
    expect(indexPath('abc')).toBe('3/a/abc');
    expect(indexPath('Serde')).toBe('se/rd/serde');
  });
});

describe('publish and the sparse index', () => {
  it('publishes, then serves the index line with ETag, 304 and no-cache', async () => {
    const meta = metadata('index-demo', '0.1.0', {
      deps: [
        {
          name: 'base',
          version_req: '^1',
          features: ['x'],
          optional: true,
          default_features: false,
          target: null,
          kind: 'normal',
          registry: null,
          explicit_name_in_toml: 'renamed',
        },
        {
          name: 'serde',
          version_req: '^1',
          features: [],
          optional: false,
          default_features: true,
          target: 'cfg(unix)',
          kind: 'build',
          registry: 'https://github.com/rust-lang/crates.io-index',
        },
      ],
      features: { default: ['a'], a: [], b: ['dep:renamed'], c: ['renamed?/x'] },
      rust_version: '1.70',
      links: 'z',
    });
    const res = await publish(alice, meta, await simpleCrate('index-demo', '0.1.0'));
    expect(res.statusCode, res.body).toBe(200);
    const index = await registry.app.inject({ url: '/index/in/de/index-demo' });
    expect(index.statusCode).toBe(200);
    expect(index.headers['cache-control']).toBe('no-cache');
    const line = JSON.parse(index.body.trim());
    expect(line).toMatchObject({
      name: 'index-demo',
      vers: '0.1.0',
      features: { default: ['a'], a: [] },
      features2: { b: ['dep:renamed'], c: ['renamed?/x'] },
      v: 2,
      yanked: false,
      links: 'z',
      rust_version: '1.70',
    });
    expect(line.cksum).toMatch(/^[0-9a-f]{64}$/);
    expect(line.pubtime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(line.deps[0]).toEqual({
      name: 'renamed',
      package: 'base',
      req: '^1',
      features: ['x'],
      optional: true,
      default_features: false,
      target: null,
      kind: 'normal',
    });
    expect(line.deps[1]).toMatchObject({
      name: 'serde',
      kind: 'build',
      target: 'cfg(unix)',
      registry: 'https://github.com/rust-lang/crates.io-index',
    });
    const etag = index.headers.etag as string;
    const again = await registry.app.inject({
      url: '/index/in/de/index-demo',
      headers: { 'if-none-match': etag },
    });
    expect(again.statusCode).toBe(304);
    // A new version changes the ETag at once: cargo sees it on its next revalidation.
    expect(
      (await publish(alice, metadata('index-demo', '0.2.0'), await simpleCrate('index-demo', '0.2.0')))
        .statusCode,
    ).toBe(200);
    const after = await registry.app.inject({
      url: '/index/in/de/index-demo',
      headers: { 'if-none-match': etag },
    });
    expect(after.statusCode).toBe(200);
    expect(after.body.trim().split('\n')).toHaveLength(2);
    const dl = await registry.app.inject({ url: '/api/v1/crates/index-demo/0.1.0/download' });
    expect(dl.statusCode).toBe(200);
    // the bytes served are the bytes whose SHA-256 is in the index line
    const { createHash } = await import('node:crypto');
    expect(createHash('sha256').update(dl.rawPayload).digest('hex')).toBe(line.cksum);
  });

  it('serves config.json with dl and api', async () => {
    const res = await registry.app.inject({
      url: '/index/config.json',
      headers: { host: 'reg.example:8080' },
    });
    expect(res.json()).toEqual({
      dl: 'http://reg.example:8080/api/v1/crates',
      api: 'http://reg.example:8080',
    });
  });

  it('answers 404 for unknown crates and bad paths', async () => {
    expect((await registry.app.inject({ url: '/index/no/pe/nope' })).statusCode).toBe(404);
    expect((await registry.app.inject({ url: '/index/xx/yy/nope' })).statusCode).toBe(404);
  });
});

describe('bad publishes leave no trace', () => {
  const cases: [string, () => Promise<{ token?: string; meta: unknown; crate: Buffer }>, RegExp, number][] = [
    [
      'bad name',
      async () => ({ meta: metadata('9lives', '1.0.0'), crate: await simpleCrate('9lives', '1.0.0') }),
      /must start with an ASCII letter/,
      400,
    ],
    [
      'reserved name',
      async () => ({ meta: metadata('nul', '1.0.0'), crate: await simpleCrate('nul', '1.0.0') }),
      /reserved/,
      400,
    ],
    [
      'bad semver',
      async () => ({ meta: metadata('goodname', '1.0'), crate: await simpleCrate('goodname', '1.0') }),
      /Semantic Versioning/,
      400,
    ],
    [
      'corrupt tarball',
      async () => ({ meta: metadata('goodname', '1.0.0'), crate: Buffer.from('not a tarball at all') }),
      /not a gzip-compressed tar/,
      400,
    ],
    [
      'gzip but not tar',
      async () => ({
        meta: metadata('goodname', '1.0.0'),
        crate: (await import('node:zlib')).gzipSync(Buffer.alloc(1000, 7)),
      }),
      /not a valid tar|no `goodname-1.0.0\/Cargo.toml`/,
      400,
    ],
    [
      'path escape',
      async () => ({
        meta: metadata('goodname', '1.0.0'),
        crate: await makeCrate([
          { name: 'goodname-1.0.0/Cargo.toml', body: '' },
          { name: 'goodname-1.0.0/../../etc/passwd', body: 'x' },
        ]),
      }),
      /escapes the package folder/,
      400,
    ],
    [
      'symlink escape',
      async () => ({
        meta: metadata('goodname', '1.0.0'),
        crate: await makeCrate([
          { name: 'goodname-1.0.0/Cargo.toml', body: '' },
          { name: 'goodname-1.0.0/l', type: 'symlink', linkname: '../../x' },
        ]),
      }),
      /is a symbolic link to "..\/..\/x"/,
      400,
    ],
    [
      'wrong folder',
      async () => ({ meta: metadata('goodname', '1.0.0'), crate: await simpleCrate('othername', '1.0.0') }),
      /outside the `goodname-1.0.0\/` folder/,
      400,
    ],
    [
      'oversize',
      async () => ({
        meta: metadata('goodname', '1.0.0'),
        crate: Buffer.concat([
          await simpleCrate('goodname', '1.0.0'),
          (await import('node:crypto')).randomBytes(70 * 1024),
        ]),
      }),
      /larger than this registry's limit of 0\.1 MiB/,
      413,
    ],
    [
      'no token',
      async () => ({
        token: '',
        meta: metadata('goodname', '1.0.0'),
        crate: await simpleCrate('goodname', '1.0.0'),
      }),
      /needs a token/,
      401,
    ],
    [
      'invalid token',
      async () => ({
        token: 'garbage',
        meta: metadata('goodname', '1.0.0'),
        crate: await simpleCrate('goodname', '1.0.0'),
      }),
      /token is invalid/,
      403,
    ],
    [
      'publish-update scope on a new crate',
      async () => ({
        token: await registry.accounts.token('alice', ['publish-update']),
        meta: metadata('goodname', '1.0.0'),
        crate: await simpleCrate('goodname', '1.0.0'),
      }),
      /lacks the `publish-new` scope/,
      403,
    ],
  ];
  for (const [title, make, message, status] of cases) {
    it(title, async () => {
      const before = await allKeys(registry.store);
      const { token = alice, meta, crate } = await make();
      const res = await publish(token, meta, crate);
      expect(res.statusCode, res.body).toBe(status);
      expect(detail(res)).toMatch(message);
      expect(await allKeys(registry.store)).toEqual(before);
    });
  }

  it('refuses a second publish of a version, also with other build metadata, and name collisions', async () => {
    expect(
      (await publish(alice, metadata('dupe_me', '1.0.0+a'), await simpleCrate('dupe_me', '1.0.0+a')))
        .statusCode,
    ).toBe(200);
    const before = await allKeys(registry.store);
    const same = await publish(
      alice,
      metadata('dupe_me', '1.0.0+a'),
      await simpleCrate('dupe_me', '1.0.0+a'),
    );
    expect(detail(same)).toMatch(/`dupe_me@1.0.0\+a` is already uploaded/);
    const build = await publish(
      alice,
      metadata('dupe_me', '1.0.0+b'),
      await simpleCrate('dupe_me', '1.0.0+b'),
    );
    expect(detail(build)).toMatch(/differs only in build metadata/);
    const collide = await publish(alice, metadata('Dupe-Me', '2.0.0'), await simpleCrate('Dupe-Me', '2.0.0'));
    expect(detail(collide)).toMatch(/crate `dupe_me` already exists and names may not differ only in case/);
    const notOwner = await publish(bob, metadata('dupe_me', '2.0.0'), await simpleCrate('dupe_me', '2.0.0'));
    expect(notOwner.statusCode).toBe(403);
    expect(detail(notOwner)).toMatch(/not an owner of crate `dupe_me`/);
    expect(await allKeys(registry.store)).toEqual(before);
  });
});

describe('metrics', () => {
  it('counts publishes by result', async () => {
    const text = (await registry.wharf.metricsApp.inject({ url: '/metrics' })).body;
    expect(text).toMatch(/wharf_cargo_publishes_total\{result="published"\} [1-9]/);
    expect(text).toMatch(/wharf_cargo_publishes_total\{result="refused"\} [1-9]/);
  });
});

describe('token scopes', () => {
  // Crate scopes (`crate:NAME`, `crate:PREFIX*`) limit the Cargo scopes to the crates they match.
  const principal = (scopes: string[] | null): Principal => ({
    kind: 'user',
    name: 'u',
    groups: [],
    scopes,
    via: 'token',
    admin: false,
  });
  const policy = new AccessPolicy({ superusers: [], anonymousPull: true, cargoAuthRequired: false });
  const publishNew = (scopes: string[] | null) =>
    policy.decide(principal(scopes), { operation: 'cargo.publish', crate: 'goodname', existing: null });
  it('limits a token with crate scopes to the crates they match', () => {
    expect(publishNew(['publish-new', 'crate:other*'])).toMatchObject({
      allowed: false,
      reason: 'scope',
      message: 'this token is limited to the crates other*; it may not act on `goodname`',
    });
    expect(publishNew(['publish-new', 'crate:good*'])).toEqual({ allowed: true });
    expect(publishNew(null)).toEqual({ allowed: true });
    expect(publishNew(['yank'])).toMatchObject({
      allowed: false,
      reason: 'scope',
      message: 'this token lacks the `publish-new` scope (publish the first version of a crate)',
    });
  });
});

describe('yank, owners, search', () => {
  it('yanks and unyanks with the yank scope only', async () => {
    await publish(alice, metadata('yanky', '1.0.0'), await simpleCrate('yanky', '1.0.0'));
    const noScope = await registry.accounts.token('alice', ['publish-update']);
    const refused = await registry.app.inject({
      method: 'DELETE',
      url: '/api/v1/crates/yanky/1.0.0/yank',
      headers: { authorization: noScope },
    });
    expect(refused.statusCode).toBe(403);
    expect(detail(refused)).toMatch(/`yank` scope/);
    const yank = await registry.app.inject({
      method: 'DELETE',
      url: '/api/v1/crates/yanky/1.0.0/yank',
      headers: { authorization: `Bearer ${alice}` },
    });
    expect(yank.json()).toEqual({ ok: true });
    expect(JSON.parse((await registry.app.inject({ url: '/index/ya/nk/yanky' })).body).yanked).toBe(true);
    await registry.app.inject({
      method: 'PUT',
      url: '/api/v1/crates/yanky/1.0.0/unyank',
      headers: { authorization: alice },
    });
    expect(JSON.parse((await registry.app.inject({ url: '/index/ya/nk/yanky' })).body).yanked).toBe(false);
    const missing = await registry.app.inject({
      method: 'DELETE',
      url: '/api/v1/crates/yanky/9.9.9/yank',
      headers: { authorization: alice },
    });
    expect(missing.statusCode).toBe(404);
  });

  it('manages owners: users and groups, unknown names refused, last owner kept', async () => {
    await publish(alice, metadata('owned', '1.0.0'), await simpleCrate('owned', '1.0.0'));
    const put = (users: string[], token = alice, method: 'PUT' | 'DELETE' = 'PUT') =>
      registry.app.inject({
        method,
        url: '/api/v1/crates/owned/owners',
        headers: { authorization: token },
        payload: { users },
      });
    expect((await put(['ghost'])).statusCode).toBe(404);
    expect(detail(await put(['group:nobody']))).toMatch(/could not find a group named `nobody`/);
    expect((await put(['bob'], bob)).statusCode).toBe(403);
    expect((await put(['bob', 'group:devs'])).json()).toMatchObject({ ok: true });
    const list = await registry.app.inject({ url: '/api/v1/crates/owned/owners' });
    expect(list.json().users.map((u: { login: string }) => u.login)).toEqual(['alice', 'bob', 'group:devs']);
    // bob is now an owner and may publish
    expect(
      (await publish(bob, metadata('owned', '1.1.0'), await simpleCrate('owned', '1.1.0'))).statusCode,
    ).toBe(200);
    expect((await put(['alice', 'bob'], alice, 'DELETE')).statusCode).toBe(200);
    // group members stay owners through the group
    expect(
      (await publish(alice, metadata('owned', '1.2.0'), await simpleCrate('owned', '1.2.0'))).statusCode,
    ).toBe(200);
    expect(detail(await put(['group:devs'], alice, 'DELETE'))).toMatch(/cannot remove every owner/);
  });

  it('searches with per_page at most 100 (as crates.io) and meta.total', async () => {
    for (const n of ['searchable-one', 'searchable_two', 'searchable'])
      await publish(alice, metadata(n, '1.0.0'), await simpleCrate(n, '1.0.0'));
    const res = await registry.app.inject({ url: '/api/v1/crates?q=searchable&per_page=2' });
    const body = res.json();
    expect(body.meta.total).toBe(3);
    expect(body.crates).toHaveLength(2);
    expect(body.crates[0]).toMatchObject({
      name: 'searchable',
      max_version: '1.0.0',
      description: 'the searchable crate',
      exact_match: true,
    });
    expect(body.meta.next_page).toBe('?q=searchable&per_page=2&page=2');
    expect(
      (await registry.app.inject({ url: '/api/v1/crates?q=searchable&per_page=100' })).json().crates,
    ).toHaveLength(3);
    const tooMany = await registry.app.inject({ url: '/api/v1/crates?q=searchable&per_page=1000' });
    expect(tooMany.statusCode).toBe(400);
    expect(detail(tooMany)).toMatch(/per_page must be <= 100/);
  });
});

describe('private registry (RFC 3139)', () => {
  it('asks for a token with a login_url and accepts one', async () => {
    const priv = await startRegistry({ cargo: { authRequired: true }, listen: false });
    try {
      const token = await priv.accounts.addUser('alice');
      const anonymous = await priv.app.inject({
        url: '/index/config.json',
        headers: { host: 'crates.example' },
      });
      expect(anonymous.statusCode).toBe(401);
      expect(anonymous.headers['www-authenticate']).toBe('Cargo login_url="http://crates.example/me"');
      const bad = await priv.app.inject({ url: '/index/config.json', headers: { authorization: 'nope' } });
      expect(bad.statusCode).toBe(403);
      const ok = await priv.app.inject({
        url: '/index/config.json',
        headers: { authorization: token, host: 'crates.example' },
      });
      expect(ok.json()).toMatchObject({ 'auth-required': true });
      expect((await priv.app.inject({ url: '/api/v1/crates/x/1.0.0/download' })).statusCode).toBe(401);
      const me = await priv.app.inject({ url: '/me', headers: { host: 'crates.example' } });
      expect(me.body).toContain('curl -s -X POST http://crates.example/ktra/api/v1/login/YOUR_NAME');
      expect(me.body).toContain('cargo login');
    } finally {
      await priv.close();
    }
  });
});

describe('nothing lost', () => {
  it('keeps all 50 index lines when two processes on one data dir take 50 concurrent publishes', async () => {
    const first = await startRegistry({ listen: false });
    const second = await startRegistry({ dataDir: first.dataDir, listen: false });
    try {
      const token = await first.accounts.addUser('alice');
      const seed = await first.app.inject({
        method: 'PUT',
        url: '/api/v1/crates/new',
        headers: { authorization: token },
        payload: publishBody(metadata('busy', '0.0.0'), await simpleCrate('busy', '0.0.0')),
      });
      expect(seed.statusCode).toBe(200);
      const results = await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const app = i % 2 === 0 ? first.app : second.app;
          const res = await app.inject({
            method: 'PUT',
            url: '/api/v1/crates/new',
            headers: { authorization: token },
            payload: publishBody(metadata('busy', `1.0.${i}`), await simpleCrate('busy', `1.0.${i}`)),
          });
          return res.statusCode;
        }),
      );
      expect(results.every((s) => s === 200)).toBe(true);
      // A replica trusts an index ETag for registry.cargo.indexRevalidateMillis (500 ms) unless it made
      // the change itself: after that bound, every replica serves every line.
      await new Promise((resolve) => setTimeout(resolve, 600));
      const lines = (await first.app.inject({ url: '/index/bu/sy/busy' })).body.trim().split('\n');
      expect(lines).toHaveLength(51);
      const crates = (await first.store.list({ prefix: 'cargo/crates/busy/' })).objects;
      expect(crates).toHaveLength(51);
    } finally {
      await second.close();
      await first.close();
    }
  });
});

describe('mirror', () => {
  let upstreamCalls = 0;
  let failUpstream = false;
  let server: Server;
  let upstreamUrl = '';
  let crate: Buffer;
  let cksum = '';
  beforeAll(async () => {
    crate = await simpleCrate('mirrored', '1.0.0');
    const { createHash } = await import('node:crypto');
    cksum = createHash('sha256').update(crate).digest('hex');
    server = createServer((req, res) => {
      upstreamCalls += 1;
      if (failUpstream) return res.writeHead(500).end();
      if (req.url === '/config.json')
        return res.end(JSON.stringify({ dl: `${upstreamUrl}/dl/{crate}/{version}` }));
      if (req.url === '/mi/rr/mirrored') {
        if (req.headers['if-none-match'] === '"v1"') return res.writeHead(304).end();
        return res
          .writeHead(200, { etag: '"v1"' })
          .end(
            `${JSON.stringify({ name: 'mirrored', vers: '1.0.0', deps: [], cksum, features: {}, yanked: false })}\n`,
          );
      }
      if (req.url === '/dl/mirrored/1.0.0') return setTimeout(() => res.end(crate), 50);
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    upstreamUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('fetches once for concurrent first requests, verifies cksum, answers 502 on upstream failure', async () => {
    const mirror = await startRegistry({
      cargo: { mirror: { enabled: true, upstreamIndex: `${upstreamUrl}/`, indexTtlSeconds: 0 } },
      listen: false,
    });
    try {
      failUpstream = true;
      const down = await mirror.app.inject({ url: '/mirror/index/mi/rr/mirrored' });
      expect(down.statusCode).toBe(502);
      expect(down.json().errors[0].detail).toMatch(/upstream registry answered 500/);
      expect(await allKeys(mirror.store)).toEqual([]);
      failUpstream = false;
      upstreamCalls = 0;
      const downloads = await Promise.all(
        Array.from({ length: 5 }, () =>
          mirror.app.inject({ url: '/ktra/api/v1/mirror/mirrored/1.0.0/download' }),
        ),
      );
      expect(downloads.map((d) => d.statusCode)).toEqual([200, 200, 200, 200, 200]);
      expect(downloads[0]?.rawPayload.equals(crate)).toBe(true);
      // index (≤ 5 revalidations, single-flighted to fewer) + config.json once + the .crate once
      const crateFetches = upstreamCalls;
      expect(crateFetches).toBeLessThanOrEqual(7);
      upstreamCalls = 0;
      expect(
        (await mirror.app.inject({ url: '/ktra/api/v1/mirror/mirrored/1.0.0/download' })).statusCode,
      ).toBe(200);
      expect(upstreamCalls).toBe(1); // only the index revalidation (TTL 0), answered 304
      const index = await mirror.app.inject({ url: '/mirror/index/mi/rr/mirrored' });
      const etag = index.headers.etag as string;
      expect(
        (await mirror.app.inject({ url: '/mirror/index/mi/rr/mirrored', headers: { 'if-none-match': etag } }))
          .statusCode,
      ).toBe(304);
      const config = await mirror.app.inject({
        url: '/mirror/index/config.json',
        headers: { host: 'm.example' },
      });
      expect(config.json()).toEqual({ dl: 'http://m.example/ktra/api/v1/mirror' });
    } finally {
      await mirror.close();
    }
  });

  it('counts hits and misses of its cache in the metrics', async () => {
    const requests = async (mirror: TestRegistry) => {
      const metrics = await scrape(mirror.metricsUrl);
      const of = (what: string, result: string) =>
        metrics.value('wharf_cargo_mirror_requests_total', { what, result });
      return {
        index: {
          hit: of('index', 'hit'),
          miss: of('index', 'miss'),
          revalidated: of('index', 'revalidated'),
          stale: of('index', 'stale'),
        },
        crate: { hit: of('crate', 'hit'), miss: of('crate', 'miss') },
      };
    };
    const get = async (mirror: TestRegistry, url: string) => (await fetch(`${mirror.url}${url}`)).status;
    const settings = (indexTtlSeconds: number) => ({
      cargo: { mirror: { enabled: true, upstreamIndex: `${upstreamUrl}/`, indexTtlSeconds } },
    });
    const caching = await startRegistry(settings(3600));
    const revalidating = await startRegistry(settings(0));
    try {
      expect(await get(caching, '/mirror/index/mi/rr/mirrored')).toBe(200);
      expect(await get(caching, '/mirror/index/mi/rr/mirrored')).toBe(200);
      expect(await get(caching, '/ktra/api/v1/mirror/mirrored/1.0.0/download')).toBe(200);
      expect(await get(caching, '/ktra/api/v1/mirror/mirrored/1.0.0/download')).toBe(200);
      expect(await requests(caching)).toEqual({
        index: { hit: 1, miss: 1, revalidated: 0, stale: 0 },
        crate: { hit: 1, miss: 1 },
      });

      expect(await get(revalidating, '/mirror/index/mi/rr/mirrored')).toBe(200);
      expect(await get(revalidating, '/mirror/index/mi/rr/mirrored')).toBe(200); // 304 upstream
      failUpstream = true;
      expect(await get(revalidating, '/mirror/index/mi/rr/mirrored')).toBe(200); // the cached copy
      expect(await get(revalidating, '/mirror/index/no/ne/nonesuch')).toBe(502); // nothing cached
      expect(await requests(revalidating)).toEqual({
        index: { hit: 0, miss: 2, revalidated: 1, stale: 1 },
        crate: { hit: 0, miss: 0 },
      });
    } finally {
      failUpstream = false;
      await caching.close();
      await revalidating.close();
    }
  });

  it('refuses and does not cache a .crate whose checksum does not match', async () => {
    const mirror = await startRegistry({
      cargo: {
        mirror: {
          enabled: true,
          upstreamIndex: `${upstreamUrl}/`,
          upstreamDownload: `${upstreamUrl}/bad/{crate}`,
        },
      },
      listen: false,
    });
    try {
      const res = await mirror.app.inject({ url: '/ktra/api/v1/mirror/mirrored/1.0.0/download' });
      expect(res.statusCode).toBe(502);
      expect(await allKeys(mirror.store, 'cargo/mirror/crates/')).toEqual([]);
    } finally {
      await mirror.close();
    }
  });
});
