import { expect, it } from 'vitest';
import { droppedBytes } from '../../server/memory/young-garbage.ts';

it('frees dead body buffers once 8 MiB of them were let go, without waiting for V8 to notice', async () => {
  // What a stream leaves behind: small objects in the young generation, each holding 64 KiB
  // outside the heap. 8 MiB of them is far below V8's own external-memory trigger.
  const kept = Buffer.allocUnsafeSlow(64 * 1024);
  for (let i = 0; i < 128; i++) Buffer.allocUnsafeSlow(64 * 1024).fill(i);
  const before = process.memoryUsage().arrayBuffers;
  for (let i = 0; i < 128; i++) droppedBytes(64 * 1024);
  await new Promise((resolve) => setTimeout(resolve, 50)); // backing stores are released off-thread
  const after = process.memoryUsage().arrayBuffers;
  expect(before - after).toBeGreaterThan(6 * 1024 * 1024);
  expect(kept.length).toBe(64 * 1024);
});
