import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Body } from './object-store.ts';
import { chunksOf } from './stream-parts.ts';

/**
 * Chunks are gathered into writes of about this size: one thread-pool hop per 512 KiB, not per
 * 64 KiB; larger batches hold chunks longer (see HASHING_BUFFER in the OCI storage) for no gain.
 */
const BATCH_BYTES = 512 * 1024;
const MAX_BATCH_BUFFERS = 256;
/**
 * While a big body streams in, the bytes written so far are flushed in the background every this
 * many bytes. Linux otherwise keeps them dirty until the final fsync (the default dirty limits are
 * a share of RAM), which then writes the whole file while the client waits; flushing along the way
 * lets the disk work while the network does.
 */
const BACKGROUND_FLUSH_BYTES = 32 * 1024 * 1024;

export interface FileSinkOptions {
  /** `a` appends to an existing file; `w` creates or truncates. */
  flags: 'a' | 'w';
  /**
   * `true`: the data is on disk (fdatasync) before the promise resolves. `false`: durability is left
   * to a later sync of the same file (multipart parts, synced once at completion).
   */
  durable: boolean;
}

/**
 * Streams `source` into `file` and resolves with the number of bytes written. Writes are batched,
 * one in flight while the next batch fills, and dirty pages are flushed in the background as the
 * body arrives, so the final sync of a big body has little left to do.
 */
export async function writeToFile(
  file: string,
  source: Body | AsyncIterable<Buffer | Uint8Array | string>,
  options: FileSinkOptions,
): Promise<number> {
  const handle = await open(file, options.flags);
  let written = 0;
  let writing: Promise<unknown> = Promise.resolve();
  let flushing: Promise<void> | null = null;
  let flushError: unknown = null;
  let flushedUpTo = 0;
  let batch: Buffer[] = [];
  let batchBytes = 0;

  const startWrite = async (buffers: Buffer[], bytes: number) => {
    await writing;
    writing = writeAll(handle, buffers, bytes);
    written += bytes;
    if (!flushing && written - flushedUpTo >= BACKGROUND_FLUSH_BYTES) {
      flushedUpTo = written;
      flushing = writing
        .then(() => handle.datasync())
        .catch((error: unknown) => {
          flushError = error;
        })
        .finally(() => {
          flushing = null;
        });
    }
  };

  try {
    for await (const piece of piecesOf(source)) {
      const chunk = typeof piece === 'string' ? Buffer.from(piece) : (piece as Buffer);
      if (chunk.length === 0) continue;
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes >= BATCH_BYTES || batch.length >= MAX_BATCH_BUFFERS) {
        await startWrite(batch, batchBytes);
        batch = [];
        batchBytes = 0;
      }
    }
    if (batchBytes > 0) await startWrite(batch, batchBytes);
    await writing;
    await flushing;
    if (flushError) throw flushError;
    if (options.durable) await handle.datasync();
    return written;
  } finally {
    // A failed source leaves a write or flush running: let it finish before the handle closes.
    await writing.catch(() => undefined);
    await flushing;
    await handle.close();
  }
}

/** A whole body in one piece, a stream chunk by chunk as received, any other iterable as it is. */
function piecesOf(
  source: Body | AsyncIterable<Buffer | Uint8Array | string>,
): AsyncIterable<Buffer | Uint8Array | string> | Iterable<Buffer> {
  if (typeof source === 'string' || source instanceof Uint8Array) return [Buffer.from(source)];
  return source instanceof Readable ? chunksOf(source) : source;
}

/** writev may write less than asked (disk full, signals): continue until every byte is out. */
async function writeAll(
  handle: Awaited<ReturnType<typeof open>>,
  buffers: Buffer[],
  bytes: number,
): Promise<void> {
  let left = bytes;
  let rest = buffers;
  while (left > 0) {
    const { bytesWritten } = await handle.writev(rest);
    left -= bytesWritten;
    if (left === 0) return;
    let skip = bytesWritten;
    const next: Buffer[] = [];
    for (const buffer of rest) {
      if (skip >= buffer.length) {
        skip -= buffer.length;
        continue;
      }
      next.push(skip > 0 ? buffer.subarray(skip) : buffer);
      skip = 0;
    }
    rest = next;
  }
}
