import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import { PreconditionFailedError } from '../../server/store/object-store.ts';

/** A process of its own that takes the lock of `key` in a conditional put (see lock-holder.ts). */
function lockHolder(dataDir: string, key: string, mode: 'die' | number) {
  const child = spawn(
    process.execPath,
    [new URL('./lock-holder.ts', import.meta.url).pathname, dataDir, key, String(mode)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const holding = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the child never took the lock:\n${output}`)), 30_000);
    child.stdout?.on('data', () => {
      if (output.includes('holding')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      if (!output.includes('holding')) reject(new Error(`the child exited first:\n${output}`));
    });
  });
  return { child, holding, exited, output: () => output };
}

const lockFileOf = (dataDir: string, key: string) =>
  path.join(dataDir, 'locks', createHash('sha256').update(key).digest('hex'));

describe('fs store: a lock left by a killed process', () => {
  let dataDir: string;
  let store: FsObjectStore;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-fs-lock-'));
    store = await FsObjectStore.open(dataDir);
  });
  afterEach(async () => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('holds the next conditional write of that key for no time at all', async () => {
    const key = 'cargo/index/se/rd/serde';
    const holder = lockHolder(dataDir, key, 'die');
    children.push(holder.child);
    await holder.holding;
    expect(await holder.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // The dead process's lock is still there, naming it...
    const planted = JSON.parse(readFileSync(lockFileOf(dataDir, key), 'utf8'));
    expect(planted.pid).toBe(holder.child.pid);
    // ...and nothing it was writing is visible.
    expect(await store.head(key)).toBeNull();

    const started = performance.now();
    await store.put(key, 'the next publish', { ifNoneMatch: '*' });
    const waited = performance.now() - started;
    expect(waited).toBeLessThan(1000); // was 30 s: the stale bound of an unidentified holder
    expect(await text((await store.get(key))!.body)).toBe('the next publish');
    // The lock is released again: a conditional write that must fail fails at once.
    await expect(store.put(key, 'again', { ifNoneMatch: '*' })).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
  });

  it('waits for a live holder in another process, and sees what it wrote', async () => {
    const key = 'oci/repos/a/tags/latest';
    const holder = lockHolder(dataDir, key, 1500);
    children.push(holder.child);
    await holder.holding;
    const started = performance.now();
    await expect(store.put(key, 'second writer', { ifNoneMatch: '*' })).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
    expect(performance.now() - started).toBeGreaterThan(1000);
    expect(await holder.exited).toEqual({ code: 0, signal: null });
    expect(await text((await store.get(key))!.body)).toBe('written by the lock holder');
  });

  it('judges a holder it cannot see (another machine) by the age of its lock', async () => {
    const key = 'shared/volume';
    const lockFile = lockFileOf(dataDir, key);
    const foreign = { pid: 4242, start: '1', boot: 'another-kernel', pidns: 'pid:[1]', host: 'node-b' };
    await writeFile(lockFile, JSON.stringify(foreign));
    // Fresh: respected until its holder releases it.
    let done = false;
    const put = store.put(key, 'after the release', { ifNoneMatch: '*' }).then(() => {
      done = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(done).toBe(false);
    await rm(lockFile);
    await put;
    expect(done).toBe(true);

    // Not refreshed for longer than the stale bound (30 s): taken over.
    await writeFile(lockFile, JSON.stringify(foreign));
    const old = new Date(Date.now() - 31_000);
    await utimes(lockFile, old, old);
    const started = performance.now();
    await store.put(key, 'taken over', { ifMatch: (await store.head(key))!.etag });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await stat(lockFile).catch(() => null)).toBeNull();
  });
});
