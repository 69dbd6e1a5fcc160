import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoreConfig } from '../../server/config/types.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import { readJson } from '../../server/store/json-doc.ts';
import { LeaseLostError, type LeaseRecord, tryAcquireLease, withLease } from '../../server/store/lease.ts';
import type { ObjectStore } from '../../server/store/object-store.ts';
import { S3ObjectStore } from '../../server/store/s3-store.ts';
import { type MinioServer, startMinio } from '../support/minio.ts';

/** A clock the test moves by hand, starting at the real time. */
function movableClock() {
  let offset = 0;
  const clock = () => Date.now() + offset;
  return Object.assign(clock, {
    advance(ms: number) {
      offset += ms;
    },
  });
}

/** Runs lease-holder.ts: a process that takes the lease and is SIGKILLed holding it. */
function leaseHolderProcess(config: StoreConfig, key: string, durationMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        new URL('./lease-holder.ts', import.meta.url).pathname,
        JSON.stringify(config),
        key,
        String(durationMs),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('error', reject);
    child.once('exit', (_code, signal) =>
      signal === 'SIGKILL' ? resolve(output.trim()) : reject(new Error(`lease holder: ${output}`)),
    );
  });
}

function leaseContract(name: string, open: () => Promise<{ store: ObjectStore; config: StoreConfig }>) {
  describe(`store lease: ${name}`, () => {
    let store: ObjectStore;
    let config: StoreConfig;
    const key = () => `leases/${randomUUID().slice(0, 8)}.json`;

    beforeAll(async () => {
      ({ store, config } = await open());
    });

    it('goes to exactly one of many processes asking at once, and the others learn who has it', async () => {
      const lease = key();
      const attempts = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          tryAcquireLease(store, lease, { holder: `r${i}`, durationMs: 60_000 }),
        ),
      );
      const winners = attempts.filter((attempt) => attempt.acquired);
      expect(winners).toHaveLength(1);
      const winner = winners[0]!.acquired ? winners[0]!.lease.holder : '';
      for (const attempt of attempts) {
        if (!attempt.acquired) expect(attempt.holder).toBe(winner);
      }
      const record = (await readJson<LeaseRecord>(store, lease))!.value;
      expect(record.holder).toBe(winner);
    });

    it('is refused while held, taken over once expired, and the old holder learns it lost it', async () => {
      const lease = key();
      const clock = movableClock();
      const first = await tryAcquireLease(store, lease, { holder: 'first', durationMs: 10_000, clock });
      if (!first.acquired) throw new Error('not acquired');
      first.lease.check();
      clock.advance(9_000);
      const early = await tryAcquireLease(store, lease, { holder: 'second', durationMs: 10_000, clock });
      expect(early).toMatchObject({ acquired: false, holder: 'first' });
      // Within a quarter duration of expiry, the holder no longer trusts its lease.
      expect(() => first.lease.check()).toThrow(LeaseLostError);
      clock.advance(1_001);
      const second = await tryAcquireLease(store, lease, { holder: 'second', durationMs: 10_000, clock });
      expect(second.acquired).toBe(true);
      await expect(first.lease.renew()).rejects.toBeInstanceOf(LeaseLostError);
      expect(() => first.lease.check()).toThrow(/taken over/);
      // Its release does not free the new holder's lease.
      await first.lease.release();
      expect(
        await tryAcquireLease(store, lease, { holder: 'third', durationMs: 10_000, clock }),
      ).toMatchObject({
        acquired: false,
        holder: 'second',
      });
    });

    it('is free at once after a release', async () => {
      const lease = key();
      const first = await tryAcquireLease(store, lease, { holder: 'first', durationMs: 600_000 });
      if (!first.acquired) throw new Error('not acquired');
      await first.lease.release();
      expect((await tryAcquireLease(store, lease, { holder: 'next', durationMs: 600_000 })).acquired).toBe(
        true,
      );
    });

    it('stays held while the work outlasts its duration, renewed in the background', async () => {
      const lease = key();
      const refusals: string[] = [];
      const result = await withLease(store, lease, { holder: 'worker', durationMs: 900 }, async (held) => {
        for (let i = 0; i < 6; i++) {
          await new Promise((resolve) => setTimeout(resolve, 300));
          held.check();
          const other = await tryAcquireLease(store, lease, { holder: 'intruder', durationMs: 900 });
          if (!other.acquired) refusals.push(other.holder);
        }
        return 'done';
      });
      expect(result).toEqual({ ran: true, value: 'done' });
      expect(refusals).toEqual(Array(6).fill('worker'));
      // Released at the end.
      expect((await tryAcquireLease(store, lease, { holder: 'after', durationMs: 900 })).acquired).toBe(true);
    });

    it('reports the holder instead of running the work when the lease is taken', async () => {
      const lease = key();
      await tryAcquireLease(store, lease, { holder: 'busy', durationMs: 60_000 });
      let ran = false;
      const result = await withLease(store, lease, { holder: 'late', durationMs: 60_000 }, async () => {
        ran = true;
      });
      expect(ran).toBe(false);
      expect(result).toMatchObject({ ran: false, holder: 'busy' });
    });

    it('does not stay blocked by a process killed while holding it', async () => {
      const lease = key();
      expect(await leaseHolderProcess(config, lease, 5_000)).toBe('acquired');
      const clock = movableClock();
      const now = await tryAcquireLease(store, lease, { holder: 'survivor', durationMs: 5_000, clock });
      expect(now.acquired).toBe(false);
      expect(now.acquired ? '' : now.holder).toMatch(/^child-\d+$/);
      clock.advance(5_001);
      expect(
        (await tryAcquireLease(store, lease, { holder: 'survivor', durationMs: 5_000, clock })).acquired,
      ).toBe(true);
    });
  });
}

let dataDir: string;
let minio: MinioServer;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-lease-'));
  minio = await startMinio();
}, 20 * 60_000);
afterAll(async () => {
  await minio?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

leaseContract('fs', async () => ({
  store: await FsObjectStore.open(dataDir),
  config: { driver: 'fs', dataDir },
}));
leaseContract('s3 (MinIO)', async () => {
  const config = minio.storeConfig(await minio.createBucket());
  return { store: await S3ObjectStore.open(config.s3!, pino({ level: 'silent' })), config };
});
