/**
 * Moving from a volume to S3: the copy tool (server/tools/copy-store.ts), run as a program, copies
 * a fs store into MinIO whole, again only what is missing or changed, and carries content types.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyStore } from '../../server/store/copy.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import { listAllObjects, type ObjectStore } from '../../server/store/object-store.ts';
import { S3ObjectStore } from '../../server/store/s3-store.ts';
import { type MinioServer, startMinio } from '../support/minio.ts';
import { REPO_ROOT } from '../support/tools.ts';

const run = promisify(execFile);
let minio: MinioServer;
let bucket: string;
let work: string;

beforeAll(async () => {
  minio = await startMinio();
  bucket = await minio.createBucket();
  work = await mkdtemp(path.join(tmpdir(), 'wharf-copy-store-'));
}, 60_000);

afterAll(async () => {
  await minio?.stop();
  await rm(work, { recursive: true, force: true });
});

interface Report {
  copied: number;
  skipped: number;
  bytes: number;
}

/** Runs the tool as an operator would; its last line is the JSON report. */
async function copyTool(...args: string[]) {
  const { WHARF_S3_ACCESS_KEY_ID, WHARF_S3_SECRET_ACCESS_KEY, WHARF_S3_ENDPOINT, WHARF_S3_REGION } =
    minio.wharfEnv(bucket);
  const result = await run(process.execPath, ['server/tools/copy-store.ts', ...args], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      WHARF_S3_ACCESS_KEY_ID: WHARF_S3_ACCESS_KEY_ID!,
      WHARF_S3_SECRET_ACCESS_KEY: WHARF_S3_SECRET_ACCESS_KEY!,
      WHARF_S3_ENDPOINT: WHARF_S3_ENDPOINT!,
      WHARF_S3_REGION: WHARF_S3_REGION!,
      WHARF_S3_FORCE_PATH_STYLE: 'true',
    },
  });
  const lines = result.stdout.trim().split('\n');
  return { report: JSON.parse(lines.at(-1)!) as Report, lines: lines.slice(0, -1) };
}

const s3Store = (prefix: string) =>
  S3ObjectStore.open(minio.storeConfig(bucket, { prefix }).s3!, pino({ level: 'silent' }));

async function contents(store: ObjectStore): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  for (const object of await listAllObjects(store, '')) {
    const got = (await store.get(object.key))!;
    const hash = createHash('sha256');
    for await (const chunk of got.body) hash.update(chunk as Buffer);
    result.set(object.key, `${object.size}:${hash.digest('hex')}`);
  }
  return result;
}

describe('copy-store: fs → MinIO', () => {
  it('copies every object with its bytes, then only what is missing or changed', async () => {
    const dataDir = path.join(work, 'volume');
    const fs = await FsObjectStore.open(dataDir);
    const objects: Record<string, Buffer> = {
      'auth/users/alice.json': Buffer.from('{"name":"alice"}'),
      'cargo/index/3/e/e2e.json': Buffer.from('{"vers":"0.1.0"}\n'),
      'oci/blobs/sha256/aa/big': randomBytes(12 * 1024 * 1024), // a multipart upload on S3
      'oci/uploads/empty': Buffer.alloc(0),
    };
    for (let i = 0; i < 1_005; i++)
      objects[`many/${String(i).padStart(4, '0')}`] = Buffer.from(`object ${i}`);
    for (const [key, body] of Object.entries(objects)) await fs.put(key, body);
    // Copies are told apart from later changes by time: let the sources' second go by.
    await new Promise((resolve) => setTimeout(resolve, 1_100));

    const first = await copyTool('--from', `fs:${dataDir}`, '--to', `s3://${bucket}/moved/`, '--quiet');
    const total = Object.keys(objects).length;
    const bytes = Object.values(objects).reduce((sum, body) => sum + body.length, 0);
    expect(first.report).toMatchObject({ copied: total, skipped: 0, bytes });
    const s3 = await s3Store('moved/');
    try {
      const expected = await contents(fs);
      expect(expected.size).toBe(total);
      expect(await contents(s3)).toEqual(expected);
      const bigBefore = (await s3.head('oci/blobs/sha256/aa/big'))!;

      // Again: nothing to do, nothing written.
      const again = await copyTool('--from', `fs:${dataDir}`, '--to', `s3://${bucket}/moved/`, '--quiet');
      expect(again.report).toMatchObject({ copied: 0, skipped: total, bytes: 0 });
      expect((await s3.head('oci/blobs/sha256/aa/big'))!.etag).toBe(bigBefore.etag);

      // Interrupted (two objects never arrived) and changed since (one rewritten, one added).
      await s3.delete('many/0007');
      await s3.delete('oci/blobs/sha256/aa/big');
      await fs.put('auth/users/alice.json', Buffer.from('{"name":"alice","admin":true}'));
      await fs.put('auth/users/bob.json', Buffer.from('{"name":"bob"}'));
      // An object only the destination has, between two being copied: passed over, and kept.
      await s3.put('many/0006x', 'only here');
      const resumed = await copyTool('--from', `fs:${dataDir}`, '--to', `s3://${bucket}/moved/`);
      expect(resumed.lines.filter((line) => line.startsWith('copied ')).sort()).toEqual([
        'copied auth/users/alice.json',
        'copied auth/users/bob.json',
        'copied many/0007',
        'copied oci/blobs/sha256/aa/big',
      ]);
      expect(resumed.report).toMatchObject({ copied: 4, skipped: total - 3 });
      const copied = await contents(s3);
      expect(copied.get('many/0006x')).toBe(`9:${createHash('sha256').update('only here').digest('hex')}`);
      copied.delete('many/0006x');
      expect(copied).toEqual(await contents(fs));
      // Nothing landed outside the prefix.
      const outside = await s3Store('');
      expect(
        (await listAllObjects(outside, '')).filter((object) => !object.key.startsWith('moved/')),
      ).toEqual([]);
      await outside.close();
    } finally {
      await s3.close();
      await fs.close();
    }
  }, 120_000);

  it('carries the content type where the source keeps one (S3 → S3)', async () => {
    const source = await s3Store('typed/');
    const destination = await s3Store('typed-copy/');
    try {
      await source.put('manifest', '{"schemaVersion":2}', {
        contentType: 'application/vnd.oci.image.manifest.v1+json',
      });
      await source.put('plain', 'x');
      expect(await copyStore(source, destination)).toMatchObject({ copied: 2, skipped: 0 });
      expect((await destination.head('manifest'))?.contentType).toBe(
        'application/vnd.oci.image.manifest.v1+json',
      );
      expect((await destination.head('plain'))?.contentType).toBe((await source.head('plain'))?.contentType);
    } finally {
      await source.close();
      await destination.close();
    }
  });

  it('refuses malformed store addresses with exit code 2 and writes nothing', async () => {
    for (const [args, message] of [
      [['--from', 'fs:', '--to', `s3://${bucket}/x/`], /fs: needs a directory/],
      [['--from', `fs:${work}`, '--to', `s3://${bucket}/no-slash`], /prefix must be segments each ending in/],
      [['--from', `fs:${work}`, '--to', 'ftp://host/x'], /expected fs:DIR or s3:\/\/BUCKET/],
      [['--from', `fs:${work}`], /usage: copy-store/],
    ] as const) {
      const failure = await copyTool(...args).then(
        () => undefined,
        (error: { code: number; stderr: string }) => error,
      );
      expect(failure?.code, args.join(' ')).toBe(2);
      expect(failure?.stderr).toMatch(message);
    }
  });
});
