import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import {
  BlobBroadcast,
  READER_LAG_BYTES,
  WAIT_BUDGET_MS,
} from '../../server/registry/oci/proxy/broadcast.ts';

const CHUNK = 64 * 1024;

/**
 * Appends `blob` as a fetch does (waiting when the broadcast asks), then commits it; returns the
 * time it waited for readers.
 */
async function feed(
  broadcast: BlobBroadcast,
  blob: Buffer,
  { chunk = CHUNK, gapMs = 0 } = {},
): Promise<number> {
  let waited = 0;
  for (let offset = 0; offset < blob.length; offset += chunk) {
    broadcast.append(blob.subarray(offset, offset + chunk));
    const wait = broadcast.backpressure();
    if (wait) {
      const started = performance.now();
      await wait;
      waited += performance.now() - started;
    }
    if (gapMs > 0) await sleep(gapMs);
  }
  broadcast.commit(async (offset) => Readable.from([blob.subarray(offset)]));
  return waited;
}

async function digestOf(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

describe('blob broadcast (what clients of one fetch read)', () => {
  it('gives every reader the whole blob; a stalled one costs the fetch its wait budget, then reads from the store', async () => {
    const blob = randomBytes(8 * 1024 * 1024);
    const broadcast = new BlobBroadcast(blob.length);
    const fast = broadcast.reader() as Readable;
    const stalled = broadcast.reader() as Readable;
    const fastDigest = digestOf(fast);
    stalled.pause();
    stalled.read(0);
    const took = await feed(broadcast, blob);
    expect(took).toBeGreaterThanOrEqual(WAIT_BUDGET_MS - 50);
    expect(took).toBeLessThan(WAIT_BUDGET_MS + 3000); // not until the reader reads again
    const expected = createHash('sha256').update(blob).digest('hex');
    expect(await fastDigest).toBe(expected);
    expect(await digestOf(stalled)).toBe(expected);
  }, 30_000);

  it('errors every reader before its end when the fetch fails, the last chunk never sent', async () => {
    const broadcast = new BlobBroadcast(3 * CHUNK);
    const reader = broadcast.reader() as Readable;
    let received = 0;
    reader.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    const ended = new Promise<Error | null>((resolve) => {
      reader.once('error', resolve);
      reader.once('end', () => resolve(null));
    });
    for (let i = 0; i < 3; i++) broadcast.append(Buffer.alloc(CHUNK, i));
    await sleep(20);
    broadcast.fail(new Error('digest mismatch'));
    expect((await ended)?.message).toBe('digest mismatch');
    expect(received).toBe(2 * CHUNK);
    expect(broadcast.reader()).toBeNull();
  });

  it('asks the fetch to wait only once a reader is more than the lag behind', async () => {
    const broadcast = new BlobBroadcast(undefined);
    const reader = broadcast.reader() as Readable;
    reader.pause();
    const lagChunks = READER_LAG_BYTES / CHUNK;
    // The newest chunk is held back: lagChunks + 1 appended are lagChunks released, not beyond.
    for (let i = 0; i <= lagChunks; i++) broadcast.append(Buffer.alloc(CHUNK));
    expect(broadcast.backpressure()).toBeNull();
    broadcast.append(Buffer.alloc(CHUNK));
    const wait = broadcast.backpressure();
    expect(wait).not.toBeNull();
    // A reader gone is waited for no longer.
    const left = performance.now();
    reader.destroy();
    await wait;
    expect(performance.now() - left).toBeLessThan(WAIT_BUDGET_MS / 2);
    broadcast.append(Buffer.alloc(CHUNK));
    expect(broadcast.backpressure()).toBeNull();
  });
});
