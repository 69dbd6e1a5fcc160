import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrape } from '../support/metrics.ts';
import { type MinioServer, startMinio } from '../support/minio.ts';
import { startWharfProcess, type WharfProcess } from '../support/spawn-wharf.ts';

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/**
 * registry.oci.blobCache on a real wharf process in front of MinIO: what a second pull of a layer
 * costs the bucket (counted by the store's own request metric), what the cache keeps, and what it
 * refuses to keep.
 */
describe('local blob cache in front of S3', () => {
  let minio: MinioServer;
  let bucket: string;
  let cacheDir: string;
  let wharf: WharfProcess;
  let env: Record<string, string>;
  let auth: Record<string, string>;

  beforeAll(async () => {
    minio = await startMinio();
    bucket = await minio.createBucket();
    cacheDir = await mkdtemp(path.join(tmpdir(), 'wharf-blob-cache-'));
    env = {
      ...minio.wharfEnv(bucket),
      WHARF_SIGNUP: 'open',
      WHARF_OCI_GC_ENABLED: 'false',
      WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      WHARF_OCI_BLOB_CACHE_DIR: cacheDir,
      WHARF_OCI_BLOB_CACHE_MAX_BYTES: String(20 * MiB),
    };
    wharf = await startWharfProcess(env);
    const signup = await fetch(`${wharf.url}/ktra/api/v1/new_user/alice`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'alice-password' }),
    });
    expect(signup.status).toBe(200);
    auth = await tokenFor(wharf);
  }, 120_000);

  afterAll(async () => {
    await wharf?.stop();
    await minio?.stop();
    await rm(cacheDir, { recursive: true, force: true });
  });

  async function tokenFor(server: WharfProcess): Promise<Record<string, string>> {
    const response = await fetch(`${server.url}/v2/auth?service=wharf&scope=repository:alice/app:pull,push`, {
      headers: { authorization: `Basic ${Buffer.from('alice:alice-password').toString('base64')}` },
    });
    return { authorization: `Bearer ${((await response.json()) as { token: string }).token}` };
  }

  async function push(bytes: number): Promise<{ data: Buffer; digest: string }> {
    const data = randomBytes(bytes);
    const digest = sha256(data);
    const response = await fetch(`${wharf.url}/v2/alice/app/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: data,
    });
    expect(response.status).toBe(201);
    return { data, digest };
  }

  async function pull(digest: string, headers: Record<string, string> = {}) {
    const response = await fetch(`${wharf.url}/v2/alice/app/blobs/${digest}`, {
      headers: { ...auth, ...headers },
    });
    return { status: response.status, body: Buffer.from(await response.arrayBuffer()) };
  }

  async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return (await scrape(wharf.metricsUrl as string)).value(name, labels);
  }

  /** Waits until the background copies have run `count` times in all (stored or not). */
  async function copiesDone(count: number): Promise<void> {
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
      if ((await metric('wharf_oci_blob_cache_copies_total')) >= count) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`fewer than ${count} copies into the cache`);
  }

  const storeGets = () => metric('wharf_store_operation_duration_seconds_count', { operation: 'get' });

  it('serves the second pull of a layer from local disk, whole or by range, without a store request', async () => {
    const { data, digest } = await push(8 * MiB);
    const first = await pull(digest);
    expect(first.status).toBe(200);
    expect(first.body.equals(data)).toBe(true);
    await copiesDone(1);
    expect(await metric('wharf_oci_blob_cache_copies_total', { result: 'stored' })).toBe(1);

    const before = await storeGets();
    const second = await pull(digest);
    expect(second.status).toBe(200);
    expect(second.body.equals(data)).toBe(true);
    const range = await pull(digest, { range: 'bytes=1000-1999' });
    expect(range.status).toBe(206);
    expect(range.body.equals(data.subarray(1000, 2000))).toBe(true);
    expect(await storeGets()).toBe(before);
    expect(await metric('wharf_oci_blob_cache_reads_total', { result: 'hit' })).toBe(2);
    expect(await metric('wharf_oci_blob_cache_bytes')).toBe(8 * MiB);
  });

  it('never keeps bytes that do not match their digest, and keeps serving what the bucket holds', async () => {
    const { data, digest } = await push(4 * MiB);
    // Behind wharf's back: the bucket's copy of the blob is replaced by other bytes of the same size.
    const pointer = await minio.client.send(
      new GetObjectCommand({ Bucket: bucket, Key: `oci/blobs/sha256/${digest.slice('sha256:'.length)}` }),
    );
    const { dataKey } = JSON.parse(await pointer.Body!.transformToString()) as { dataKey: string };
    const other = randomBytes(data.length);
    await minio.client.send(new PutObjectCommand({ Bucket: bucket, Key: dataKey, Body: other }));
    const copies = await metric('wharf_oci_blob_cache_copies_total');

    const first = await pull(digest);
    expect(first.status).toBe(200);
    expect(first.body.equals(other)).toBe(true); // the client's digest check is what catches it
    await copiesDone(copies + 1);
    expect(await metric('wharf_oci_blob_cache_copies_total', { result: 'digest_mismatch' })).toBe(1);
    const before = await storeGets();
    expect((await pull(digest)).body.equals(other)).toBe(true);
    expect(await storeGets()).toBe(before + 1); // from the bucket, and not copied a second time
    expect(await metric('wharf_oci_blob_cache_copies_total')).toBe(copies + 1);
  });

  it('drops the least recently pulled blobs beyond maxBytes, and a restart keeps the rest', async () => {
    // 20 MiB allowed; the 8 MiB blob of the first test is in the cache already.
    const a = await push(6 * MiB);
    const b = await push(6 * MiB);
    let copies = await metric('wharf_oci_blob_cache_copies_total');
    for (const blob of [a, b]) {
      await pull(blob.digest);
      await copiesDone(++copies);
    }
    expect(await metric('wharf_oci_blob_cache_bytes')).toBe(20 * MiB);
    const c = await push(6 * MiB);
    await pull(c.digest); // 26 MiB: the 8 MiB blob, pulled longest ago, goes
    await copiesDone(++copies);
    expect(await metric('wharf_oci_blob_cache_bytes')).toBe(18 * MiB);
    expect((await readdir(path.join(cacheDir, 'objects', 'sha256'))).length).toBe(3);

    await wharf.stop();
    wharf = await startWharfProcess(env);
    auth = await tokenFor(wharf);
    expect(await metric('wharf_oci_blob_cache_bytes')).toBe(18 * MiB);
    for (const blob of [a, b, c]) expect((await pull(blob.digest)).body.equals(blob.data)).toBe(true);
    expect(await metric('wharf_oci_blob_cache_reads_total', { result: 'hit' })).toBe(3);
    expect(await metric('wharf_oci_blob_cache_reads_total', { result: 'miss' })).toBe(0);
  });

  it('reads a blob from the bucket again when its cached file was cut short on disk', async () => {
    const { data, digest } = await push(2 * MiB);
    const copies = await metric('wharf_oci_blob_cache_copies_total');
    await pull(digest);
    await copiesDone(copies + 1);
    await truncate(path.join(cacheDir, 'objects', 'sha256', `${digest.slice('sha256:'.length)}%obj`), 1000);
    const misses = await metric('wharf_oci_blob_cache_reads_total', { result: 'miss' });
    const again = await pull(digest);
    expect(again.status).toBe(200);
    expect(again.body.equals(data)).toBe(true);
    expect(await metric('wharf_oci_blob_cache_reads_total', { result: 'miss' })).toBe(misses + 1);
    await copiesDone(copies + 2); // and copied anew
    expect((await pull(digest)).body.equals(data)).toBe(true);
  });
});
