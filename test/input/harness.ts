import { Agent, request as httpRequest } from 'node:http';
import type { ObjectStore } from '../../server/store/object-store.ts';
import { metadata, publishBody, simpleCrate } from '../cargo/crate-file.ts';
import { digestOf, imageManifest } from '../oci/layout.ts';
import { startServer, type TestServer } from '../support/wharf.ts';

/** A request exactly as it goes on the wire: the path is sent unnormalized, bytes as given. */
export interface RawRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Send the body with `Transfer-Encoding: chunked` instead of a Content-Length. */
  chunked?: boolean;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

const agent = new Agent({ keepAlive: true, maxSockets: 4 });

/**
 * Sends one request over a real socket with node:http, which (unlike fetch) keeps `..`, `%25` and
 * odd methods as they are, so the server sees what an attacker's client would send.
 */
export function send(baseUrl: string, raw: RawRequest, timeoutMs = 15_000): Promise<RawResponse> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...raw.headers };
    // node:http frames a GET, HEAD or DELETE body only when told to; unframed bytes would be read
    // by the server as the next request.
    if (raw.body) {
      if (raw.chunked) headers['transfer-encoding'] = 'chunked';
      else headers['content-length'] = String(raw.body.length);
    }
    const req = httpRequest(
      { host: url.hostname, port: url.port, method: raw.method, path: raw.path, headers, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (raw.body) req.end(raw.body);
    else req.end();
  });
}

/** Every key in the store with its ETag: two snapshots differ iff something was written. */
export async function storeSnapshot(store: ObjectStore): Promise<Map<string, string>> {
  const keys = new Map<string, string>();
  let continuationToken: string | undefined;
  do {
    const page = await store.list({ ...(continuationToken ? { continuationToken } : {}) });
    for (const object of page.objects) keys.set(object.key, object.etag);
    continuationToken = page.nextContinuationToken;
  } while (continuationToken);
  return keys;
}

/** Keys added, removed or rewritten between two snapshots. */
export function storeChanges(before: Map<string, string>, after: Map<string, string>): string[] {
  const changed: string[] = [];
  for (const [key, etag] of after) if (before.get(key) !== etag) changed.push(key);
  for (const key of before.keys()) if (!after.has(key)) changed.push(key);
  return changed.sort();
}

export const PASSWORDS = { admin: 'fuzz-admin-password', alice: 'fuzz-alice-password' };
export const SERVICE = { name: 'fuzz-service', password: 'fuzz-service-password' };

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** What exists on the fuzzed server, so generated requests can name real things too. */
export interface Fixtures {
  /** alice: a user in group `devs`; her named (unrestricted) API token. */
  aliceToken: string;
  adminToken: string;
  /** A registry JWT for alice with pull/push/delete on her repositories and the catalog. */
  aliceJwt: string;
  /** An API v1 session of alice's: cookie header and CSRF token. */
  session: { cookie: string; csrf: string };
  crate: { name: string; version: string };
  upstreamCrate: { name: string; version: string };
  image: { repository: string; tag: string; manifest: string; blobs: string[]; uploadId: string };
}

export interface FuzzTarget {
  server: TestServer;
  upstream: TestServer;
  fixtures: Fixtures;
  /**
   * Puts back what generated requests may have taken away (they act with real credentials, and
   * deleting is one of the things they try): the victims bob and carol with a property, the groups
   * devs and qa, the image's blobs and tag, an open upload and alice's API v1 session. Cheap when
   * all is there.
   */
  repair(): Promise<void>;
  stop(): Promise<void>;
}

async function json(baseUrl: string, raw: RawRequest): Promise<Record<string, unknown>> {
  const response = await send(baseUrl, raw);
  if (response.status >= 300)
    throw new Error(`${raw.method} ${raw.path} → ${response.status} ${response.body.toString()}`);
  return response.body.length ? (JSON.parse(response.body.toString()) as Record<string, unknown>) : {};
}

const JSON_TYPE = { 'content-type': 'application/json' };

async function publishCrate(url: string, token: string, name: string, version: string): Promise<void> {
  await json(url, {
    method: 'PUT',
    path: '/api/v1/crates/new',
    headers: { authorization: token },
    body: publishBody(metadata(name, version), await simpleCrate(name, version)),
  });
}

/**
 * Two real servers over sockets: an upstream wharf whose sparse index the fuzzed server mirrors
 * (so the mirror routes reach real upstream answers), and the fuzzed server itself with every
 * surface mounted, a small body limit (so 413 is cheap to reach), GC off (nothing writes to the
 * store behind a request's back), and fixtures: users, a group, tokens, a crate, an image, an
 * upload session and an API v1 session.
 */
export async function startFuzzTarget(): Promise<FuzzTarget> {
  const upstream = await startServer({
    logLevel: 'warn',
    auth: { bcryptCost: 10, adminPassword: PASSWORDS.admin },
  });
  const upstreamToken = (
    await json(upstream.url, {
      method: 'POST',
      path: '/auth/api/v1/tokens',
      headers: { ...JSON_TYPE, authorization: basic('admin', PASSWORDS.admin) },
      body: Buffer.from(JSON.stringify({ name: 'upstream' })),
    })
  ).token as string;
  await publishCrate(upstream.url, upstreamToken, 'upcrate', '1.0.0');

  const server = await startServer({
    logLevel: process.env.WHARF_FUZZ_LOG ?? 'silent',
    bodyLimitBytes: 64 * 1024,
    auth: {
      bcryptCost: 10,
      adminPassword: PASSWORDS.admin,
      services: [{ ...SERVICE, permissions: ['*'] }],
      // Every request comes from 127.0.0.1: per-address throttling would soon refuse alice's own
      // sign-in. Per-user throttling stays as configured by default (and is reached for bob).
      rateLimit: { perAddress: 1_000_000 },
    },
    registry: {
      cargo: {
        maxCrateBytes: 256 * 1024,
        mirror: { enabled: true, upstreamIndex: `${upstream.url}/index/` },
      },
      oci: { gc: { enabled: false }, tokenTtlSeconds: 3600 },
    },
  });
  const url = server.url;
  const admin = { ...JSON_TYPE, authorization: basic('admin', PASSWORDS.admin) };
  const adminToken = (
    await json(url, {
      method: 'POST',
      path: '/auth/api/v1/tokens',
      headers: admin,
      body: Buffer.from(JSON.stringify({ name: 'fuzz' })),
    })
  ).token as string;
  await json(url, {
    method: 'POST',
    path: '/auth/api/v1/users',
    headers: admin,
    body: Buffer.from(JSON.stringify({ username: 'alice', password: PASSWORDS.alice })),
  });
  const service = { ...JSON_TYPE, authorization: basic(SERVICE.name, SERVICE.password) };
  const aliceToken = (
    await json(url, {
      method: 'POST',
      path: '/auth/api/v1/tokens',
      headers: { ...JSON_TYPE, authorization: basic('alice', PASSWORDS.alice) },
      body: Buffer.from(JSON.stringify({ name: 'fuzz' })),
    })
  ).token as string;
  await publishCrate(url, aliceToken, 'demo', '1.0.0');

  const scopes = ['alice/app', 'alice/new', 'devs/app']
    .map((name) => `scope=${encodeURIComponent(`repository:${name}:pull,push,delete`)}`)
    .join('&');
  const aliceJwt = (
    await json(url, {
      method: 'GET',
      path: `/v2/auth?service=wharf&${scopes}&scope=registry:catalog:*`,
      headers: { authorization: basic('alice', aliceToken) },
    })
  ).token as string;
  const bearer = { authorization: `Bearer ${aliceJwt}` };
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
  const layer = Buffer.from('a layer of the fuzz image');
  for (const blob of [config, layer])
    await json(url, {
      method: 'POST',
      path: `/v2/alice/app/blobs/uploads/?digest=${digestOf(blob)}`,
      headers: { ...bearer, 'content-type': 'application/octet-stream' },
      body: blob,
    });
  const manifest = imageManifest(config, [layer]);
  await json(url, {
    method: 'PUT',
    path: '/v2/alice/app/manifests/v1',
    headers: { ...bearer, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });

  const target: FuzzTarget = {
    server,
    upstream,
    fixtures: {
      aliceToken,
      adminToken,
      aliceJwt,
      session: { cookie: '', csrf: '' },
      crate: { name: 'demo', version: '1.0.0' },
      upstreamCrate: { name: 'upcrate', version: '1.0.0' },
      image: {
        repository: 'alice/app',
        tag: 'v1',
        manifest: digestOf(manifest),
        blobs: [digestOf(config), digestOf(layer)],
        uploadId: '',
      },
    },
    async repair() {
      const exists = async (path: string, headers: Record<string, string>) =>
        (await send(url, { method: 'GET', path, headers })).status < 300;
      for (const victim of ['bob', 'carol']) {
        if (await exists(`/restauth/users/${victim}`, service)) continue;
        await json(url, {
          method: 'POST',
          path: '/auth/api/v1/users',
          headers: admin,
          body: Buffer.from(JSON.stringify({ username: victim, password: `${victim}-password-long` })),
        });
        await json(url, {
          method: 'PUT',
          path: `/restauth/users/${victim}/props/email`,
          headers: service,
          body: Buffer.from(JSON.stringify({ value: `${victim}@example.com` })),
        });
      }
      for (const [group, member] of [
        ['devs', 'alice'],
        ['qa', 'bob'],
      ]) {
        if (!(await exists(`/restauth/groups/${group}`, service)))
          await json(url, {
            method: 'POST',
            path: '/restauth/groups',
            headers: service,
            body: Buffer.from(JSON.stringify({ group, users: [member] })),
          });
      }
      for (const blob of [config, layer]) {
        const path = `/v2/alice/app/blobs/${digestOf(blob)}`;
        if ((await send(url, { method: 'HEAD', path, headers: bearer })).status !== 200)
          await json(url, {
            method: 'POST',
            path: `/v2/alice/app/blobs/uploads/?digest=${digestOf(blob)}`,
            headers: { ...bearer, 'content-type': 'application/octet-stream' },
            body: blob,
          });
      }
      const tagged = await send(url, { method: 'HEAD', path: '/v2/alice/app/manifests/v1', headers: bearer });
      if (tagged.status !== 200)
        await json(url, {
          method: 'PUT',
          path: '/v2/alice/app/manifests/v1',
          headers: { ...bearer, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
          body: manifest,
        });
      const image = target.fixtures.image;
      if (!image.uploadId || !(await exists(`/v2/alice/app/blobs/uploads/${image.uploadId}`, bearer))) {
        const upload = await send(url, {
          method: 'POST',
          path: '/v2/alice/app/blobs/uploads/',
          headers: bearer,
        });
        image.uploadId = String(upload.headers['docker-upload-uuid']);
      }
      const session = target.fixtures.session;
      if (!session.cookie || !(await exists('/api/v1/user/', { cookie: session.cookie })))
        await renewSession();
    },
    async stop() {
      await server.stop();
      await upstream.stop();
    },
  };
  /** A new API v1 session for alice (after a generated request signed the last one out). */
  async function renewSession(): Promise<void> {
    const csrf = await send(url, { method: 'GET', path: '/csrf_token', headers: {} });
    const cookie = String(csrf.headers['set-cookie']).split(';')[0] as string;
    const token = (JSON.parse(csrf.body.toString()) as { csrf_token: string }).csrf_token;
    const signin = await send(url, {
      method: 'POST',
      path: '/api/v1/signin',
      headers: { ...JSON_TYPE, cookie, 'x-csrf-token': token },
      body: Buffer.from(JSON.stringify({ username: 'alice', password: PASSWORDS.alice })),
    });
    if (signin.status !== 200) throw new Error(`signin: ${signin.status} ${signin.body.toString()}`);
    target.fixtures.session = {
      cookie: String(signin.headers['set-cookie']).split(';')[0] as string,
      csrf: token,
    };
  }
  await target.repair();
  return target;
}
