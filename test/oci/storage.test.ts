import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { InjectOptions } from 'light-my-request';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessPolicy } from '../../server/access/policy.ts';
import { CredentialResolver } from '../../server/identity/credential-resolver.ts';
import type { IdentityClient } from '../../server/identity/principal.ts';
import { Metrics } from '../../server/observability/metrics.ts';
import { startMaintenance } from '../../server/registry/oci/gc.ts';
import { RobotStore } from '../../server/registry/oci/robots.ts';
import { createOciServices } from '../../server/registry/oci/services.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import type { TestServer } from '../support/wharf.ts';
import { basic, createUser, startOci } from './support.ts';

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Upload sessions, content addressing and GC, on two "replicas" sharing one store. */
describe('OCI storage', () => {
  let dir: string;
  let a: TestServer;
  let b: TestServer;
  let auth: Record<string, string>;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'wharf-oci-shared-'));
    const store = await FsObjectStore.open(dir);
    const gc = {
      registry: {
        oci: {
          gc: { enabled: false, graceHours: 1, deleteUntagged: true, untaggedRetentionHours: 2 },
          uploadExpiryHours: 2,
          // What one replica deletes (GC), the other must stop serving at once here; the bound of
          // the default cache is tested in test/oci/replica-cache.test.ts.
          metadataCacheMillis: 0,
        },
      },
    };
    a = await startOci(gc, { listen: false, store });
    b = await startOci(gc, { listen: false, store });
    await createUser(a, 'alice', 'alice-password');
    const token = await a.wharf.app.inject({
      method: 'GET',
      url: '/v2/auth?service=wharf&scope=repository:alice/app:pull,push,delete',
      headers: { authorization: basic('alice', 'alice-password') },
    });
    auth = { authorization: `Bearer ${token.json().token}` };
  });

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const on = (server: TestServer, options: InjectOptions) =>
    server.wharf.app.inject({ ...options, headers: { ...auth, ...(options.headers as object) } });

  it('continues a chunked upload on another replica, across multipart part boundaries', async () => {
    const chunks = [randomBytes(6 * MiB), randomBytes(3 * MiB), randomBytes(9 * MiB), randomBytes(1234)];
    const whole = Buffer.concat(chunks);
    const start = await on(a, { method: 'POST', url: '/v2/alice/app/blobs/uploads/' });
    expect(start.statusCode).toBe(202);
    let location = String(start.headers.location);
    let offset = 0;
    for (const [index, chunk] of chunks.slice(0, 3).entries()) {
      const replica = index % 2 === 0 ? a : b;
      const patch = await on(replica, {
        method: 'PATCH',
        url: location,
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${offset}-${offset + chunk.length - 1}`,
        },
        payload: chunk,
      });
      expect(patch.statusCode).toBe(202);
      offset += chunk.length;
      expect(patch.headers.range).toBe(`0-${offset - 1}`);
      location = String(patch.headers.location);
    }
    // A chunk that does not start at the current offset is refused with 416 and the current range.
    const stale = await on(a, {
      method: 'PATCH',
      url: location,
      headers: { 'content-type': 'application/octet-stream', 'content-range': '0-9' },
      payload: Buffer.alloc(10),
    });
    expect(stale.statusCode).toBe(416);
    expect(stale.headers.range).toBe(`0-${offset - 1}`);
    const status = await on(b, { method: 'GET', url: location });
    expect(status.statusCode).toBe(204);
    expect(status.headers.range).toBe(`0-${offset - 1}`);
    const last = chunks[3] as Buffer;
    const done = await on(a, {
      method: 'PUT',
      url: `${location}?digest=${sha256(whole)}`,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(last.length) },
      payload: last,
    });
    expect(done.statusCode).toBe(201);
    const get = await on(b, { method: 'GET', url: `/v2/alice/app/blobs/${sha256(whole)}` });
    expect(get.statusCode).toBe(200);
    expect(get.rawPayload.equals(whole)).toBe(true);
    const range = await on(a, {
      method: 'GET',
      url: `/v2/alice/app/blobs/${sha256(whole)}`,
      headers: { range: 'bytes=100-199' },
    });
    expect(range.statusCode).toBe(206);
    expect(range.headers['content-range']).toBe(`bytes 100-199/${whole.length}`);
    expect(range.rawPayload.equals(whole.subarray(100, 200))).toBe(true);
  });

  it('publishes nothing when the digest does not match, and keeps one copy of identical content', async () => {
    const data = randomBytes(1000);
    const wrong = await on(a, {
      method: 'POST',
      url: `/v2/alice/app/blobs/uploads/?digest=${sha256(Buffer.from('other'))}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: data,
    });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().errors[0].code).toBe('DIGEST_INVALID');
    expect((await on(a, { method: 'HEAD', url: `/v2/alice/app/blobs/${sha256(data)}` })).statusCode).toBe(
      404,
    );
    for (const server of [a, b]) {
      const ok = await on(server, {
        method: 'POST',
        url: `/v2/alice/app/blobs/uploads/?digest=${sha256(data)}`,
        headers: { 'content-type': 'application/octet-stream' },
        payload: data,
      });
      expect(ok.statusCode).toBe(201);
    }
    const listed = await a.store.list({ prefix: 'oci/data/' });
    const copies = [];
    for (const object of listed.objects) if (object.size === data.length) copies.push(object.key);
    expect(copies).toHaveLength(1);
    const head = await on(b, { method: 'HEAD', url: `/v2/alice/app/blobs/${sha256(data)}` });
    expect(head.headers['content-length']).toBe(String(data.length));
    expect(head.headers['docker-content-digest']).toBe(sha256(data));
  });

  it('serves an API v1 session created on one replica from the other', async () => {
    const csrf = await a.wharf.app.inject({ method: 'GET', url: '/csrf_token' });
    const first = String(csrf.headers['set-cookie']).split(';')[0] as string;
    const signin = await a.wharf.app.inject({
      method: 'POST',
      url: '/api/v1/signin',
      headers: { cookie: first, 'x-csrf-token': csrf.json().csrf_token },
      payload: { username: 'alice', password: 'alice-password' },
    });
    expect(signin.statusCode).toBe(200);
    const cookie = String(signin.headers['set-cookie']).split(';')[0] as string;
    const me = await b.wharf.app.inject({ method: 'GET', url: '/api/v1/user/', headers: { cookie } });
    expect(me.statusCode).toBe(200);
    expect(me.json().username).toBe('alice');
  });

  it('expires abandoned uploads and collects untagged manifests and unreferenced blobs after the grace period', async () => {
    const layer = randomBytes(4096);
    const config = Buffer.from('{"architecture":"amd64"}');
    for (const blob of [layer, config]) {
      await on(a, {
        method: 'POST',
        url: `/v2/alice/app/blobs/uploads/?digest=${sha256(blob)}`,
        headers: { 'content-type': 'application/octet-stream' },
        payload: blob,
      });
    }
    const manifest = (layers: Buffer[]) =>
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: {
            mediaType: 'application/vnd.oci.image.config.v1+json',
            digest: sha256(config),
            size: config.length,
          },
          layers: layers.map((l) => ({
            mediaType: 'application/vnd.oci.image.layer.v1.tar',
            digest: sha256(l),
            size: l.length,
          })),
        }),
      );
    const tagged = manifest([]);
    const untagged = manifest([layer]);
    await on(a, {
      method: 'PUT',
      url: '/v2/alice/app/manifests/keep',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      payload: tagged,
    });
    await on(a, {
      method: 'PUT',
      url: `/v2/alice/app/manifests/${sha256(untagged)}`,
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      payload: untagged,
    });
    const abandoned = await on(a, { method: 'POST', url: '/v2/alice/app/blobs/uploads/' });
    await on(a, {
      method: 'PATCH',
      url: String(abandoned.headers.location),
      headers: { 'content-type': 'application/octet-stream' },
      payload: randomBytes(100),
    });

    // Within the grace period GC touches nothing.
    const early = await gcNow(b, Date.now());
    expect(early.deletedManifests + early.deletedBlobs + early.expiredUploads).toBe(0);

    const later = await gcNow(b, Date.now() + 3 * 3_600_000);
    expect(later.expiredUploads).toBeGreaterThanOrEqual(1);
    expect(later.deletedManifests).toBeGreaterThanOrEqual(1);
    expect(later.deletedBlobs).toBeGreaterThanOrEqual(1);
    expect(
      (await on(a, { method: 'GET', url: `/v2/alice/app/manifests/${sha256(untagged)}` })).statusCode,
    ).toBe(404);
    expect((await on(a, { method: 'HEAD', url: `/v2/alice/app/blobs/${sha256(layer)}` })).statusCode).toBe(
      404,
    );
    expect((await on(a, { method: 'GET', url: String(abandoned.headers.location) })).statusCode).toBe(404);
    // What the tag reaches survives.
    expect((await on(a, { method: 'GET', url: '/v2/alice/app/manifests/keep' })).statusCode).toBe(200);
    expect(
      (await on(a, { method: 'GET', url: `/v2/alice/app/blobs/${sha256(config)}` })).rawPayload.equals(
        config,
      ),
    ).toBe(true);
  });
});

/** A GC run as a third replica would do it, over the same store, at a chosen time. */
async function gcNow(server: TestServer, now: number) {
  const identity: IdentityClient = {
    verifyPassword: async () => null,
    verifyToken: async () => null,
    revalidate: async () => null,
    userExists: async () => false,
    groupExists: async () => false,
    groupMembers: async () => [],
  };
  const services = await createOciServices({
    settings: server.config.registry.oci,
    publicUrl: undefined,
    store: server.store,
    identity,
    resolver: new CredentialResolver(identity, { cacheSeconds: 0, metrics: new Metrics() }),
    policy: new AccessPolicy({ superusers: [], anonymousPull: false, cargoAuthRequired: false }),
    robots: new RobotStore(server.store),
    metrics: new Metrics(),
    logger: pino({ level: 'silent' }),
  });
  const maintenance = startMaintenance(services);
  try {
    return await maintenance.runOnce(now);
  } finally {
    maintenance.stop();
  }
}

describe('OCI size limits and names', () => {
  let server: TestServer;
  let auth: Record<string, string>;
  beforeAll(async () => {
    server = await startOci(
      { registry: { oci: { maxBlobBytes: 1024 * 1024, maxManifestBytes: 1024 } } },
      { listen: false },
    );
    await createUser(server, 'alice', 'alice-password');
    const token = await server.wharf.app.inject({
      method: 'GET',
      url: '/v2/auth?service=wharf&scope=repository:alice/app:pull,push',
      headers: { authorization: basic('alice', 'alice-password') },
    });
    auth = { authorization: `Bearer ${token.json().token}` };
  });
  afterAll(async () => server?.stop());

  it('refuses blobs and manifests over the limits with 413 SIZE_INVALID, and publishes nothing', async () => {
    const big = randomBytes(1024 * 1024 + 1);
    const blob = await server.wharf.app.inject({
      method: 'POST',
      url: `/v2/alice/app/blobs/uploads/?digest=${sha256(big)}`,
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      payload: big,
    });
    expect(blob.statusCode).toBe(413);
    expect(blob.json().errors[0].code).toBe('SIZE_INVALID');
    expect(
      (
        await server.wharf.app.inject({
          method: 'HEAD',
          url: `/v2/alice/app/blobs/${sha256(big)}`,
          headers: auth,
        })
      ).statusCode,
    ).toBe(404);
    const manifest = await server.wharf.app.inject({
      method: 'PUT',
      url: '/v2/alice/app/manifests/big',
      headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      payload: Buffer.alloc(2048, 32),
    });
    expect(manifest.statusCode).toBe(413);
  });

  it('answers NAME_INVALID for names outside the grammar and DIGEST_INVALID for bad digests', async () => {
    const name = await server.wharf.app.inject({
      method: 'GET',
      url: '/v2/Alice/App/tags/list',
      headers: auth,
    });
    expect(name.statusCode).toBe(400);
    expect(name.json().errors[0].code).toBe('NAME_INVALID');
    const digest = await server.wharf.app.inject({
      method: 'GET',
      url: '/v2/alice/app/blobs/sha256:abc',
      headers: auth,
    });
    expect(digest.statusCode).toBe(400);
    expect(digest.json().errors[0].code).toBe('DIGEST_INVALID');
  });
});
