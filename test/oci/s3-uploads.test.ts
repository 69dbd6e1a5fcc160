import { createHash, randomBytes } from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../server/store/s3-store.ts';
import { type MinioServer, startMinio } from '../support/minio.ts';
import type { TestServer } from '../support/wharf.ts';
import { basic, createUser, startOci } from './support.ts';

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Chunked uploads on real S3 multipart (MinIO enforces the 5 MiB minimum part size), across two replicas. */
describe('OCI uploads on S3 (MinIO)', () => {
  let minio: MinioServer;
  let a: TestServer;
  let b: TestServer;
  let auth: Record<string, string>;

  beforeAll(async () => {
    minio = await startMinio();
    const config = minio.storeConfig(await minio.createBucket());
    const open = () =>
      S3ObjectStore.open(config.s3 as NonNullable<typeof config.s3>, pino({ level: 'silent' }));
    // With S3, generated signing keys are sealed in the bucket: both replicas hold the same key.
    const sealed = { registry: { oci: { signingKeyEncryptionKey: randomBytes(32).toString('base64') } } };
    a = await startOci(sealed, { listen: false, store: await open() });
    b = await startOci(sealed, { listen: false, store: await open() });
    await createUser(a, 'alice', 'alice-password');
    const token = await b.wharf.app.inject({
      method: 'GET',
      url: '/v2/auth?service=wharf&scope=repository:alice/app:pull,push',
      headers: { authorization: basic('alice', 'alice-password') },
    });
    auth = { authorization: `Bearer ${token.json().token}` };
  }, 300_000);
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await minio?.stop();
  });

  it('assembles parts, small chunks and a final body into one verified blob', async () => {
    const chunks = [randomBytes(6 * MiB), randomBytes(2 * MiB), randomBytes(7 * MiB), randomBytes(3 * MiB)];
    const whole = Buffer.concat(chunks);
    const start = await a.wharf.app.inject({
      method: 'POST',
      url: '/v2/alice/app/blobs/uploads/',
      headers: auth,
    });
    expect(start.statusCode).toBe(202);
    let location = String(start.headers.location);
    let offset = 0;
    for (const [index, chunk] of chunks.slice(0, 3).entries()) {
      const replica = index % 2 === 0 ? b : a;
      const patch = await replica.wharf.app.inject({
        method: 'PATCH',
        url: location,
        headers: {
          ...auth,
          'content-type': 'application/octet-stream',
          'content-range': `${offset}-${offset + chunk.length - 1}`,
        },
        payload: chunk,
      });
      expect(patch.statusCode).toBe(202);
      offset += chunk.length;
      location = String(patch.headers.location);
    }
    const last = chunks[3] as Buffer;
    const done = await b.wharf.app.inject({
      method: 'PUT',
      url: `${location}?digest=${sha256(whole)}`,
      headers: {
        ...auth,
        'content-type': 'application/octet-stream',
        'content-range': `${offset}-${offset + last.length - 1}`,
      },
      payload: last,
    });
    expect(done.statusCode).toBe(201);
    const get = await a.wharf.app.inject({
      method: 'GET',
      url: `/v2/alice/app/blobs/${sha256(whole)}`,
      headers: auth,
    });
    expect(get.statusCode).toBe(200);
    expect(get.rawPayload.equals(whole)).toBe(true);
    // No session, pending object or multipart upload is left behind.
    expect((await a.store.list({ prefix: 'oci/uploads/' })).objects).toEqual([]);
    const data = (await a.store.list({ prefix: 'oci/data/' })).objects;
    expect(data.map((object) => object.size)).toEqual([whole.length]);
  }, 120_000);

  it('redirects blob downloads to a presigned S3 URL when the store presigns', async () => {
    const config = minio.storeConfig(await minio.createBucket(), { presignDownloads: true });
    const store = await S3ObjectStore.open(
      config.s3 as NonNullable<typeof config.s3>,
      pino({ level: 'silent' }),
    );
    const server = await startOci(
      { registry: { oci: { signingKeyEncryptionKey: randomBytes(32).toString('base64') } } },
      { listen: false, store },
    );
    try {
      await createUser(server, 'bob', 'bob-password-1');
      const token = await server.wharf.app.inject({
        method: 'GET',
        url: '/v2/auth?service=wharf&scope=repository:bob/app:pull,push',
        headers: { authorization: basic('bob', 'bob-password-1') },
      });
      const headers = { authorization: `Bearer ${token.json().token}` };
      const blob = randomBytes(100_000);
      const pushed = await server.wharf.app.inject({
        method: 'POST',
        url: `/v2/bob/app/blobs/uploads/?digest=${sha256(blob)}`,
        headers: { ...headers, 'content-type': 'application/octet-stream' },
        payload: blob,
      });
      expect(pushed.statusCode).toBe(201);
      const get = await server.wharf.app.inject({
        method: 'GET',
        url: `/v2/bob/app/blobs/${sha256(blob)}`,
        headers,
      });
      expect(get.statusCode).toBe(307);
      expect(get.headers['docker-content-digest']).toBe(sha256(blob));
      const direct = await fetch(String(get.headers.location));
      expect(Buffer.from(await direct.arrayBuffer()).equals(blob)).toBe(true);
      // HEAD and ranged reads are still answered by wharf itself.
      const head = await server.wharf.app.inject({
        method: 'HEAD',
        url: `/v2/bob/app/blobs/${sha256(blob)}`,
        headers,
      });
      expect(head.statusCode).toBe(200);
    } finally {
      await server.stop();
    }
  }, 120_000);
});
