import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../support/wharf.ts';
import { basic, createUser, startOci } from './support.ts';

const MiB = 1024 * 1024;
const blob = randomBytes(20 * MiB + 123);
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;

interface Download {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A real socket download; `slow` reads in small steps so the server has to wait on the client. */
function download(url: string, headers: Record<string, string>, slow = false): Promise<Download> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent: false }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          if (slow) {
            response.pause();
            setTimeout(() => response.resume(), 1);
          }
        });
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks),
          }),
        );
        response.on('error', reject);
      })
      .on('error', reject);
  });
}

/** Blob downloads over real sockets: the fs store writes them through pooled buffers. */
describe('OCI blob downloads', () => {
  let server: TestServer;
  let auth: Record<string, string>;
  let blobUrl: string;

  beforeAll(async () => {
    server = await startOci();
    await createUser(server, 'alice', 'alice-password');
    const token = await fetch(`${server.url}/v2/auth?service=wharf&scope=repository:alice/big:pull,push`, {
      headers: { authorization: basic('alice', 'alice-password') },
    });
    auth = { authorization: `Bearer ${((await token.json()) as { token: string }).token}` };
    const push = await fetch(`${server.url}/v2/alice/big/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: blob,
    });
    expect(push.status).toBe(201);
    blobUrl = `${server.url}/v2/alice/big/blobs/${digest}`;
  });

  afterAll(async () => {
    await server?.stop();
  });

  /** Successful GETs counted under the /v2/ route template. */
  async function blobGets(): Promise<number> {
    const metrics = await (await fetch(`${server.metricsUrl}/metrics`)).text();
    const line = metrics
      .split('\n')
      .find((text) => text.startsWith('wharf_http_requests_total{method="GET",route="/v2/*",status="200"}'));
    return Number(line?.split(' ').at(-1) ?? 0);
  }

  it('serves concurrent downloads, fast and slow, each byte for byte', async () => {
    const downloads = await Promise.all(
      Array.from({ length: 6 }, (_, index) => download(blobUrl, auth, index % 2 === 1)),
    );
    for (const { status, headers, body } of downloads) {
      expect(status).toBe(200);
      expect(headers['content-length']).toBe(String(blob.length));
      expect(headers['docker-content-digest']).toBe(digest);
      expect(headers['content-type']).toBe('application/octet-stream');
      expect(body.equals(blob)).toBe(true);
    }
  });

  it('serves a byte range with 206 and Content-Range', async () => {
    const start = 3 * MiB + 5;
    const end = 11 * MiB;
    const { status, headers, body } = await download(blobUrl, { ...auth, range: `bytes=${start}-${end}` });
    expect(status).toBe(206);
    expect(headers['content-range']).toBe(`bytes ${start}-${end}/${blob.length}`);
    expect(body.equals(blob.subarray(start, end + 1))).toBe(true);
  });

  it('survives clients that hang up mid-download, and counts finished downloads in the metrics', async () => {
    await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<void>((resolve) => {
            const request = http.get(blobUrl, { headers: auth, agent: false }, (response) => {
              let received = 0;
              response.on('data', (chunk: Buffer) => {
                received += chunk.length;
                if (received > MiB) request.destroy();
              });
              response.on('close', () => resolve());
            });
            request.on('error', () => resolve());
          }),
      ),
    );
    const before = await blobGets();
    const after = await download(blobUrl, auth);
    expect(after.body.equals(blob)).toBe(true);
    // The download bypasses Fastify's stream sending; its onResponse hooks still count it.
    expect((await blobGets()) - before).toBe(1);
  });
});
