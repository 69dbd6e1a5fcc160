import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import type { ObjectStore } from '../../server/store/object-store.ts';
import { metadata, publishBody, simpleCrate } from '../cargo/crate-file.ts';
import { allKeys } from '../cargo/support.ts';
import { basic, createUser, startOci } from '../oci/support.ts';
import { drip, requestHead as head, openRaw as open } from '../support/raw-http.ts';
import type { TestServer } from '../support/wharf.ts';

/** Short timeouts so the bounds are seconds: the tick that checks bodies runs every 250 ms. */
const HTTP = { headersTimeoutSeconds: 1, bodyIdleTimeoutSeconds: 1, bodyTimeoutSeconds: 3 };
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('request timeouts over real sockets', () => {
  let server: TestServer;
  let oci: Record<string, string>;
  let cargoToken: string;

  beforeAll(async () => {
    server = await startOci({ http: HTTP });
    await createUser(server, 'alice', 'alice-password');
    const grant = await fetch(`${server.url}/v2/auth?service=wharf&scope=repository:alice/app:pull,push`, {
      headers: { authorization: basic('alice', 'alice-password') },
    });
    oci = { authorization: `Bearer ${((await grant.json()) as { token: string }).token}` };
    const login = await fetch(`${server.url}/ktra/api/v1/login/alice`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'alice-password' }),
    });
    cargoToken = ((await login.json()) as { token: string }).token;
  });
  afterAll(() => server?.stop());

  async function startUpload(): Promise<string> {
    const started = await fetch(`${server.url}/v2/alice/app/blobs/uploads/`, {
      method: 'POST',
      headers: oci,
    });
    expect(started.status).toBe(202);
    return started.headers.get('location') as string;
  }

  async function timeouts(reason: 'idle' | 'deadline'): Promise<number> {
    const text = await (await fetch(`${server.metricsUrl}/metrics`)).text();
    const line = text
      .split('\n')
      .find((l) => l.startsWith(`wharf_http_body_timeouts_total{reason="${reason}"}`));
    return line ? Number(line.split(' ')[1]) : 0;
  }

  it('answers 408 and closes a connection whose headers come too slowly (slowloris)', async () => {
    const connection = await open(server.url);
    connection.socket.write('POST /ktra/api/v1/login/alice HTTP/1.1\r\nHost: wharf.test\r\n');
    // One byte every 100 ms: always progressing, never finishing the headers.
    const dripping = drip(connection.socket, Buffer.from(`X-Slow: ${'a'.repeat(200)}`), 1, 100);
    const after = await connection.closed;
    await dripping;
    expect(connection.received()).toMatch(/^HTTP\/1\.1 408 /);
    // headersTimeoutSeconds, plus at most one check interval (1 s), plus scheduling slack.
    expect(after).toBeGreaterThanOrEqual(900);
    expect(after).toBeLessThan(3000);
  });

  it('closes a connection that sends nothing at all', async () => {
    const connection = await open(server.url);
    const after = await connection.closed;
    expect(after).toBeLessThan(3000);
  });

  it('cuts off a stalled blob chunk; the session keeps its earlier chunks and the client resumes', async () => {
    const location = await startUpload();
    const blob = randomBytes(48 * 1024);
    const first = await fetch(`${server.url}${location}`, {
      method: 'PATCH',
      headers: { ...oci, 'content-type': 'application/octet-stream', 'content-range': '0-16383' },
      body: blob.subarray(0, 16 * 1024),
    });
    expect(first.status).toBe(202);
    const keysBefore = await allKeys(server.store, 'oci/');
    const idleBefore = await timeouts('idle');

    // The second chunk announces 32 KiB, sends 8 KiB and stops.
    const connection = await open(server.url);
    connection.socket.write(
      head('PATCH', location, {
        ...oci,
        'content-type': 'application/octet-stream',
        'content-range': `${16 * 1024}-${48 * 1024 - 1}`,
        'content-length': 32 * 1024,
      }),
    );
    connection.socket.write(blob.subarray(16 * 1024, 24 * 1024));
    const sentAt = Date.now();
    await connection.closed;
    const stalledFor = Date.now() - sentAt;
    expect(connection.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(stalledFor).toBeGreaterThanOrEqual(900);
    expect(stalledFor).toBeLessThan(3000);
    expect(await timeouts('idle')).toBe(idleBefore + 1);

    // Nothing of the cut-off chunk is visible: the session still ends at 16 KiB, the store holds
    // what it held before the chunk.
    const status = await fetch(`${server.url}${location}`, { headers: oci });
    expect(status.status).toBe(204);
    expect(status.headers.get('range')).toBe('0-16383');
    expect(await allKeys(server.store, 'oci/')).toEqual(keysBefore);

    const resumed = await fetch(`${server.url}${location}`, {
      method: 'PATCH',
      headers: { ...oci, 'content-type': 'application/octet-stream', 'content-range': '16384-49151' },
      body: blob.subarray(16 * 1024),
    });
    expect(resumed.status).toBe(202);
    const done = await fetch(`${server.url}${location}?digest=${sha256(blob)}`, {
      method: 'PUT',
      headers: oci,
    });
    expect(done.status).toBe(201);
    const pulled = await fetch(`${server.url}/v2/alice/app/blobs/${sha256(blob)}`, { headers: oci });
    expect(Buffer.from(await pulled.arrayBuffer()).equals(blob)).toBe(true);
  });

  it('cuts off a stalled monolithic blob upload without leaving a blob or its bytes behind', async () => {
    const blob = randomBytes(64 * 1024);
    const keysBefore = await allKeys(server.store, 'oci/');
    const connection = await open(server.url);
    connection.socket.write(
      head('POST', `/v2/alice/app/blobs/uploads/?digest=${sha256(blob)}`, {
        ...oci,
        'content-type': 'application/octet-stream',
        'content-length': blob.length,
      }),
    );
    connection.socket.write(blob.subarray(0, 40 * 1024));
    const after = await connection.closed;
    expect(connection.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(after).toBeLessThan(3500);
    expect(await allKeys(server.store, 'oci/')).toEqual(keysBefore);
    const head404 = await fetch(`${server.url}/v2/alice/app/blobs/${sha256(blob)}`, {
      method: 'HEAD',
      headers: oci,
    });
    expect(head404.status).toBe(404);
  });

  it('lets a slow but steady blob upload run past the body deadline: streamed bodies only have the idle bound', async () => {
    const location = await startUpload();
    const blob = randomBytes(24 * 1024);
    const connection = await open(server.url);
    connection.socket.write(
      head('PATCH', location, {
        ...oci,
        'content-type': 'application/octet-stream',
        'content-length': blob.length,
      }),
    );
    // 1 KiB every 200 ms: 4.8 s in all, longer than bodyTimeoutSeconds (3), never idle for 1 s.
    await drip(connection.socket, blob, 1024, 200);
    await sleep(300);
    expect(connection.received()).toMatch(/^HTTP\/1\.1 202 /);
    connection.socket.destroy();
    const status = await fetch(`${server.url}${location}`, { headers: oci });
    expect(status.headers.get('range')).toBe(`0-${blob.length - 1}`);
  });

  it('cuts off a stalled cargo publish before anything is stored', async () => {
    const body = publishBody(metadata('stalled', '1.0.0'), await simpleCrate('stalled', '1.0.0'));
    const keysBefore = await allKeys(server.store, 'cargo/');
    const connection = await open(server.url);
    connection.socket.write(
      head('PUT', '/api/v1/crates/new', { authorization: cargoToken, 'content-length': body.length }),
    );
    connection.socket.write(body.subarray(0, body.length >> 1));
    const after = await connection.closed;
    expect(connection.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(after).toBeLessThan(3500);
    expect(await allKeys(server.store, 'cargo/')).toEqual(keysBefore);
  });

  it('holds a buffered body to its deadline even when it never stalls (a slow drip)', async () => {
    const body = publishBody(metadata('dripped', '1.0.0'), await simpleCrate('dripped', '1.0.0'));
    const deadlinesBefore = await timeouts('deadline');
    const connection = await open(server.url);
    connection.socket.write(
      head('PUT', '/api/v1/crates/new', { authorization: cargoToken, 'content-length': body.length }),
    );
    // A byte every 200 ms: never idle, but the whole body would take minutes.
    const dripping = drip(connection.socket, body, 1, 200);
    const after = await connection.closed;
    await dripping;
    expect(connection.received()).toMatch(/^HTTP\/1\.1 408 /);
    // bodyTimeoutSeconds (3) plus one tick, and not before the deadline.
    expect(after).toBeGreaterThanOrEqual(2900);
    expect(after).toBeLessThan(5000);
    expect(await timeouts('deadline')).toBe(deadlinesBefore + 1);
    const index = await fetch(`${server.url}/index/dr/ip/dripped`);
    expect(index.status).toBe(404);
  });

  it('logs each cut-off as a warning without the credentials the request carried', () => {
    const lines = server
      .logs()
      .split('\n')
      .filter((line) => line.includes('request body timed out'));
    expect(lines.length).toBeGreaterThanOrEqual(4);
    expect(lines.some((line) => line.includes('"reason":"deadline"'))).toBe(true);
    for (const line of lines) {
      expect(line).not.toContain(cargoToken);
      expect(line).not.toContain(oci.authorization?.slice(7));
    }
  });
});

/**
 * A real fs store whose writes start reading their body only after a pause, the way a slow S3
 * write applies backpressure: wharf, not the client, is the slow side.
 */
function slowWrites(store: FsObjectStore, pauseMs: number): ObjectStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'put') {
        return async (...args: Parameters<ObjectStore['put']>) => {
          if (args[0].startsWith('oci/data/')) await sleep(pauseMs);
          return target.put(...args);
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('request timeouts when the store is the slow side', () => {
  let dir: string;
  let server: TestServer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'wharf-slow-store-'));
    server = await startOci({ http: HTTP }, { store: slowWrites(await FsObjectStore.open(dir), 2500) });
    await createUser(server, 'alice', 'alice-password');
  });
  afterAll(async () => {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('does not count a body as idle while its bytes wait unread for the store', async () => {
    const grant = await fetch(`${server.url}/v2/auth?service=wharf&scope=repository:alice/app:pull,push`, {
      headers: { authorization: basic('alice', 'alice-password') },
    });
    const auth = { authorization: `Bearer ${((await grant.json()) as { token: string }).token}` };
    // 4 MiB: more than the socket and stream buffers hold, so the client waits on wharf for 2.5 s.
    const blob = randomBytes(4 * 1024 * 1024);
    const pushed = await fetch(`${server.url}/v2/alice/app/blobs/uploads/?digest=${sha256(blob)}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: blob,
    });
    expect(pushed.status).toBe(201);
  });
});
