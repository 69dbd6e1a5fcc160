import { Readable, Transform } from 'node:stream';

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
): AsyncGenerator<Part> {
  let index = 0;
  let pieces: Buffer[] = []; // collected lazily, so a small body never costs a whole part buffer
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
      pieces.push(chunk.subarray(0, take));
      filled += take;
      chunk = chunk.subarray(take);
      if (filled === size) {
        const part = Buffer.concat(pieces, size);
        pieces = [];
        filled = 0;
        index++;
        if (chunk.length > 0) yield { data: part, last: false };
        else held = part;
      }
    }
  }
  if (expectedLength !== undefined && total !== expectedLength) {
    throw new BodyLengthError(total, expectedLength, true);
  }
  yield { data: held ?? Buffer.concat(pieces, filled), last: true };
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
