import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { chunksOf } from '../../server/store/stream-parts.ts';

describe('chunksOf', () => {
  it('yields chunks as they were pushed, even when many are buffered (no joining copy)', async () => {
    const pushed = [Buffer.alloc(1000, 1), Buffer.alloc(3000, 2), Buffer.alloc(7, 3)];
    const source = new Readable({ read() {} });
    for (const chunk of pushed) source.push(chunk);
    source.push(null);
    const seen: Buffer[] = [];
    for await (const chunk of chunksOf(source)) seen.push(chunk);
    expect(seen.map((chunk) => chunk.length)).toEqual([1000, 3000, 7]);
    expect(seen.every((chunk, index) => chunk === pushed[index])).toBe(true);
  });

  it('pauses a fast source while the consumer is behind, and ends with every byte', async () => {
    let produced = 0;
    const source = new Readable({
      read() {
        produced += 64 * 1024;
        this.push(produced > 8 * 1024 * 1024 ? null : Buffer.alloc(64 * 1024));
      },
    });
    let consumed = 0;
    let maxAhead = 0;
    for await (const chunk of chunksOf(source)) {
      consumed += chunk.length;
      maxAhead = Math.max(maxAhead, produced - consumed);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(consumed).toBe(8 * 1024 * 1024);
    expect(maxAhead).toBeLessThan(3 * 1024 * 1024); // the queue limit plus the stream's own buffer
  });

  it('throws the source error, and destroys the source when the consumer stops early', async () => {
    const failing = new Readable({ read() {} });
    failing.push(Buffer.from('a'));
    setImmediate(() => failing.destroy(new Error('socket reset')));
    await expect(
      (async () => {
        for await (const _ of chunksOf(failing));
      })(),
    ).rejects.toThrow('socket reset');

    const endless = new Readable({
      read() {
        this.push(Buffer.alloc(10));
      },
    });
    for await (const _ of chunksOf(endless)) break;
    expect(endless.destroyed).toBe(true);
  });
});
