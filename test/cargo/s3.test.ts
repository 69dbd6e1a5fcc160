import { createHash, randomBytes } from 'node:crypto';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MinioServer, startMinio } from '../support/minio.ts';
import { startWharfProcess, type WharfProcess } from '../support/spawn-wharf.ts';
import { metadata, publishBody, simpleCrate } from './crate-file.ts';

/** Two real server processes on one MinIO bucket: the "nothing lost" guarantee under contention. */
let minio: MinioServer;
let bucket: string;
let first: WharfProcess;
let second: WharfProcess;

beforeAll(async () => {
  minio = await startMinio();
  bucket = await minio.createBucket();
  const env = {
    ...minio.wharfEnv(bucket),
    WHARF_SIGNUP: 'open',
    // Both processes seal and open the generated token signing key with the same key.
    WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  };
  [first, second] = await Promise.all([
    startWharfProcess(env),
    startWharfProcess({ ...env, WHARF_S3_PRESIGN_DOWNLOADS: 'true' }),
  ]);
}, 180_000);
afterAll(async () => {
  await Promise.all([first?.stop(), second?.stop()]);
  await minio?.stop();
});

describe('cargo on S3 (MinIO)', () => {
  it('keeps all 50 index lines when two processes take 50 concurrent publishes of one crate', {
    timeout: 180_000,
  }, async () => {
    const signup = await fetch(`${first.url}/ktra/api/v1/new_user/alice`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'correct horse battery staple' }),
    });
    const { token } = (await signup.json()) as { token: string };
    const publish = async (url: string, version: string) => {
      const res = await fetch(`${url}/api/v1/crates/new`, {
        method: 'PUT',
        headers: { authorization: token },
        body: publishBody(metadata('contended', version), await simpleCrate('contended', version)),
      });
      return `${res.status} ${res.status === 200 ? '' : await res.text()}`.trim();
    };
    expect(await publish(first.url, '0.0.0')).toBe('200');
    const statuses = await Promise.all(
      Array.from({ length: 50 }, (_, i) => publish(i % 2 === 0 ? first.url : second.url, `1.0.${i}`)),
    );
    expect(statuses.filter((s) => s !== '200')).toEqual([]);
    // A replica trusts an index ETag for registry.cargo.indexRevalidateMillis (500 ms) unless it made
    // the change itself: after that bound, every replica serves every line.
    await new Promise((resolve) => setTimeout(resolve, 600));
    for (const server of [first, second]) {
      const lines = (await (await fetch(`${server.url}/index/co/nt/contended`)).text()).trim().split('\n');
      expect(lines).toHaveLength(51);
      expect(new Set(lines.map((l) => JSON.parse(l).vers)).size).toBe(51);
    }
    const listed = await minio.client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: 'cargo/crates/contended/' }),
    );
    expect(listed.KeyCount).toBe(51);

    // Downloads: streamed by the first process, redirected to a presigned MinIO URL by the second.
    const line = JSON.parse(
      (await (await fetch(`${first.url}/index/co/nt/contended`)).text()).split('\n')[0] ?? '',
    );
    const direct = await fetch(`${first.url}/api/v1/crates/contended/0.0.0/download`);
    expect(
      createHash('sha256')
        .update(Buffer.from(await direct.arrayBuffer()))
        .digest('hex'),
    ).toBe(line.cksum);
    const redirect = await fetch(`${second.url}/api/v1/crates/contended/0.0.0/download`, {
      redirect: 'manual',
    });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toContain(minio.endpoint);
    const viaS3 = await fetch(redirect.headers.get('location') ?? '');
    expect(
      createHash('sha256')
        .update(Buffer.from(await viaS3.arrayBuffer()))
        .digest('hex'),
    ).toBe(line.cksum);
  });
});
