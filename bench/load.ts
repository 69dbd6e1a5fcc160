import { connect } from 'node:net';

/**
 * A tight keep-alive HTTP/1.1 client on raw sockets (node:http's client costs more CPU per request
 * than the servers under test): `connections` sockets, each sending its next GET as soon as the last
 * answer (framed by Content-Length) is complete; with `pipelining` > 1 that many requests stay in
 * flight per socket (HTTP/1.1 pipelining, as autocannon's -p), which is how one client core can load
 * a server past 10,000 requests/s. Counts answers by status and body bytes.
 */
export async function load(
  url: string,
  {
    connections,
    seconds,
    pipelining = 1,
    headers = {},
    paths,
  }: {
    connections: number;
    seconds: number;
    pipelining?: number;
    headers?: Record<string, string>;
    /** Paths each socket asks for in turn (a page's calls), instead of `url`'s path alone. */
    paths?: string[];
  },
): Promise<{ rps: number; mbps: number; statuses: Record<number, number> }> {
  const target = new URL(url);
  const requestFor = (pathname: string) =>
    `GET ${pathname} HTTP/1.1\r\nHost: ${target.host}\r\n${Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')}\r\n`;
  const heads = (paths ?? [`${target.pathname}${target.search}`]).map(requestFor);
  const statuses: Record<number, number> = {};
  let count = 0;
  let bytes = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise<void>((resolve, reject) => {
          const socket = connect(Number(target.port), target.hostname);
          socket.setNoDelay(true);
          let pending: Buffer = Buffer.alloc(0);
          let bodyLeft = -1;
          let sent = 0;
          const next = () => heads[sent++ % heads.length] as string;
          socket.on('connect', () => socket.write(Array.from({ length: pipelining }, next).join('')));
          let inFlight = pipelining;
          socket.on('error', reject);
          socket.on('close', () => resolve());
          socket.on('data', (chunk: Buffer) => {
            pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
            for (;;) {
              if (bodyLeft < 0) {
                const endOfHead = pending.indexOf('\r\n\r\n');
                if (endOfHead < 0) return;
                const text = pending.subarray(0, endOfHead).toString('latin1');
                const status = Number(text.slice(9, 12));
                statuses[status] = (statuses[status] ?? 0) + 1;
                const length = /\r\ncontent-length:\s*(\d+)/i.exec(text);
                bodyLeft = length ? Number(length[1]) : 0;
                pending = pending.subarray(endOfHead + 4);
              }
              const take = Math.min(bodyLeft, pending.length);
              bytes += take;
              bodyLeft -= take;
              pending = pending.subarray(take);
              if (bodyLeft > 0) return;
              bodyLeft = -1;
              count += 1;
              inFlight -= 1;
              if (performance.now() >= end) {
                if (inFlight === 0) socket.end();
                continue;
              }
              inFlight += 1;
              socket.write(next());
            }
          });
        }),
    ),
  );
  const elapsed = (performance.now() - start) / 1000;
  return { rps: count / elapsed, mbps: bytes / elapsed / 1024 / 1024, statuses };
}
