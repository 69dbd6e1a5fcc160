import { connect, type Socket } from 'node:net';

/**
 * A raw HTTP/1.1 connection, for requests no HTTP client sends on purpose: headers that trickle in,
 * bodies that stop half-way or never end. Records what the server sent and when it hung up.
 */
export interface RawConnection {
  socket: Socket;
  /** Everything the server sent so far (latin1). */
  received(): string;
  /** Milliseconds from the connect until the server closed the connection. */
  closed: Promise<number>;
}

export function openRaw(url: string): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
    });
    const openedAt = Date.now();
    const closed = new Promise<number>((done) => socket.on('close', () => done(Date.now() - openedAt)));
    socket.once('connect', () => {
      socket.on('error', () => {}); // a reset after the server hangs up is an expected end
      resolve({ socket, received: () => text, closed });
    });
    socket.once('error', reject);
  });
}

/** A request head: request line, Host, the given headers, blank line. */
export function requestHead(
  method: string,
  target: string,
  headers: Record<string, string | number>,
): string {
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}`);
  return [`${method} ${target} HTTP/1.1`, 'Host: wharf.test', ...lines, '', ''].join('\r\n');
}

/** One chunk of a `Transfer-Encoding: chunked` body. */
export function chunk(data: Buffer | string): Buffer {
  const bytes = Buffer.from(data);
  return Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]);
}

/** Resolves once the server's answer (head and body up to its Content-Length) has arrived. */
export async function response(connection: RawConnection, timeoutMs = 5000): Promise<RawResponse> {
  const started = Date.now();
  for (;;) {
    const parsed = parseResponse(connection.received());
    if (parsed) return parsed;
    if (connection.socket.destroyed && !parsed)
      throw new Error(`no complete response: ${connection.received()}`);
    if (Date.now() - started > timeoutMs) throw new Error(`no response within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function parseResponse(text: string): RawResponse | null {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  const body = text.slice(end + 4);
  if (body.length < length) return null;
  return { status: Number(statusLine.split(' ')[1]), headers, body: body.slice(0, length) };
}

/** Writes `data` a slice at a time, `everyMs` apart, until the socket closes or all is sent. */
export async function drip(socket: Socket, data: Buffer, slice: number, everyMs: number): Promise<void> {
  for (let offset = 0; offset < data.length && !socket.destroyed; offset += slice) {
    socket.write(data.subarray(offset, offset + slice));
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
