// What the password limits add to a password check, beside the bcrypt the check pays anyway, on
// the fs store and on MinIO, in one run. A successful check reads the counters (no write); a failed
// one also writes them. Run: `npx node bench/login-throttle.ts [--checks 300]`.
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import pino from 'pino';
import { LoginThrottle } from '../server/identity/rate-limit.ts';
import { FsObjectStore } from '../server/store/fs-store.ts';
import type { ObjectStore } from '../server/store/object-store.ts';
import { S3ObjectStore } from '../server/store/s3-store.ts';
import { startMinio } from '../test/support/minio.ts';

const checks = Number(process.argv[process.argv.indexOf('--checks') + 1]) || 300;
/** High enough that no check is refused: this measures the cost, not the policy. */
const LIMITS = { perAccountAndAddress: 1e9, perAccount: 1e9, perAddress: 1e9, windowSeconds: 900 };

function quantiles(samples: number[]): { p50: number; p99: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99) };
}

async function timeEach(count: number, action: (i: number) => Promise<void>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    await action(i);
    samples.push(performance.now() - start);
  }
  return samples;
}

/** Milliseconds per bcrypt compare at cost 10 (the default) on this thread, now. */
function bcryptMs(): number {
  const hash = bcrypt.hashSync('benchmark-password', 10);
  const rounds = 10;
  const start = performance.now();
  for (let i = 0; i < rounds; i++) bcrypt.compareSync('benchmark-password', hash);
  return (performance.now() - start) / rounds;
}

async function measure(name: string, store: ObjectStore) {
  const throttle = new LoginThrottle(store, LIMITS);
  // Success path: a user with no failures, checked from their address (reads 3 counters).
  const success = await timeEach(checks, async () => {
    const admission = await throttle.admit('alice', { address: '203.0.113.7' });
    if (!admission.allowed) throw new Error('refused');
    admission.end();
  });
  // Failure path: read, then write the 3 counters (a new account each time: first writes, and then
  // the same accounts again: updates).
  const failure = await timeEach(checks, async (i) => {
    const admission = await throttle.admit(`guess${i % (checks / 2)}`, { address: '198.51.100.9' });
    if (!admission.allowed) throw new Error('refused');
    await admission.failed();
    admission.end();
  });
  const bcryptBefore = bcryptMs();
  const bcryptAfter = bcryptMs();
  return {
    name,
    success: quantiles(success),
    failure: quantiles(failure),
    bcrypt: (bcryptBefore + bcryptAfter) / 2,
  };
}

const rows = [];
const dir = await mkdtemp(path.join(tmpdir(), 'wharf-bench-throttle-'));
try {
  rows.push(await measure('fs', await FsObjectStore.open(dir)));
} finally {
  await rm(dir, { recursive: true, force: true });
}
const minio = await startMinio();
try {
  const bucket = await minio.createBucket();
  const s3 = await S3ObjectStore.open(minio.storeConfig(bucket).s3!, pino({ level: 'silent' }));
  rows.push(await measure('s3 (MinIO)', s3));
  await s3.close();
} finally {
  await minio.stop();
}

const ms = (n: number) => n.toFixed(2);
console.log(
  `\nPassword-limit cost per check (${checks} sequential checks each, load average ${loadavg()[0]?.toFixed(1)})\n`,
);
console.log(
  'store | success: read p50 ms | p99 ms | failure: read+write p50 ms | p99 ms | bcrypt cost 10 ms | success p50 / bcrypt | failure p50 / bcrypt',
);
for (const { name, success, failure, bcrypt: bcryptCompare } of rows) {
  console.log(
    [
      name,
      ms(success.p50),
      ms(success.p99),
      ms(failure.p50),
      ms(failure.p99),
      ms(bcryptCompare),
      (success.p50 / bcryptCompare).toFixed(3),
      (failure.p50 / bcryptCompare).toFixed(3),
    ].join(' | '),
  );
}
