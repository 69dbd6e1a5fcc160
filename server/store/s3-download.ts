import net from 'node:net';
import type { Writable } from 'node:stream';
import tls from 'node:tls';

/**
 * Big S3 downloads through a plain socket. Node's HTTP client costs more per byte than the rest of
 * a pull: on MinIO over loopback (2 busy cores) one GetObject body read through it came at
 * 100-400 MB/s (undici 115-300), while the same presigned GET read from a socket with `onread`
 * came at 700-1,100 MB/s, curl's speed. Parallel ranged GETs did not help (the cost is per byte on
 * the one thread, not latency). So a big download is one presigned GET (the signature is in the
 * URL: no signing here) whose socket reads land straight in a few pooled 1 MiB slots: `onread`
 * asks for the next read's buffer after every read and gets the free end of the slot being filled,
 * so the bytes are never copied in user space (copying them from one buffer into slots took a
 * tenth of the server's CPU on a pull). A full slot goes to the destination with backpressure,
 * as the fs driver's copyFileRange does, and comes back to be filled again once written.
 */
const SLOT_BYTES = 1024 * 1024;
/** Slots being written to the destination before the socket is paused (one more is being filled). */
const IN_FLIGHT = 4;
const POOL_LIMIT = 16;
const MAX_HEADER_BYTES = 64 * 1024;
const IDLE_MILLIS = 30_000;

const pool: Buffer[] = [];

export class DownloadError extends Error {
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.name = 'DownloadError';
    this.status = status;
  }
}

/**
 * GETs `url` (presigned) for bytes `start..end` (inclusive) and writes them into `destination`
 * without ending it; resolves once the destination took the last byte. `ifMatch` pins the version:
 * an object replaced since is a DownloadError (412), never a mix of two versions.
 */
export function copyPresignedRange(
  url: string,
  range: { start: number; end: number },
  ifMatch: string,
  destination: Writable,
): Promise<void> {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  const port = Number(target.port || (secure ? 443 : 80));
  const expected = range.end - range.start + 1;
  return new Promise<void>((resolve, reject) => {
    /** Every slot this download took from the pool (at most IN_FLIGHT + 1). */
    const taken: Buffer[] = [];
    const free: Buffer[] = [];
    const takeSlot = (): Buffer => {
      const slot = free.pop() ?? pool.pop() ?? Buffer.allocUnsafeSlow(SLOT_BYTES);
      if (!taken.includes(slot)) taken.push(slot);
      return slot;
    };
    /** The slot reads land in: bytes `begin..filled` of it are body bytes not yet sent. */
    let slot = takeSlot();
    let begin = 0;
    let filled = 0;
    let inHeader = true;
    let remaining = expected;
    let writing = 0;
    let paused = false;
    let settled = false;

    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      destination.off('close', onClose);
      // A slot whose write failed may still be referenced by a cancelled write: only clean ones go back.
      if (!error) for (const buffer of taken) if (pool.length < POOL_LIMIT) pool.push(buffer);
      if (error) reject(error);
      else resolve();
    };
    const onClose = () => finish(new DownloadError('the destination was closed'));
    destination.once('close', onClose);

    /** Sends the slot's body bytes and moves reads to a free slot; false when the socket must pause. */
    const flush = (): boolean => {
      const buffer = slot;
      writing++;
      destination.write(buffer.subarray(begin, filled), (error) => {
        writing--;
        if (error) return finish(error);
        free.push(buffer);
        if (remaining === 0 && writing === 0) return finish();
        if (paused && writing < IN_FLIGHT && remaining > 0 && !settled) {
          paused = false;
          socket.resume();
        }
      });
      slot = takeSlot();
      begin = 0;
      filled = 0;
      paused = writing >= IN_FLIGHT;
      return !paused;
    };

    /** Parses the response head once it is whole; false when the download cannot go on. */
    const onHeader = (): boolean => {
      const end = slot.subarray(0, filled).indexOf('\r\n\r\n');
      if (end < 0) {
        if (filled > MAX_HEADER_BYTES) {
          finish(new DownloadError('response header too large'));
          return false;
        }
        return true;
      }
      const lines = slot.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1]);
      const fields = new Map<string, string>();
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        if (colon > 0) fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      if (status !== 200 && status !== 206) {
        finish(
          new DownloadError(`the store answered ${status || 'garbage'} to a download`, status || undefined),
        );
        return false;
      }
      if (fields.has('transfer-encoding') || Number(fields.get('content-length')) !== expected) {
        finish(
          new DownloadError(`the store sent ${fields.get('content-length') ?? 'no'} bytes, not ${expected}`),
        );
        return false;
      }
      inHeader = false;
      begin = end + 4;
      return onBody(filled - begin);
    };

    /** `length` more body bytes are in the slot; false pauses the socket (or ends the download). */
    const onBody = (length: number): boolean => {
      if (length > remaining) {
        finish(new DownloadError('the store sent more bytes than announced'));
        return false;
      }
      remaining -= length;
      if (remaining === 0) {
        if (filled > begin) flush();
        else if (writing === 0) finish();
        return false;
      }
      return filled < slot.length || flush();
    };

    const options = {
      host: target.hostname,
      port,
      onread: {
        // Asked before every read: the free end of the slot being filled (never past the body's end
        // once the head is parsed, so a well-behaved store never overfills it).
        buffer: () =>
          slot.subarray(filled, inHeader ? slot.length : Math.min(slot.length, filled + remaining)),
        callback: (length: number): boolean => {
          if (settled) return false;
          filled += length;
          return inHeader ? onHeader() : onBody(length);
        },
      },
    };
    const socket: net.Socket = secure
      ? tls.connect({ ...options, servername: target.hostname })
      : net.connect(options);
    socket.setNoDelay(true);
    socket.setTimeout(IDLE_MILLIS, () => finish(new DownloadError('the store stopped sending')));
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      socket.write(
        [
          `GET ${target.pathname}${target.search} HTTP/1.1`,
          `Host: ${target.host}`,
          `Range: bytes=${range.start}-${range.end}`,
          `If-Match: ${ifMatch}`,
          'Connection: close',
          '',
          '',
        ].join('\r\n'),
      );
    });
    socket.on('error', (error) => finish(error));
    socket.on('close', () => {
      if (remaining > 0) finish(new DownloadError(`the store closed the download ${remaining} bytes short`));
    });
  });
}
