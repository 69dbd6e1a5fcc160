import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/tools.ts';
import { basic } from './support.ts';

const NODE = path.join(REPO_ROOT, 'node_modules', '.bin', 'node');
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

interface Running {
  child: ChildProcess;
  url: string;
}

/** The real program (`node server/main.ts`), configured by environment, on a random port. */
async function launch(dataDir: string): Promise<Running> {
  const child = spawn(NODE, ['server/main.ts'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOST: '127.0.0.1',
      PORT: '0',
      WHARF_METRICS_PORT: '0',
      WHARF_DATA_DIR: dataDir,
      WHARF_SIGNUP: 'open',
      WHARF_LOG_LEVEL: 'info',
      WHARF_OCI_GC_ENABLED: 'false',
    },
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wharf did not start:\n${output}`)), 60_000);
    const look = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    };
    child.stdout?.on('data', look);
    child.stderr?.on('data', look);
    child.once('exit', (code) => reject(new Error(`wharf exited with ${code}:\n${output}`)));
  });
  return { child, url };
}

function killed(running: Running): Promise<void> {
  return new Promise((resolve) => {
    running.child.once('exit', () => resolve());
    running.child.kill('SIGKILL');
  });
}

async function tokenFor(url: string): Promise<string> {
  const response = await fetch(`${url}/v2/auth?service=wharf&scope=repository:alice/app:pull,push`, {
    headers: { authorization: basic('alice', 'alice-password') },
  });
  return `Bearer ${((await response.json()) as { token: string }).token}`;
}

/** Sends headers and part of a body, then calls `then` while the server waits for the rest. */
function partialRequest(
  url: string,
  method: string,
  headers: Record<string, string>,
  part: Buffer,
): Promise<void> {
  return new Promise((resolve) => {
    const request = http.request(url, { method, headers });
    request.on('error', () => {});
    request.write(part, () => setTimeout(resolve, 300));
  });
}

describe('crash safety (SIGKILL mid-upload and mid-manifest push)', () => {
  let dataDir: string;
  let server: Running | null = null;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-oci-crash-'));
  });
  afterAll(async () => {
    if (server && server.child.exitCode === null && server.child.signalCode === null) await killed(server);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('shows nothing partial after a restart, and the client can push again', async () => {
    server = await launch(dataDir);
    const signup = await fetch(`${server.url}/ktra/api/v1/new_user/alice`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'alice-password' }),
    });
    expect(signup.status).toBe(200);
    let auth = await tokenFor(server.url);

    const blob = randomBytes(24 * 1024 * 1024);
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: sha256(config),
          size: config.length,
        },
        layers: [
          { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(blob), size: blob.length },
        ],
      }),
    );
    // The config is complete before the crash; the layer is not.
    expect(
      (
        await fetch(`${server.url}/v2/alice/app/blobs/uploads/?digest=${sha256(config)}`, {
          method: 'POST',
          headers: { authorization: auth, 'content-type': 'application/octet-stream' },
          body: config,
        })
      ).status,
    ).toBe(201);
    // A chunked session with one complete chunk, then a chunk cut off by the crash.
    const session = await fetch(`${server.url}/v2/alice/app/blobs/uploads/`, {
      method: 'POST',
      headers: { authorization: auth },
    });
    let location = new URL(String(session.headers.get('location')), server.url).toString();
    const firstChunk = blob.subarray(0, 6 * 1024 * 1024);
    const patched = await fetch(location, {
      method: 'PATCH',
      headers: {
        authorization: auth,
        'content-type': 'application/octet-stream',
        'content-range': `0-${firstChunk.length - 1}`,
      },
      body: firstChunk,
    });
    expect(patched.status).toBe(202);

    // In flight at the moment of the kill: a monolithic layer upload, a chunk, and a manifest push.
    await partialRequest(
      `${server.url}/v2/alice/app/blobs/uploads/?digest=${sha256(blob)}`,
      'POST',
      {
        authorization: auth,
        'content-type': 'application/octet-stream',
        'content-length': String(blob.length),
      },
      blob.subarray(0, 10 * 1024 * 1024),
    );
    await partialRequest(
      location,
      'PATCH',
      {
        authorization: auth,
        'content-type': 'application/octet-stream',
        'content-range': `${firstChunk.length}-${blob.length - 1}`,
        'content-length': String(blob.length - firstChunk.length),
      },
      blob.subarray(firstChunk.length, firstChunk.length + 9 * 1024 * 1024),
    );
    await partialRequest(
      `${server.url}/v2/alice/app/manifests/v1`,
      'PUT',
      {
        authorization: auth,
        'content-type': 'application/vnd.oci.image.manifest.v1+json',
        'content-length': String(manifest.length),
      },
      manifest.subarray(0, 100),
    );
    await killed(server);

    server = await launch(dataDir);
    auth = await tokenFor(server.url);
    const headers = { authorization: auth };
    // The restarted server listens on another port: same session path, new origin.
    location = new URL(new URL(location).pathname, server.url).toString();
    expect(
      (await fetch(`${server.url}/v2/alice/app/blobs/${sha256(blob)}`, { method: 'HEAD', headers })).status,
    ).toBe(404);
    expect((await fetch(`${server.url}/v2/alice/app/manifests/v1`, { headers })).status).toBe(404);
    const tags = (await (await fetch(`${server.url}/v2/alice/app/tags/list`, { headers })).json()) as {
      tags: string[];
    };
    expect(tags.tags).toEqual([]);
    // The session survived at its last committed offset: the cut chunk counts for nothing.
    const status = await fetch(location, { headers });
    expect(status.status).toBe(204);
    expect(status.headers.get('range')).toBe(`0-${firstChunk.length - 1}`);
    expect((await fetch(`${server.url}/v2/alice/app/blobs/${sha256(config)}`, { headers })).status).toBe(200);

    // The client resumes: the rest of the layer, then the manifest.
    const rest = blob.subarray(firstChunk.length);
    const finished = await fetch(`${location}?digest=${sha256(blob)}`, {
      method: 'PUT',
      headers: {
        ...headers,
        'content-type': 'application/octet-stream',
        'content-range': `${firstChunk.length}-${blob.length - 1}`,
      },
      body: rest,
    });
    expect(finished.status).toBe(201);
    const put = await fetch(`${server.url}/v2/alice/app/manifests/v1`, {
      method: 'PUT',
      headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    });
    expect(put.status).toBe(201);
    const pulled = Buffer.from(
      await (await fetch(`${server.url}/v2/alice/app/blobs/${sha256(blob)}`, { headers })).arrayBuffer(),
    );
    expect(pulled.equals(blob)).toBe(true);
    // And a fresh monolithic push of the same content is accepted (deduplicated).
    const again = await fetch(`${server.url}/v2/alice/app/blobs/uploads/?digest=${sha256(blob)}`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/octet-stream' },
      body: blob,
    });
    expect(again.status).toBe(201);
    await killed(server);
  }, 180_000);
});
