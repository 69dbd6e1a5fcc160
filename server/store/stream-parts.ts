import { Readable, Transform } from 'node:stream';
import { finished } from 'node:stream/promises';

/** A streamed body carried a different number of bytes than the caller announced. */
export class BodyLengthError extends Error {
  constructor(actual: number, expected: number, complete: boolean) {
    super(`body was ${complete ? '' : 'at least '}${actual} bytes, expected ${expected}`);
    this.name = 'BodyLengthError';
  }
}

export interface Part {
  data: Buffer;
  /** True for the final part: the source has ended and nothing follows. */
  last: boolean;
}

/**
 * Cuts a stream into parts of `sizeOf(index)` bytes (the last one may be shorter, or empty when the
 * stream is). A full part is handed out only once a later byte or the end has been seen, so the
 * caller knows whether it is the last one without reading further ahead. Memory: one part buffer.
 * With `expectedLength`, a stream that goes past it or ends short throws {@link BodyLengthError}.
 */
export async function* partsOf(
  source: AsyncIterable<Buffer | Uint8Array | string>,
  sizeOf: (index: number) => number,
  expectedLength?: number,
  /**
   * Where full parts are assembled: a buffer of exactly `size` bytes, typically from a pool the
   * caller refills once it is done with a part. Without it, each part is a new allocation. With it,
   * parts after the first are handed out as soon as they are full, and a body ending on a part
   * boundary past the first part ends with an empty last part.
   */
  allocate?: (size: number) => Buffer,
): AsyncGenerator<Part> {
  let index = 0;
  let pieces: Buffer[] = []; // collected lazily, so a small body never costs a whole part buffer
  let target: Buffer | undefined; // with `allocate`: the part being filled, once a first part filled up
  let filled = 0;
  let held: Buffer | undefined; // a full part waiting to learn whether it is the last
  let total = 0;
  for await (const piece of source) {
    let chunk = asBuffer(piece);
    if (chunk.length === 0) continue;
    total += chunk.length;
    if (expectedLength !== undefined && total > expectedLength) {
      throw new BodyLengthError(total, expectedLength, false);
    }
    if (held) {
      yield { data: held, last: false };
      held = undefined;
    }
    while (chunk.length > 0) {
      const size = sizeOf(index);
      const take = Math.min(chunk.length, size - filled);
      if (target) chunk.copy(target, filled, 0, take);
      else pieces.push(chunk.subarray(0, take));
      filled += take;
      chunk = chunk.subarray(take);
      if (filled === size) {
        let part: Buffer;
        if (target) part = target;
        else if (allocate) {
          part = allocate(size);
          let offset = 0;
          for (const piece of pieces) offset += piece.copy(part, offset);
        } else part = Buffer.concat(pieces, size);
        pieces = [];
        filled = 0;
        index++;
        // Past the first part the body is big: the next one is filled in place, piece by piece, and
        // a full part goes at once (holding it costs a part of memory; an upload may end on a full
        // part), so a body that ends on a part boundary ends with an empty last part.
        target = allocate ? allocate(sizeOf(index)) : undefined;
        if (chunk.length > 0 || (allocate && index > 1)) yield { data: part, last: false };
        else held = part;
      }
    }
  }
  if (expectedLength !== undefined && total !== expectedLength) {
    throw new BodyLengthError(total, expectedLength, true);
  }
  if (held) yield { data: held, last: true };
  else if (target) yield { data: target.subarray(0, filled), last: true };
  else yield { data: Buffer.concat(pieces, filled), last: true };
}

/** Passes a stream through, failing it when it carries more or fewer than `length` bytes. */
export function exactLength(source: Readable, length: number): Readable {
  let seen = 0;
  const checker = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > length) callback(new BodyLengthError(seen, length, false));
      else callback(null, chunk);
    },
    flush(callback) {
      callback(seen === length ? null : new BodyLengthError(seen, length, true));
    },
  });
  source.on('error', (error) => checker.destroy(error));
  return source.pipe(checker);
}

export function isStream(body: unknown): body is Readable {
  return body instanceof Readable || (typeof body === 'object' && body !== null && 'pipe' in body);
}

function asBuffer(piece: Buffer | Uint8Array | string): Buffer {
  if (typeof piece === 'string') return Buffer.from(piece);
  return Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
}

/**
 * Bytes queued before the source is paused, so a slow consumer holds at most this much. Kept small:
 * chunks that wait long get promoted by the garbage collector and cost memory until a full GC.
 */
const QUEUE_BYTES = 256 * 1024;

/**
 * Iterates a stream chunk by chunk, as its producer emitted them. A Readable's own async iterator
 * joins everything buffered into one new Buffer per step: a copy of every byte, and big fresh
 * allocations that drive the garbage collector; this passes the socket's buffers through as they are.
 */
export async function* chunksOf(stream: Readable): AsyncGenerator<Buffer> {
  const queue: Buffer[] = [];
  let queued = 0;
  let wake: (() => void) | null = null;
  let settled = false;
  let failure: unknown = null;
  const notify = () => {
    wake?.();
    wake = null;
  };
  const onData = (chunk: Buffer | string) => {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    queue.push(buffer);
    queued += buffer.length;
    if (queued >= QUEUE_BYTES) stream.pause();
    notify();
  };
  const done = finished(stream, { writable: false }).then(
    () => {
      settled = true;
      notify();
    },
    (error: unknown) => {
      settled = true;
      failure = error;
      notify();
    },
  );
  stream.on('data', onData);
  try {
    for (;;) {
      let chunk = queue.shift();
      while (chunk) {
        queued -= chunk.length;
        if (queued < QUEUE_BYTES && stream.isPaused()) stream.resume();
        yield chunk;
        chunk = queue.shift();
      }
      if (settled) {
        if (failure) throw failure;
        return;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    stream.off('data', onData);
    if (!settled) stream.destroy();
    await done;
  }
}
