import fc from 'fast-check';
import { basic, type Fixtures, PASSWORDS, type RawRequest, SERVICE } from './harness.ts';

/**
 * Generators of malformed requests for one route of the running app: its path parameters (or its
 * wildcard) filled with real names, plausible names and hostile ones, each encoded once, twice or
 * not at all; query strings, headers and bodies likewise. Real names let requests get past the first
 * checks and reach deeper code; hostile ones are what an attacker would send.
 */

/** Strings that have broken parsers, stores and lookups somewhere. */
const HOSTILE = [
  '',
  ' ',
  '.',
  '..',
  '...',
  '/',
  '//',
  '%',
  '%25',
  '%2F',
  '%2e%2e',
  '%00',
  '\0',
  '\n',
  '\\',
  ':',
  '+',
  '*',
  '?',
  '#',
  '&',
  '=',
  '"',
  "'",
  '<script>',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'CON',
  'nul',
  'core',
  '../../etc/passwd',
  '..%2F..%2Fx',
  'a/../b',
  'a b',
  'café',
  '😀',
  'ﬁ',
  'İ',
  'x'.repeat(65),
  'y'.repeat(129),
  'z'.repeat(300),
  // Over the router's maxParamLength (500).
  'w'.repeat(600),
  'sha256:',
  'sha256:zz',
  `sha256:${'0'.repeat(63)}`,
  `sha512:${'a'.repeat(64)}`,
  'md5:d41d8cd98f00b204e9800998ecf8427e',
  '-1',
  '0',
  '1e309',
  '9007199254740993',
  '18446744073709551616',
  '1.0',
  '01.0.0',
  '1.0.0-',
  '1.0.0+',
  'null',
  'undefined',
  'true',
  '[]',
  '{}',
];

const hostile = fc.oneof(
  { arbitrary: fc.constantFrom(...HOSTILE), weight: 6 },
  { arbitrary: fc.string({ maxLength: 40 }), weight: 3 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 20 }), weight: 1 },
);

/** A value for a named path parameter: real, plausible or hostile. */
function paramValue(name: string, f: Fixtures): fc.Arbitrary<string> {
  const real: Record<string, string[]> = {
    crate: [f.crate.name, f.upstreamCrate.name, 'Demo', 'demo_', 'nothere'],
    version: [f.crate.version, '1.0.0+build', '0.1.0', '1.0.0-rc.1', '2.0.0'],
    // People the requests may name: alice and admin are the actors and stay out of it.
    name: ['bob', 'carol', 'nobody', 'bob+robot', 'fuzzbot', 'fuzz-service'],
    user: ['bob', 'carol', 'nobody'],
    group: ['devs', 'qa', 'nogroup'],
    sub: ['devs', 'qa'],
    prop: ['email', 'date joined', 'full name'],
    org: ['devs', 'alice', 'nogroup'],
    id: ['0123456789abcdef', 'ffffffffffffffff'],
  };
  return fc.oneof(
    { arbitrary: fc.constantFrom(...(real[name] ?? ['x'])), weight: 3 },
    { arbitrary: hostile, weight: 4 },
  );
}

const tag = (f: Fixtures) =>
  fc.oneof(fc.constant(f.image.tag), fc.constantFrom('latest', '__proto__', 'v2'), hostile);
const digest = (f: Fixtures) =>
  fc.oneof(
    fc.constantFrom(f.image.manifest, ...f.image.blobs),
    fc.constant(`sha256:${'f'.repeat(64)}`),
    hostile,
  );
const repository = (f: Fixtures) =>
  fc.oneof(
    {
      arbitrary: fc.constantFrom(f.image.repository, 'alice/new', 'devs/app', 'bob/app', 'alice/app/sub'),
      weight: 4,
    },
    { arbitrary: fc.tuple(hostile, hostile).map(([a, b]) => `${a}/${b}`), weight: 2 },
    { arbitrary: hostile, weight: 2 },
  );

/** The part after `/v2/`: a repository and one of the distribution API's suffixes. */
function v2Path(f: Fixtures): fc.Arbitrary<string[]> {
  const suffix = fc.oneof(
    fc.constant(['tags', 'list']),
    tag(f).map((t) => ['manifests', t]),
    digest(f).map((d) => ['manifests', d]),
    digest(f).map((d) => ['blobs', d]),
    fc.constant(['blobs', 'uploads', '']),
    fc.oneof(fc.constant(f.image.uploadId), fc.uuid(), hostile).map((id) => ['blobs', 'uploads', id]),
    digest(f).map((d) => ['referrers', d]),
    hostile.map((s) => [s]),
  );
  return fc.oneof(
    { arbitrary: fc.tuple(repository(f), suffix).map(([r, s]) => [...r.split('/'), ...s]), weight: 8 },
    { arbitrary: fc.constantFrom<string[]>([''], ['_catalog'], ['auth'], ['auth', 'jwks']), weight: 1 },
    { arbitrary: fc.array(hostile, { maxLength: 4 }), weight: 1 },
  );
}

/** The part after `/api/v1/repository/`: a repository and one of API v1's suffixes. */
function apiV1RepositoryPath(f: Fixtures): fc.Arbitrary<string[]> {
  const who = fc.oneof(fc.constantFrom('bob', 'carol', 'devs', 'alice+bot', 'constructor'), hostile);
  const suffix = fc.oneof(
    fc.constant<string[]>([]),
    fc.constant(['tag']),
    tag(f).map((t) => ['tag', t]),
    digest(f).map((d) => ['manifest', d]),
    fc.constantFrom(['permissions', 'user'], ['permissions', 'team']),
    fc.tuple(fc.constantFrom('user', 'team'), who).map(([k, w]) => ['permissions', k, w]),
    fc.constant(['changevisibility']),
    hostile.map((s) => [s]),
  );
  return fc.tuple(repository(f), suffix).map(([r, s]) => [...r.split('/'), ...s]);
}

/** An index path as cargo asks for them, real or not. */
function indexPath(f: Fixtures): fc.Arbitrary<string[]> {
  return fc.oneof(
    fc.constantFrom<string[]>(
      ['de', 'mo', f.crate.name],
      ['up', 'cr', f.upstreamCrate.name],
      ['1', 'a'],
      ['2', 'ab'],
      ['3', 'a', 'abc'],
      ['config.json'],
    ),
    fc.array(hostile, { minLength: 1, maxLength: 4 }),
  );
}

/** How a path segment goes on the wire: encoded once (mostly), twice, or raw (then maybe invalid). */
const encoding = fc.constantFrom<'once' | 'twice' | 'raw'>('once', 'once', 'once', 'once', 'twice', 'raw');

function encodeSegment(value: string, how: 'once' | 'twice' | 'raw'): string {
  if (how === 'twice') return encodeURIComponent(encodeURIComponent(value));
  if (how === 'raw')
    // As typed, except what cannot travel in a request line at all.
    return value.replace(/[^\x21-\x7e]|[?#]/gu, (c) => encodeURIComponent(c));
  return encodeURIComponent(value);
}

function pathFor(url: string, f: Fixtures): fc.Arbitrary<string> {
  const parts = url.split('/');
  const segments = parts.map((part) => {
    if (part === '*') {
      const rest = url.startsWith('/v2/')
        ? v2Path(f)
        : url.startsWith('/api/v1/repository/')
          ? apiV1RepositoryPath(f)
          : indexPath(f);
      return fc
        .tuple(rest, fc.array(encoding, { minLength: 6, maxLength: 6 }))
        .map(([values, hows]) =>
          values.map((v, i) => encodeSegment(v, hows[i % hows.length] as 'once')).join('/'),
        );
    }
    if (part.startsWith(':')) {
      return fc.tuple(paramValue(part.slice(1), f), encoding).map(([v, how]) => encodeSegment(v, how));
    }
    return fc.constant(part);
  });
  return fc.tuple(...segments, fc.boolean()).map((all) => {
    const trailing = all.pop() as boolean;
    const path = (all as string[]).join('/') || '/';
    return trailing && !path.endsWith('/') ? `${path}/` : path;
  });
}

const QUERY_KEYS = [
  'n',
  'last',
  'digest',
  'mount',
  'from',
  'tag',
  'artifactType',
  'scope',
  'service',
  'offline_token',
  'account',
  'client_id',
  'q',
  'per_page',
  'page',
  'namespace',
  'public',
  'starred',
  'limit',
  'user',
  '__proto__',
  'constructor',
];

function queryFor(f: Fixtures): fc.Arbitrary<string> {
  const value = fc.oneof(
    fc.constantFrom(
      f.image.blobs[0] as string,
      'alice/app',
      'repository:alice/app:pull,push',
      'repository:alice/new:push,constructor',
      'registry:catalog:*',
      'wharf',
      'true',
      '5',
      '-1',
      '0',
      '1000000',
    ),
    hostile,
  );
  const pair = fc.tuple(fc.oneof(fc.constantFrom(...QUERY_KEYS), hostile), value, encoding);
  return fc
    .array(pair, { maxLength: 4 })
    .map((pairs) =>
      pairs.length === 0
        ? ''
        : `?${pairs.map(([k, v, how]) => `${encodeSegment(k, how)}=${encodeSegment(v, how)}`).join('&')}`,
    );
}

/** The credential a route's own clients send, so that requests get past authentication too. */
function rightCredential(url: string, f: Fixtures): string[] {
  if (url.startsWith('/restauth')) return [basic(SERVICE.name, SERVICE.password)];
  if (url === '/v2/auth') return [basic('alice', f.aliceToken)];
  if (url.startsWith('/v2')) return [`Bearer ${f.aliceJwt}`];
  if (/^\/(index|mirror)\/|^\/api\/v1\/crates|^\/ktra\/api\/v1\/mirror/.test(url)) return [f.aliceToken];
  if (url.startsWith('/api/v1/')) return [`Bearer ${f.aliceToken}`, `Bearer ${f.adminToken}`];
  if (url.startsWith('/auth/api/v1/')) return [f.aliceToken, f.adminToken];
  return [f.aliceToken, f.adminToken];
}

function headersFor(url: string, f: Fixtures): fc.Arbitrary<Record<string, string>> {
  // fast-check leans to the first choice: the credential that gets a request past authentication.
  const authorization = fc.oneof(
    { arbitrary: fc.constantFrom(...rightCredential(url, f)), weight: 24 },
    { arbitrary: fc.constant(undefined), weight: 4 },
    {
      arbitrary: fc.constantFrom(
        f.aliceToken,
        `Bearer ${f.aliceToken}`,
        `Bearer ${f.aliceJwt}`,
        basic('alice', f.aliceToken),
        f.adminToken,
        basic(SERVICE.name, SERVICE.password),
      ),
      weight: 3,
    },
    // A password costs a bcrypt on the server: rarer. Wrong ones go to bob, never to the actors.
    {
      arbitrary: fc.constantFrom(basic('alice', PASSWORDS.alice), basic('bob', 'wrong-password')),
      weight: 1,
    },
    {
      arbitrary: fc.oneof(
        fc.constantFrom(
          'Bearer',
          'Basic',
          'Basic !!!',
          'Basic Og==',
          'Bearer a.b.c',
          'Negotiate x',
          'Bearer  ',
        ),
        hostile.map((s) => `Bearer ${s}`),
        hostile.map((s) => `Basic ${Buffer.from(s).toString('base64')}`),
        hostile,
      ),
      weight: 3,
    },
  );
  const optional = (values: string[]) =>
    fc.option(fc.oneof(fc.constantFrom(...values), hostile), { freq: 4 });
  return fc
    .record({
      authorization,
      'content-range': optional(['0-0', '0-9', '5-1', 'bytes 0-3', '0-99999999999999999999', '1-']),
      range: optional(['bytes=0-0', 'bytes=5-1', 'bytes=-5', 'bytes=0-', 'bytes=x', 'bytes=0-1,2-3']),
      'if-none-match': optional(['*', '"x"', 'W/"x"']),
      cookie: optional([f.session.cookie, 'wharf_oci_session=x', 'wharf_oci_session=;', 'a=b; c']),
      'x-csrf-token': optional([f.session.csrf, 'x']),
      accept: optional(['application/json', 'text/html', '*/*']),
    })
    .map(validHeaders);
}

/** What node:http refuses to send is no test of the server. */
function validHeaders(headers: Record<string, string | null | undefined>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value === 'string' && /^[\t\x20-\x7e\x80-\xff]*$/.test(value) && value === value.trim())
      result[name] = value;
  }
  return result;
}

/** A content type: mostly the one that fits the body, sometimes any other or none. */
function contentType(fitting: string | undefined): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    { arbitrary: fc.constant(fitting), weight: 12 },
    { arbitrary: fc.constant(undefined), weight: 1 },
    {
      arbitrary: fc.oneof(
        fc.constantFrom(
          'application/json',
          'application/json; charset=utf-8',
          'application/x-www-form-urlencoded',
          'application/octet-stream',
          'text/plain',
          'application/vnd.oci.image.manifest.v1+json',
          'application/vnd.oci.image.index.v1+json',
          'multipart/form-data; boundary=x',
          'application/json; charset=utf-16',
          'a/b/c',
          '',
        ),
        hostile,
      ),
      weight: 3,
    },
  );
}

const FIELDS = [
  'username',
  'user',
  'password',
  'token',
  'name',
  'group',
  'users',
  'groups',
  'prop',
  'value',
  'properties',
  'scopes',
  'expiresAt',
  'expiresInSeconds',
  'admin',
  'disabled',
  'permissions',
  'namespace',
  'repository',
  'visibility',
  'description',
  'role',
  'grant_type',
  'refresh_token',
  'scope',
  'service',
  'access_type',
  'old_password',
  'new_password',
  '__proto__',
  'constructor',
];

const fieldValue = fc.oneof(
  hostile,
  fc.constantFrom(
    'bob',
    'devs',
    'public',
    'private',
    'read',
    'admin',
    'password',
    'refresh_token',
    'pull',
    'push',
    'publish-new',
  ),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(hostile, { maxLength: 3 }),
  fc.dictionary(hostile, hostile, { maxKeys: 2 }),
);

/** An object with the fields the routes read, holding anything. */
const shapedObject = fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), hostile), fieldValue, { maxKeys: 5 });

function publishBody(f: Fixtures): fc.Arbitrary<Buffer> {
  const meta = fc.record({
    name: fc.oneof(fc.constantFrom(f.crate.name, 'fuzzed', 'core'), hostile),
    vers: fc.oneof(fc.constantFrom('9.9.9', f.crate.version), hostile),
    deps: fc.oneof(
      fc.constant([]),
      fc.array(
        fc.record({ name: hostile, version_req: hostile, explicit_name_in_toml: fc.option(hostile) }),
        { maxLength: 2 },
      ),
      hostile,
    ),
    features: fc.oneof(
      fc.constant({}),
      fc.dictionary(hostile, fc.array(hostile, { maxLength: 2 }), { maxKeys: 2 }),
      hostile,
    ),
  });
  return fc
    .tuple(
      fc.oneof(
        meta.map((m) => JSON.stringify(m)),
        hostile,
      ),
      fc.uint8Array({ maxLength: 64 }),
      fc.integer({ min: -8, max: 8 }),
    )
    .map(([json, crate, skew]) => {
      const head = Buffer.alloc(4);
      const text = Buffer.from(json);
      head.writeUInt32LE(Math.max(0, text.length + skew));
      const length = Buffer.alloc(4);
      length.writeUInt32LE(crate.length);
      return Buffer.concat([head, text, length, Buffer.from(crate)]);
    });
}

function manifestBody(f: Fixtures): fc.Arbitrary<Buffer> {
  const descriptor = fc.record({
    mediaType: fc.oneof(fc.constant('application/vnd.oci.image.layer.v1.tar'), hostile),
    digest: digest(f),
    size: fc.oneof(fc.integer({ min: -1, max: 64 }), fc.double(), hostile, fc.constant(undefined)),
  });
  return fc
    .record({
      schemaVersion: fc.oneof(fc.constant(2), hostile),
      mediaType: fc.oneof(
        fc.constantFrom(
          'application/vnd.oci.image.manifest.v1+json',
          'application/vnd.oci.image.index.v1+json',
        ),
        hostile,
      ),
      config: fc.option(descriptor),
      layers: fc.oneof(fc.array(descriptor, { maxLength: 3 }), hostile),
      manifests: fc.option(fc.array(descriptor, { maxLength: 2 })),
      subject: fc.option(descriptor),
    })
    .map((m) => Buffer.from(JSON.stringify(m)));
}

interface Body {
  bytes?: Buffer;
  type?: string | undefined;
}

function bodyFor(method: string, url: string, f: Fixtures): fc.Arbitrary<Body> {
  const json = (bytes: Buffer) => contentType('application/json').map((type) => ({ bytes, type }));
  const bodies: fc.Arbitrary<Body>[] = [
    fc.constant({}),
    contentType(undefined).map((type) => ({ bytes: Buffer.alloc(0), type })),
    shapedObject.chain((o) => json(Buffer.from(JSON.stringify(o)))),
    fc.jsonValue({ maxDepth: 3 }).chain((v) => json(Buffer.from(JSON.stringify(v) ?? 'null'))),
    shapedObject.chain((o) =>
      contentType('application/x-www-form-urlencoded').map((type) => ({
        type,
        bytes: Buffer.from(
          new URLSearchParams(
            Object.entries(o).map(([k, v]): [string, string] => [
              k,
              typeof v === 'string' ? v : JSON.stringify(v),
            ]),
          ).toString(),
        ),
      })),
    ),
    fc
      .constantFrom('{', '{"a":', '[1,', '"unterminated', '{"__proto__":{"admin":true}}', 'null', '\u0000')
      .chain((text) => json(Buffer.from(text))),
    fc
      .uint8Array({ maxLength: 256 })
      .chain((b) => contentType('application/octet-stream').map((type) => ({ bytes: Buffer.from(b), type }))),
    // Just over the fuzzed server's 64 KiB body limit.
    json(Buffer.alloc(65 * 1024, 0x7b)),
  ];
  if (url === '/api/v1/crates/new') {
    const publish = publishBody(f).chain((bytes) => contentType(undefined).map((type) => ({ bytes, type })));
    bodies.push(publish, publish, publish);
  }
  if (url.startsWith('/v2/')) {
    const manifest = manifestBody(f).chain((bytes) =>
      contentType('application/vnd.oci.image.manifest.v1+json').map((type) => ({ bytes, type })),
    );
    bodies.push(manifest, manifest);
  }
  const arbitrary = fc.oneof(...bodies);
  return method === 'GET' || method === 'HEAD'
    ? fc.oneof({ arbitrary: fc.constant({}), weight: 9 }, { arbitrary, weight: 1 })
    : arbitrary;
}

/** A request for one route of the app, every part of it possibly malformed. */
export function requestFor(route: { method: string; url: string }, f: Fixtures): fc.Arbitrary<RawRequest> {
  return fc
    .record({
      path: pathFor(route.url, f),
      query: queryFor(f),
      headers: headersFor(route.url, f),
      body: bodyFor(route.method, route.url, f),
      chunked: fc.boolean(),
    })
    .map(({ path, query, headers, body, chunked }) => ({
      method: route.method,
      path: `${path}${query}`,
      headers: { ...headers, ...validHeaders({ 'content-type': body.type }) },
      ...(body.bytes ? { body: body.bytes, chunked } : {}),
    }));
}
