import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import { MIN_PART_SIZE } from '../../server/store/object-store.ts';
import { storeContract } from './contract.ts';

storeContract('fs', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-fs-'));
  const store = await FsObjectStore.open(dataDir);
  return {
    store,
    config: { driver: 'fs', dataDir },
    cleanup: async () => {
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});

describe('fs store: copyTo (pooled download path)', () => {
  let dataDir: string;
  let store: FsObjectStore;
  // Several times the pool's buffers in flight (4 x 1 MiB), so buffers get reused within one copy.
  const data = randomBytes(11 * 1024 * 1024 + 17);

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-fs-copy-'));
    store = await FsObjectStore.open(dataDir);
    await store.put('big.bin', data);
    await store.put('empty.bin', Buffer.alloc(0));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  /**
   * Copies a chunk only when it calls back, some time after write() was called: a buffer handed out
   * again before its write called back would show up here as wrong bytes.
   */
  function lateCopyingSink(): { sink: Writable; bytes: () => Buffer } {
    const parts: Buffer[] = [];
    const sink = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _encoding, done) {
        setTimeout(() => {
          parts.push(Buffer.from(chunk));
          done();
        }, 1);
      },
    });
    return { sink, bytes: () => Buffer.concat(parts) };
  }

  const openFds = () => readdirSync('/proc/self/fd').length;

  it('copies whole objects and ranges byte for byte, reusing buffers only once they are written', async () => {
    const fdsBefore = openFds();
    const copies = await Promise.all(
      [undefined, { start: 5, end: 2 * 1024 * 1024 + 3 }, { start: data.length - 10 }].map(async (range) => {
        const object = await store.get('big.bin', range ? { range } : {});
        const { sink, bytes } = lateCopyingSink();
        await object!.copyTo!(sink);
        return { range, bytes: bytes() };
      }),
    );
    expect(copies[0]!.bytes.equals(data)).toBe(true);
    expect(copies[1]!.bytes.equals(data.subarray(5, 2 * 1024 * 1024 + 4))).toBe(true);
    expect(copies[2]!.bytes.equals(data.subarray(data.length - 10))).toBe(true);
    const empty = await store.get('empty.bin');
    const { sink, bytes } = lateCopyingSink();
    await empty!.copyTo!(sink);
    expect(bytes().length).toBe(0);
    expect(openFds()).toBe(fdsBefore); // every handle closed
  });

  it('stops with an error when the destination goes away, and closes the file', async () => {
    const fdsBefore = openFds();
    const object = await store.get('big.bin');
    let written = 0;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        written += chunk.length;
        if (written > 512 * 1024) sink.destroy();
        done();
      },
    });
    await expect(object!.copyTo!(sink)).rejects.toThrow();
    expect(written).toBeLessThan(data.length);
    expect(openFds()).toBe(fdsBefore);
  });
});

describe('fs store: multipart parts appended without fsync', () => {
  it('refuses to complete when the appended data is shorter than its parts (a power cut lost it)', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-fs-lost-'));
    try {
      const store = await FsObjectStore.open(dataDir);
      const uploadId = await store.createMultipart('lost/blob');
      const part = randomBytes(MIN_PART_SIZE);
      const one = await store.uploadPart('lost/blob', uploadId, 1, part, part.length);
      const two = await store.uploadPart('lost/blob', uploadId, 2, part, part.length);
      // What a power cut before the completion's fsync can leave: the tail of the file is gone.
      await truncate(path.join(dataDir, 'uploads', uploadId, 'data'), part.length + 1000);
      await expect(
        store.completeMultipart('lost/blob', uploadId, [
          { partNumber: 1, etag: one.etag },
          { partNumber: 2, etag: two.etag },
        ]),
      ).rejects.toThrow(/parts need/);
      expect(await store.head('lost/blob')).toBeNull();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
