import { randomBytes } from 'node:crypto';
import { type AddressInfo, connect, createServer } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { buffer, text } from 'node:stream/consumers';
import {
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../server/config/load.ts';
import type { S3Config } from '../../server/config/types.ts';
import { readJson, updateJson } from '../../server/store/json-doc.ts';
import { MIN_PART_SIZE, PreconditionFailedError } from '../../server/store/object-store.ts';
import { openStore } from '../../server/store/open.ts';
import { S3ObjectStore, STREAM_PART_SIZE } from '../../server/store/s3-store.ts';
import { type MinioServer, startMinio } from '../support/minio.ts';
import { startS3Gateway } from '../support/s3-gateway.ts';
import { runWharf, startWharfProcess } from '../support/spawn-wharf.ts';
import { runCrashWriter, storeContract } from './contract.ts';

const silent = pino({ level: 'silent' });

// One MinIO for the whole file: the contract suite gets its own bucket, the S3-only tests others.
let minio: MinioServer;
// A cold cache builds MinIO first (hack/minio.sh, minutes on 2 cores); a warm one starts in ~0.5 s.
beforeAll(async () => {
  minio = await startMinio();
}, 20 * 60_000);
afterAll(async () => {
  await minio?.stop();
});

storeContract('s3 (MinIO)', async () => {
  const config = minio.storeConfig(await minio.createBucket());
  const store = await S3ObjectStore.open(config.s3!, silent);
  return { store, config, cleanup: () => store.close() };
});

describe('s3 driver against MinIO', () => {
  let bucket: string;
  const opened: S3ObjectStore[] = [];
  const open = async (overrides: Partial<S3Config> = {}) => {
    const store = await S3ObjectStore.open(minio.storeConfig(bucket, overrides).s3!, silent);
    opened.push(store);
    return store;
  };
  beforeAll(async () => {
    bucket = await minio.createBucket();
  });
  afterAll(async () => {
    for (const store of opened) await store.close();
  });

  const keysInBucket = async (prefix = '') =>
    (
      (await minio.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents ?? []
    ).map((o) => o.Key);

  it('refuses to start behind an S3-compatible gateway that ignores conditional writes', async () => {
    const gateway = await startS3Gateway({ ...minio, dropConditions: 'all' });
    try {
      // First, what such a gateway does: a create-only PUT overwrites, i.e. an update is lost.
      const client = new S3Client({
        endpoint: gateway.endpoint,
        region: minio.region,
        forcePathStyle: true,
        credentials: { accessKeyId: 'anyone', secretAccessKey: 'anything' },
      });
      const put = (body: string) =>
        client.send(
          new PutObjectCommand({ Bucket: bucket, Key: 'gateway/lost', Body: body, IfNoneMatch: '*' }),
        );
      await put('first writer');
      await put('second writer'); // would be 412 on MinIO itself
      client.destroy();
      expect(gateway.droppedConditions()).toBe(2);

      const config = minio.storeConfig(bucket, { endpoint: gateway.endpoint });
      const refused = openStore(config, silent);
      await expect(refused).rejects.toBeInstanceOf(ConfigError);
      await expect(refused).rejects.toThrow(
        `configuration setting "store.s3.endpoint": ${gateway.endpoint} does not honour conditional writes (a second PUT with If-None-Match: * replaced the object`,
      );
      await expect(refused).rejects.toThrow(/lost updates/);
      // The probe cleaned up after itself.
      expect(await keysInBucket('_wharf/')).toEqual([]);
    } finally {
      await gateway.stop();
    }
  });

  it('refuses to start when only CompleteMultipartUpload ignores the conditions', async () => {
    const gateway = await startS3Gateway({ ...minio, dropConditions: 'complete-multipart' });
    try {
      const refused = S3ObjectStore.open(
        minio.storeConfig(bucket, { endpoint: gateway.endpoint }).s3!,
        silent,
      );
      await expect(refused).rejects.toThrow(
        /does not honour conditional writes \(CompleteMultipartUpload with If-None-Match: \* replaced the object/,
      );
      expect(gateway.droppedConditions()).toBeGreaterThan(0);
      expect(await keysInBucket('_wharf/')).toEqual([]);
    } finally {
      await gateway.stop();
    }
  });

  it('counts a conditional put whose answer was lost and retried as done, and no more than once', async () => {
    const gateway = await startS3Gateway({ ...minio, dropConditions: 'none' });
    try {
      const store = await open({ endpoint: gateway.endpoint });
      const key = 'flaky-network/counter.json';
      gateway.loseConditionalAnswers(1);
      const { etag } = await store.put(key, JSON.stringify({ n: 1 }), { ifNoneMatch: '*' });
      expect(gateway.lostAnswers()).toBe(1); // MinIO created it; the SDK retried and got 412
      expect((await store.head(key))?.etag).toBe(etag);

      for (let i = 0; i < 3; i++) {
        gateway.loseConditionalAnswers(1); // the write's first answer; the SDK's retry gets through
        await updateJson<{ n: number }>(store, key, (current) => ({ n: (current?.n ?? 0) + 1 }));
      }
      expect(gateway.lostAnswers()).toBe(4);
      expect((await readJson<{ n: number }>(store, key))?.value.n).toBe(4);

      // The same for a streamed body, whose condition applies when its multipart upload completes.
      const big = randomBytes(9 * 1024 * 1024);
      gateway.loseConditionalAnswers(1);
      const joined = await store.put('flaky-network/big.bin', Readable.from([big]), { ifNoneMatch: '*' });
      expect(gateway.lostAnswers()).toBe(5);
      expect(joined.etag).toMatch(/-2"$/);
      expect((await store.head('flaky-network/big.bin'))?.etag).toBe(joined.etag);

      // A retried write that really lost to another version still fails.
      gateway.loseConditionalAnswers(1);
      await expect(store.put(key, 'someone else', { ifNoneMatch: '*' })).rejects.toBeInstanceOf(
        PreconditionFailedError,
      );
      expect(gateway.lostAnswers()).toBe(6);
    } finally {
      await gateway.stop();
    }
  });

  it('the program exits 2 with the reason when its endpoint ignores conditional writes', async () => {
    const gateway = await startS3Gateway({ ...minio, dropConditions: 'all' });
    try {
      const run = runWharf({
        WHARF_STORE: 's3',
        WHARF_S3_BUCKET: bucket,
        WHARF_S3_ENDPOINT: gateway.endpoint,
        WHARF_S3_FORCE_PATH_STYLE: 'true',
        WHARF_S3_ACCESS_KEY_ID: minio.accessKeyId,
        WHARF_S3_SECRET_ACCESS_KEY: minio.secretAccessKey,
        PORT: '0',
        HOST: '127.0.0.1',
      });
      expect(await run.exit).toBe(2);
      expect(run.output()).toContain(
        `wharf: configuration setting "store.s3.endpoint": ${gateway.endpoint} does not honour conditional writes`,
      );
      expect(run.output()).not.toContain(minio.secretAccessKey);
    } finally {
      await gateway.stop();
    }
  });

  it('the program serves from MinIO configured by environment, credentials from AWS_*', async () => {
    const server = await startWharfProcess({
      WHARF_STORE: 's3',
      WHARF_S3_BUCKET: bucket,
      WHARF_S3_ENDPOINT: minio.endpoint,
      WHARF_S3_FORCE_PATH_STYLE: 'true',
      WHARF_S3_PREFIX: 'program/',
      WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      AWS_ACCESS_KEY_ID: minio.accessKeyId,
      AWS_SECRET_ACCESS_KEY: minio.secretAccessKey,
    });
    try {
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(200);
      await ready.arrayBuffer();
      expect(server.output()).toContain('conditional writes verified');
      expect(server.output()).not.toContain(minio.secretAccessKey);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it('refuses to start on a missing bucket or wrong credentials, naming the bucket', async () => {
    await expect(S3ObjectStore.open(minio.storeConfig('no-such-bucket-here').s3!, silent)).rejects.toThrow(
      `configuration setting "store.s3.bucket": cannot use bucket "no-such-bucket-here" at ${minio.endpoint}: the bucket does not exist`,
    );
    await expect(
      S3ObjectStore.open(minio.storeConfig(bucket, { secretAccessKey: 'wrong-secret-key' }).s3!, silent),
    ).rejects.toThrow(/cannot use bucket .* access denied/);
  });

  it('takes credentials from the AWS_* environment when the configuration has none', async () => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = minio.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = minio.secretAccessKey;
    try {
      const store = await open({ accessKeyId: undefined, secretAccessKey: undefined });
      await store.put('env-credentials', 'ok');
      expect(await text((await store.get('env-credentials'))!.body)).toBe('ok');
    } finally {
      for (const [name, value] of [
        ['AWS_ACCESS_KEY_ID', saved.id],
        ['AWS_SECRET_ACCESS_KEY', saved.secret],
      ] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('hands out presigned GET URLs that plain fetch can download, only when enabled', async () => {
    const store = await open({ presignDownloads: true });
    const data = randomBytes(100_000);
    await store.put('presigned/blob.bin', data, { contentType: 'application/octet-stream' });
    const url = await store.presignGet('presigned/blob.bin', 60);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/.*X-Amz-Signature=/);
    const response = await fetch(url!);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(data)).toBe(true);
    const ranged = await fetch(url!, { headers: { Range: 'bytes=10-19' } });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(data.subarray(10, 20))).toBe(true);
    // The signature covers the key: the same URL pointed at another object is refused.
    const tampered = await fetch(url!.replace('blob.bin', 'other.bin'));
    expect(tampered.status).toBe(403);
    await tampered.arrayBuffer();

    const plain = await open({ presignDownloads: false });
    expect(await plain.presignGet('presigned/blob.bin', 60)).toBeNull();
  });

  it('streams bodies of unknown length that end on a part boundary, or one byte past it, whole', async () => {
    const store = await open();
    for (const size of [2 * STREAM_PART_SIZE, 3 * STREAM_PART_SIZE, 2 * STREAM_PART_SIZE + 1]) {
      const data = randomBytes(size);
      async function* chunks() {
        for (let offset = 0; offset < data.length; offset += 1024 * 1024)
          yield data.subarray(offset, offset + 1024 * 1024);
      }
      await store.put(`boundary/${size}.bin`, Readable.from(chunks()));
      const object = await store.get(`boundary/${size}.bin`);
      expect(object?.size).toBe(size);
      expect((await buffer(object!.body)).equals(data)).toBe(true);
    }
  });

  it('copies a big download through a socket, whole or ranged, to a slow reader, pinned to its version', async () => {
    const store = await open();
    const data = randomBytes(20 * 1024 * 1024 + 123);
    await store.put('download/big.bin', data);
    const collect = (slow: boolean) => {
      const chunks: Buffer[] = [];
      const sink = new Writable({
        highWaterMark: 1,
        write(chunk: Buffer, _encoding, done) {
          chunks.push(Buffer.from(chunk)); // the driver reuses its buffers once a write is done
          if (slow) setTimeout(done, 2);
          else done();
        },
      });
      return { sink, bytes: () => Buffer.concat(chunks) };
    };
    const whole = await store.get('download/big.bin');
    expect(whole?.copyTo).toBeTypeOf('function');
    const slow = collect(true);
    await whole!.copyTo!(slow.sink);
    expect(slow.bytes().equals(data)).toBe(true);
    const end = 9 * 1024 * 1024;
    const ranged = await store.get('download/big.bin', { range: { start: 1000, end } });
    const part = collect(false);
    await ranged!.copyTo!(part.sink);
    expect(part.bytes().equals(data.subarray(1000, end + 1))).toBe(true);
    // Replaced between the open and the copy: an error, never bytes of the other version.
    const stale = await store.get('download/big.bin');
    stale!.body.destroy(); // MinIO holds a write back while a read of the object is open
    await store.put('download/big.bin', randomBytes(data.length));
    const replaced = collect(false);
    await expect(stale!.copyTo!(replaced.sink)).rejects.toThrow(/412/);
    expect(replaced.bytes().length).toBe(0);
    // Small objects stream through the SDK.
    await store.put('download/small.bin', randomBytes(1000));
    expect((await store.get('download/small.bin'))?.copyTo).toBeUndefined();
  });

  it('signs download URLs for the public endpoint when clients reach S3 at another address', async () => {
    // An ingress in front of MinIO: a plain TCP forwarder on another port.
    const ingress = createServer((socket) => {
      const upstream = connect(Number(new URL(minio.endpoint).port), '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => ingress.listen(0, '127.0.0.1', resolve));
    const publicEndpoint = `http://127.0.0.1:${(ingress.address() as AddressInfo).port}`;
    try {
      const store = await open({ presignDownloads: true, publicEndpoint });
      await store.put('presigned/public.txt', 'through the ingress');
      const url = await store.presignGet('presigned/public.txt', 60);
      expect(url!.startsWith(`${publicEndpoint}/`)).toBe(true);
      const response = await fetch(url!);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe('through the ingress');
    } finally {
      ingress.close();
    }
  });

  it('keeps every key under the configured prefix and shows keys without it', async () => {
    const tenant = await open({ prefix: 'tenant-a/wharf/' });
    const other = await open({ prefix: 'tenant-b/' });
    await tenant.put('users/alice.json', '{"name":"alice"}');
    await tenant.put('users/bob.json', '{"name":"bob"}');
    await tenant.put('blobs/sha256/ab', 'blob');

    expect(await keysInBucket('tenant-a/')).toEqual([
      'tenant-a/wharf/blobs/sha256/ab',
      'tenant-a/wharf/users/alice.json',
      'tenant-a/wharf/users/bob.json',
    ]);
    const head = await minio.client.send(
      new HeadObjectCommand({ Bucket: bucket, Key: 'tenant-a/wharf/users/alice.json' }),
    );
    expect(head.ETag).toBe((await tenant.head('users/alice.json'))!.etag);

    const listed = await tenant.list({ delimiter: '/' });
    expect(listed.prefixes).toEqual(['blobs/', 'users/']);
    expect(
      (await tenant.list({ prefix: 'users/', startAfter: 'users/alice.json' })).objects.map((o) => o.key),
    ).toEqual(['users/bob.json']);
    expect(await other.get('users/alice.json')).toBeNull();
    expect((await other.list()).objects).toEqual([]);
    await tenant.delete('users/alice.json');
    expect(await keysInBucket('tenant-a/wharf/users/')).toEqual(['tenant-a/wharf/users/bob.json']);
  });

  it('uploads a multipart part of at least 5 MiB streamed from a Readable, sized or not', async () => {
    const store = await open();
    const key = 'multipart/streamed.bin';
    const part1 = randomBytes(MIN_PART_SIZE + 123);
    const part2 = randomBytes(MIN_PART_SIZE + 7);
    const part3 = randomBytes(1000);
    const stream = (data: Buffer) =>
      Readable.from(
        (function* () {
          for (let offset = 0; offset < data.length; offset += 64 * 1024)
            yield data.subarray(offset, offset + 64 * 1024);
        })(),
      );
    const uploadId = await store.createMultipart(key, { contentType: 'application/octet-stream' });
    const first = await store.uploadPart(key, uploadId, 1, stream(part1), part1.length);
    const second = await store.uploadPart(key, uploadId, 2, stream(part2)); // no length: spooled to disk
    // A part stream that ends short of its announced length is cut off, not left hanging.
    await expect(store.uploadPart(key, uploadId, 3, stream(part3), part3.length + 1)).rejects.toThrow(
      /expected 1001/,
    );
    const third = await store.uploadPart(key, uploadId, 3, stream(part3), part3.length);
    await store.completeMultipart(key, uploadId, [
      { partNumber: 1, etag: first.etag },
      { partNumber: 2, etag: second.etag },
      { partNumber: 3, etag: third.etag },
    ]);
    const object = await store.get(key);
    expect(object?.size).toBe(part1.length + part2.length + part3.length);
    expect(object?.contentType).toBe('application/octet-stream');
    expect((await buffer(object!.body)).equals(Buffer.concat([part1, part2, part3]))).toBe(true);
  });

  it('shows nothing of a multipart put whose process was killed after sending parts', async () => {
    const key = 'crash/multipart.bin';
    const config = minio.storeConfig(bucket);
    const signal = await runCrashWriter(config, key, {
      sendBytes: 26 * 1024 * 1024,
      totalBytes: 64 * 1024 * 1024,
    });
    expect(signal).toBe('SIGKILL');
    const store = await open();
    expect(await store.head(key)).toBeNull();
    // The parts it had sent wait, invisible, in an upload that the lifecycle rule removes.
    const uploads = await minio.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
    expect(uploads.Uploads?.map((u) => u.Key)).toEqual([key]);
  });

  it('streams a large body of unknown length with memory flat in its size', async () => {
    const store = await open();
    const total = 256 * 1024 * 1024;
    const chunk = randomBytes(256 * 1024);
    let produced = 0;
    let peak = 0;
    const baseline = process.memoryUsage().arrayBuffers;
    const body = new Readable({
      read() {
        peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline);
        if (produced >= total) this.push(null);
        else {
          produced += chunk.length;
          this.push(chunk);
        }
      },
    });
    const { etag } = await store.put('big/unsized.bin', body);
    const info = await store.head('big/unsized.bin');
    expect(info).toMatchObject({ size: total, etag });
    expect(etag).toMatch(/-\d+"$/); // completed as a multipart upload
    // About three 8 MiB parts are live at once, plus garbage that V8 collects once external memory
    // passes its 64 MiB trigger; a driver that buffered the body would hold all 256 MiB.
    expect(peak).toBeLessThan(128 * 1024 * 1024);
    console.log(
      `streamed ${total / 2 ** 20} MiB; peak extra buffer memory ${(peak / 2 ** 20).toFixed(1)} MiB`,
    );
  });
});
