import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { imageManifest } from './layout.ts';
import { toolPath } from './support.ts';

/** distribution 2.8 (Debian's docker-registry), anonymous, on a random port: upstream 1. */
export async function startDistribution(dir: string): Promise<{ url: string; stop(): Promise<void> }> {
  const binary = await toolPath('distribution');
  const port = await freePort();
  const config = path.join(dir, 'distribution.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: error, accesslog: { disabled: true } }',
      `storage: { filesystem: { rootdirectory: ${path.join(dir, 'distribution')} }, delete: { enabled: true } }`,
      `http: { addr: 127.0.0.1:${port} }`,
      '',
    ].join('\n'),
  );
  const child = spawn(binary, ['serve', config], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/v2/`, child);
  return {
    url,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    },
  };
}

export type GateMode =
  | 'pass'
  | '429'
  | 'down'
  | 'corrupt-blobs'
  | 'cut-blobs'
  | 'slow-blobs'
  | 'redirect-blobs';

/**
 * The throttling proxy: a small HTTP proxy in front of an upstream registry that the tests switch
 * between passing requests through, answering 429 (Docker Hub's rate limit), refusing connections
 * (upstream down), and damaging blob bodies (one byte flipped, or cut in the middle). It records
 * every request it sees, so tests count what reached the upstream.
 */
export class ThrottlingProxy {
  mode: GateMode = 'pass';
  readonly requests: string[] = [];
  /** The headers of each request, in the order of `requests`. */
  readonly headers: http.IncomingHttpHeaders[] = [];
  /** Slows blob bodies down (as `slow-blobs`) whatever the mode: 5 ms per chunk. */
  slow = false;
  /** When each blob GET's body was passed on whole (`METHOD path` and `performance.now()`). */
  readonly completed: { line: string; at: number }[] = [];
  /** Where `redirect-blobs` sends blob GETs (as blob storage behind a registry would). */
  redirectTo = '';
  url = '';
  private readonly server: http.Server;
  private readonly target: URL;

  constructor(upstream: string) {
    this.target = new URL(upstream);
    this.server = http.createServer((request, response) => this.handle(request, response));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Requests seen as `METHOD path`, matching a pattern. */
  count(method: string, pattern: RegExp): number {
    return this.requests.filter((line) => line.startsWith(`${method} `) && pattern.test(line)).length;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    this.requests.push(`${request.method} ${request.url}`);
    this.headers.push(request.headers);
    if (
      this.mode === 'redirect-blobs' &&
      request.method === 'GET' &&
      /\/blobs\/sha256:/.test(request.url ?? '')
    ) {
      response.writeHead(307, { location: `${this.redirectTo}${request.url}`, 'content-length': 0 });
      response.end();
      return;
    }
    if (this.mode === 'down') {
      request.socket.destroy();
      return;
    }
    if (this.mode === '429') {
      response.writeHead(429, { 'content-type': 'application/json', 'retry-after': '60' });
      response.end(
        JSON.stringify({
          errors: [{ code: 'TOOMANYREQUESTS', message: 'You have reached your pull rate limit' }],
        }),
      );
      return;
    }
    const upstream = http.request(
      {
        host: this.target.hostname,
        port: this.target.port,
        path: request.url,
        method: request.method,
        // The Host the client used: a registry behind it names this proxy in its token realm.
        headers: request.headers,
      },
      (answer) => {
        const isBlob = /\/blobs\/sha256:/.test(request.url ?? '') && request.method === 'GET';
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        if (!isBlob || (this.mode === 'pass' && !this.slow)) {
          answer.pipe(response);
          return;
        }
        let seen = 0;
        const length = Number(answer.headers['content-length'] ?? 0);
        answer.on('data', (chunk: Buffer) => {
          if (this.mode === 'cut-blobs' && seen + chunk.length > length / 2) {
            response.destroy();
            answer.destroy();
            return;
          }
          if (this.mode === 'corrupt-blobs' && seen === 0) {
            chunk = Buffer.from(chunk);
            chunk[0] = (chunk[0] ?? 0) ^ 0xff;
          }
          seen += chunk.length;
          // Paused until the client drained and, when slow, 5 ms have passed.
          const drained = response.write(chunk);
          const slow = this.mode === 'slow-blobs' || this.slow;
          let waits = (drained ? 0 : 1) + (slow ? 1 : 0);
          if (waits === 0) return;
          answer.pause();
          const done = () => {
            if (--waits === 0) answer.resume();
          };
          if (!drained) response.once('drain', done);
          if (slow) setTimeout(done, 5);
        });
        answer.on('end', () => {
          response.end();
          this.completed.push({ line: `${request.method} ${request.url}`, at: performance.now() });
        });
      },
    );
    upstream.on('error', () => response.destroy());
    request.pipe(upstream);
  }
}

/** A pushed image: its manifest's digest and the layer's. */
export interface PushedImage {
  manifest: string;
  layer: string;
  layerBytes: number;
}

/**
 * Pushes a one-layer image by plain HTTP (monolithic blob uploads) to a registry that needs no
 * credentials, or with the given headers. The layer is `bytes` of random data.
 */
export async function pushImage(
  registry: string,
  repository: string,
  tag: string,
  bytes: number | Buffer,
  headers: Record<string, string> = {},
): Promise<PushedImage> {
  const layer = typeof bytes === 'number' ? randomBytes(bytes) : bytes;
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', tag, nonce: randomBytes(8).toString('hex') }),
  );
  for (const blob of [layer, config]) {
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const start = await fetch(`${registry}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers });
    if (start.status !== 202) throw new Error(`POST upload: ${start.status} ${await start.text()}`);
    const location = new URL(start.headers.get('location') as string, registry);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, {
      method: 'PUT',
      headers: { ...headers, 'content-type': 'application/octet-stream' },
      body: blob,
    });
    if (put.status !== 201) throw new Error(`PUT blob: ${put.status} ${await put.text()}`);
  }
  const manifest = imageManifest(config, [layer]);
  const put = await fetch(`${registry}/v2/${repository}/manifests/${tag}`, {
    method: 'PUT',
    headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  if (put.status !== 201) throw new Error(`PUT manifest: ${put.status} ${await put.text()}`);
  return {
    manifest: `sha256:${createHash('sha256').update(manifest).digest('hex')}`,
    layer: `sha256:${createHash('sha256').update(layer).digest('hex')}`,
    layerBytes: layer.length,
  };
}

export async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitFor(url: string, child: ChildProcess): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (child.exitCode !== null) throw new Error(`${url}: the process exited with ${child.exitCode}`);
    try {
      await fetch(url);
      return;
    } catch {
      await sleep(50);
    }
  }
  throw new Error(`${url} did not start`);
}
