// Moving a volume to S3: `copy-store` (server/tools/copy-store.ts) beside `aws s3 sync` of the same
// directory into the same MinIO, first a full copy, then a second run with nothing to do.
// Run: `npx node bench/copy-store.ts [smallObjects] [blobs]` (starts its own MinIO on 127.0.0.1;
// needs the aws CLI on PATH for the peer, else prints copy-store alone).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { FsObjectStore } from '../server/store/fs-store.ts';
import { startMinio } from '../test/support/minio.ts';
import { REPO_ROOT } from '../test/support/tools.ts';

const run = promisify(execFile);
const SMALL = Number(process.argv[2] ?? 2000);
const BLOBS = Number(process.argv[3] ?? 8);
const BLOB_SIZE = 16 * 1024 * 1024;

async function timed(action: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await action();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const minio = await startMinio();
const work = await mkdtemp(path.join(tmpdir(), 'wharf-bench-copy-'));
try {
  const bucket = await minio.createBucket();
  const env = { ...process.env, ...minio.wharfEnv(bucket) };
  const store = await FsObjectStore.open(path.join(work, 'volume'));
  for (let i = 0; i < SMALL; i++) await store.put(`cargo/index/${i % 97}/crate-${i}.json`, randomBytes(1024));
  for (let i = 0; i < BLOBS; i++) await store.put(`oci/blobs/sha256/${i}`, randomBytes(BLOB_SIZE));
  await store.close();
  const bytes = SMALL * 1024 + BLOBS * BLOB_SIZE;
  await new Promise((resolve) => setTimeout(resolve, 1_100)); // see copy.ts: copies newer than sources

  const copyStore = () =>
    run(
      process.execPath,
      [
        'server/tools/copy-store.ts',
        '--from',
        `fs:${path.join(work, 'volume')}`,
        '--to',
        `s3://${bucket}/wharf/`,
        '--quiet',
      ],
      { cwd: REPO_ROOT, env },
    );
  const full = await timed(copyStore);
  const again = await timed(copyStore);

  const rows: string[][] = [
    ['', 'full copy (s)', 'MiB/s', 'second run (s)'],
    ['copy-store', full.toFixed(2), (bytes / 2 ** 20 / full).toFixed(1), again.toFixed(2)],
  ];
  const aws = await run('aws', ['--version']).then(
    () => true,
    () => false,
  );
  if (aws) {
    const awsEnv = {
      ...process.env,
      AWS_ACCESS_KEY_ID: minio.accessKeyId,
      AWS_SECRET_ACCESS_KEY: minio.secretAccessKey,
      AWS_DEFAULT_REGION: minio.region,
    };
    const sync = () =>
      run(
        'aws',
        [
          's3',
          'sync',
          '--only-show-errors',
          '--endpoint-url',
          minio.endpoint,
          path.join(work, 'volume', 'objects'),
          `s3://${bucket}/aws/`,
        ],
        { env: awsEnv, maxBuffer: 64 * 1024 * 1024 },
      );
    const awsFull = await timed(sync);
    const awsAgain = await timed(sync);
    rows.push([
      'aws s3 sync',
      awsFull.toFixed(2),
      (bytes / 2 ** 20 / awsFull).toFixed(1),
      awsAgain.toFixed(2),
    ]);
    rows.push(['ratio (copy-store / aws)', (full / awsFull).toFixed(2), '', (again / awsAgain).toFixed(2)]);
  }
  console.log(
    `${SMALL} objects of 1 KiB + ${BLOBS} blobs of 16 MiB (${(bytes / 2 ** 20).toFixed(0)} MiB), fs → MinIO on loopback`,
  );
  for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(i === 0 ? 26 : 16)).join(''));
} finally {
  await minio.stop();
  await rm(work, { recursive: true, force: true });
}
