// Object store benchmark: the s3 driver against MinIO beside the raw AWS SDK on the same MinIO (its
// floor), and the fs driver. Run: `npx node bench/store.ts` (starts its own MinIO on 127.0.0.1).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import pino from 'pino';
import { FsObjectStore } from '../server/store/fs-store.ts';
import { updateJson } from '../server/store/json-doc.ts';
import type { ObjectStore } from '../server/store/object-store.ts';
import { S3ObjectStore } from '../server/store/s3-store.ts';
import { startMinio } from '../test/support/minio.ts';

const BIG = 128 * 1024 * 1024;
const SMALL_OPS = 300;
const chunk = randomBytes(256 * 1024);

function stream(total: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) this.push(null);
      else {
        sent += chunk.length;
        this.push(chunk);
      }
    },
  });
}

async function drain(body: Readable): Promise<number> {
  let bytes = 0;
  for await (const piece of body) bytes += (piece as Buffer).length;
  return bytes;
}

async function timed<T>(action: () => Promise<T>): Promise<number> {
  const start = process.hrtime.bigint();
  await action();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const mibps = (bytes: number, ms: number) => bytes / 2 ** 20 / (ms / 1000);

async function smallOps(store: ObjectStore, label: string): Promise<Record<string, string>> {
  const latencies: number[] = [];
  for (let i = 0; i < SMALL_OPS; i++) {
    latencies.push(await timed(() => store.put(`bench/${label}/small-${i % 50}`, randomBytes(1024))));
  }
  const counter = `bench/${label}/counter.json`;
  const sequential = await timed(async () => {
    for (let i = 0; i < 100; i++) await updateJson<number>(store, counter, (n) => (n ?? 0) + 1);
  });
  const concurrent = await timed(() =>
    Promise.all(
      Array.from({ length: 20 }, async () => {
        for (let i = 0; i < 5; i++)
          await updateJson<number>(store, counter, (n) => (n ?? 0) + 1, { attempts: 500 });
      }),
    ),
  );
  return {
    'put 1 KiB p50 ms': percentile(latencies, 50).toFixed(2),
    'put 1 KiB p99 ms': percentile(latencies, 99).toFixed(2),
    'updateJson sequential /s': (100 / (sequential / 1000)).toFixed(0),
    'updateJson 20 writers on one key /s': (100 / (concurrent / 1000)).toFixed(0),
  };
}

const minio = await startMinio();
const bucket = await minio.createBucket();
const s3 = await S3ObjectStore.open(minio.storeConfig(bucket).s3!, pino({ level: 'silent' }));
const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-bench-'));
const fs = await FsObjectStore.open(dataDir);
try {
  const payload = randomBytes(BIG);
  const sdkPut = await timed(() =>
    minio.client.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'bench/sdk.bin', Body: payload, ContentLength: BIG }),
    ),
  );
  const sdkGet = await timed(async () => {
    const result = await minio.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'bench/sdk.bin' }));
    await drain(result.Body as Readable);
  });
  const driverPut = await timed(() => s3.put('bench/driver.bin', stream(BIG)));
  const driverGet = await timed(async () => drain((await s3.get('bench/driver.bin'))!.body));
  const fsPut = await timed(() => fs.put('bench/driver.bin', stream(BIG)));
  const fsGet = await timed(async () => drain((await fs.get('bench/driver.bin'))!.body));

  console.log(`\n128 MiB object (MiB/s; ratio = driver / raw SDK on the same MinIO)`);
  console.table({
    'put, stream of unknown length': {
      's3 driver': mibps(BIG, driverPut).toFixed(0),
      'raw SDK (one PutObject of a Buffer)': mibps(BIG, sdkPut).toFixed(0),
      ratio: (sdkPut / driverPut).toFixed(2),
      'fs driver': mibps(BIG, fsPut).toFixed(0),
    },
    get: {
      's3 driver': mibps(BIG, driverGet).toFixed(0),
      'raw SDK (one PutObject of a Buffer)': mibps(BIG, sdkGet).toFixed(0),
      ratio: (sdkGet / driverGet).toFixed(2),
      'fs driver': mibps(BIG, fsGet).toFixed(0),
    },
  });
  console.log(`\nsmall objects and read-modify-write (${SMALL_OPS} puts; 100 + 20x5 increments)`);
  console.table({ 's3 (MinIO)': await smallOps(s3, 's3'), fs: await smallOps(fs, 'fs') });
} finally {
  await s3.close();
  await fs.close();
  await minio.stop();
  await rm(dataDir, { recursive: true, force: true });
}
