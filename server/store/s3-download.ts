import net from 'node:net';
import type { Writable } from 'node:stream';
import tls from 'node:tls';

/**
 * Big S3 downloads through a plain socket. Node's HTTP client costs more per byte than the rest of
 * a pull: on MinIO over loopback (2 busy cores) one GetObject body read through it came at
 * 100-400 MB/s (undici 115-300), while the same presigned GET read from a socket with `onread`
 * into one reused buffer came at 700-1,100 MB/s, curl's speed. Parallel ranged GETs did not help
 * (the cost is per byte on the one thread, not latency). So a big download is one presigned GET
 * (the signature is in the URL: no signing here), read with `onread` and copied into a few pooled
 * 1 MiB buffers that go to the destination with backpressure, as the fs driver's copyFileRange does.
 */
const SLOT_BYTES = 1024 * 1024;
/** Slots being written to the destination before the socket is paused. */
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
  // Socket reads land in one buffer (as big as a slot, from the same pool) and are copied into slots.
  const readBuffer = pool.pop() ?? Buffer.allocUnsafeSlow(SLOT_BYTES);
  return new Promise<void>((resolve, reject) => {
    let header: Buffer | null = Buffer.alloc(0);
    let remaining = expected;
    let slot: Buffer | null = null;
    let filled = 0;
    let writing = 0;
    let settled = false;
    /** The socket is paused (a read found every slot out); `pending` holds that read's rest. */
    let paused = false;
    let pending: Buffer | null = null;
    const taken: Buffer[] = [];
    const free: Buffer[] = [];

    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      destination.off('close', onClose);
      // A slot whose write failed may still be referenced by a cancelled write: only clean ones go back.
      if (!error)
        for (const buffer of [...taken, readBuffer]) if (pool.length < POOL_LIMIT) pool.push(buffer);
      if (error) reject(error);
      else resolve();
    };
    const onClose = () => finish(new DownloadError('the destination was closed'));
    destination.once('close', onClose);

    const flush = () => {
      if (!slot || filled === 0) return;
      const buffer = slot;
      slot = null;
      writing++;
      destination.write(buffer.subarray(0, filled), (error) => {
        writing--;
        if (error) return finish(error);
        free.push(buffer);
        if (remaining === 0 && writing === 0) return finish();
        if (!paused) return;
        // The bytes kept from the read that found no slot go first, then the socket reads on.
        const kept = pending;
        pending = null;
        if (kept && !body(kept)) return;
        paused = false;
        socket.resume();
      });
      filled = 0;
    };
    const takeSlot = (): Buffer | null => {
      const reused = free.pop();
      if (reused) return reused;
      if (taken.length >= IN_FLIGHT) return null; // every slot is out: wait for a write to finish
      const fresh = pool.pop() ?? Buffer.allocUnsafeSlow(SLOT_BYTES);
      taken.push(fresh);
      return fresh;
    };

    /** Copies body bytes into slots; false when every slot is being written (pause the socket). */
    const body = (bytes: Buffer): boolean => {
      let offset = 0;
      while (offset < bytes.length) {
        if (!slot) {
          slot = takeSlot();
          if (!slot) {
            // What is left waits in the read buffer itself: a paused socket reads nothing into it.
            pending = bytes.subarray(offset);
            paused = true;
            return false;
          }
        }
        const copied = bytes.copy(slot, filled, offset);
        filled += copied;
        offset += copied;
        remaining -= copied;
        if (filled === slot.length || remaining === 0) flush();
      }
      return true;
    };

    const onHeader = (bytes: Buffer): boolean => {
      header = Buffer.concat([header as Buffer, bytes]);
      const end = header.indexOf('\r\n\r\n');
      if (end < 0) {
        if (header.length > MAX_HEADER_BYTES) finish(new DownloadError('response header too large'));
        return true;
      }
      const lines = header.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1]);
      const fields = new Map<string, string>();
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        if (colon > 0) fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      const rest = header.subarray(end + 4);
      header = null;
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
      return rest.length === 0 || body(rest);
    };

    const options = {
      host: target.hostname,
      port,
      onread: {
        buffer: readBuffer,
        callback: (length: number, buffer: Uint8Array): boolean => {
          if (settled) return false;
          const bytes = Buffer.from(buffer.buffer, buffer.byteOffset, length);
          if (header) return onHeader(bytes);
          if (length > remaining) {
            finish(new DownloadError('the store sent more bytes than announced'));
            return false;
          }
          return body(bytes);
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
