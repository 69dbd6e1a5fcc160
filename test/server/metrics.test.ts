import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import { basic, createUser, startOci } from '../oci/support.ts';
import { scrape } from '../support/metrics.ts';
import { freePort, runWharf, startWharfProcess, type WharfProcess } from '../support/spawn-wharf.ts';
import type { TestServer } from '../support/wharf.ts';

describe('the metrics listener of the real program', () => {
  let dataDir: string;
  let server: WharfProcess;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-metrics-'));
    server = await startWharfProcess({ WHARF_DATA_DIR: dataDir, WHARF_OCI_GC_ENABLED: 'false' });
  });
  afterAll(async () => {
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('listens on its own port and serves /metrics there only', async () => {
    expect(server.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.metricsUrl).not.toBe(server.url);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.url}/metrics`)).status).toBe(404);
    const metrics = await fetch(`${server.metricsUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(await metrics.text()).toMatch(
      /wharf_http_requests_total\{method="GET",route="\/healthz",status="200"\} 1\b/,
    );
    expect((await fetch(`${server.metricsUrl}/readyz`)).status).toBe(404);
    expect(server.output()).toMatch(/"metricsPort":\d+.*"msg":"wharf is ready"/);
  });

  it('refuses to start when the metrics port is taken or is the main port, naming the setting', async () => {
    const taken = new URL(server.metricsUrl!).port;
    const busy = runWharf({
      HOST: '127.0.0.1',
      PORT: '0',
      WHARF_METRICS_PORT: taken,
      WHARF_DATA_DIR: dataDir,
    });
    expect(await busy.exit).toBe(2);
    expect(busy.output()).toContain(
      `wharf: configuration setting "metricsPort" (WHARF_METRICS_PORT): 127.0.0.1:${taken} is already in use`,
    );
    const port = String(await freePort());
    const same = runWharf({
      HOST: '127.0.0.1',
      PORT: port,
      WHARF_METRICS_PORT: port,
      WHARF_DATA_DIR: dataDir,
    });
    expect(await same.exit).toBe(2);
    expect(same.output()).toContain('"metricsPort" (WHARF_METRICS_PORT) must differ from "port" (PORT)');
  });
});

describe('what an operator of the registry watches', () => {
  let server: TestServer;
  let auth: Record<string, string>;
  const blob = randomBytes(64 * 1024);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;

  beforeAll(async () => {
    server = await startOci({ registry: { oci: { gc: { enabled: false } } } });
    await createUser(server, 'alice', 'alice-password');
    const token = await fetch(`${server.url}/v2/auth?service=wharf&scope=repository:alice/app:pull,push`, {
      headers: { authorization: basic('alice', 'alice-password') },
    });
    auth = { authorization: `Bearer ${((await token.json()) as { token: string }).token}` };
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('times every store operation, by operation and result', async () => {
    const count = 'wharf_store_operation_duration_seconds_count';
    const before = await scrape(server.metricsUrl);
    const push = await fetch(`${server.url}/v2/alice/app/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: blob,
    });
    expect(push.status).toBe(201);
    expect((await fetch(`${server.url}/v2/alice/app/manifests/missing`, { headers: auth })).status).toBe(404);
    const after = await scrape(server.metricsUrl);
    // The pushed body streamed into the store: a put_stream, apart from buffered puts (documents).
    expect(after.value(count, { operation: 'put_stream', result: 'ok' })).toBe(
      before.value(count, { operation: 'put_stream', result: 'ok' }) + 1,
    );
    expect(after.value(count, { operation: 'get', result: 'ok' })).toBeGreaterThan(
      before.value(count, { operation: 'get', result: 'ok' }),
    );
    expect(after.value(count, { result: 'error' })).toBe(0);
    expect(
      after.value('wharf_store_operation_duration_seconds_bucket', {
        operation: 'put_stream',
        result: 'ok',
        le: '+Inf',
      }),
    ).toBe(after.value(count, { operation: 'put_stream', result: 'ok' }));
  });

  it('counts upload sessions open in the store, the same on every replica, and uploads in flight', async () => {
    const sessions = async (url = server.metricsUrl) =>
      (await scrape(url)).value('wharf_oci_upload_sessions');
    // Counted from the store at most once a second: a changed count shows within that.
    const sessionsBecome = (count: number, url = server.metricsUrl) =>
      waitFor(async () => (await sessions(url)) === count, 5000);
    const inFlight = async () =>
      (await scrape(server.metricsUrl)).value('wharf_oci_upload_requests_in_flight');
    // A second replica on the same store: sessions are state of the store, not of a process.
    const replica = await startOci(
      {},
      { store: await FsObjectStore.open((server.store as FsObjectStore).root) },
    );
    try {
      const open = async () => {
        const response = await fetch(`${server.url}/v2/alice/app/blobs/uploads/`, {
          method: 'POST',
          headers: auth,
        });
        expect(response.status).toBe(202);
        return new URL(response.headers.get('location')!, server.url).toString();
      };
      expect(await sessions()).toBe(0);
      const first = await open();
      const second = await open();
      await sessionsBecome(2);
      await sessionsBecome(2, replica.metricsUrl);

      // A PATCH whose body is still arriving is in flight on this replica, and only while it lasts.
      expect(await inFlight()).toBe(0);
      const patched = new Promise<number>((resolve, reject) => {
        const request = http.request(first, {
          method: 'PATCH',
          headers: { ...auth, 'content-type': 'application/octet-stream' },
        });
        request.on('response', (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        });
        request.on('error', reject);
        request.write(blob.subarray(0, 1024));
        waitFor(async () => (await inFlight()) === 1).then(
          () => request.end(blob.subarray(1024)),
          (error: unknown) => {
            request.destroy();
            reject(error);
          },
        );
      });
      expect(await patched).toBe(202);
      expect(await inFlight()).toBe(0);

      const completed = await fetch(`${first}${first.includes('?') ? '&' : '?'}digest=${digest}`, {
        method: 'PUT',
        headers: auth,
      });
      expect(completed.status).toBe(201);
      await sessionsBecome(1);
      expect((await fetch(second, { method: 'DELETE', headers: auth })).status).toBe(204);
      await sessionsBecome(0);
      await sessionsBecome(0, replica.metricsUrl);
    } finally {
      await replica.stop();
    }
  });

  it('counts a store that fails as errors of its operation', async () => {
    const failing = await startOci();
    try {
      await rm((failing.store as FsObjectStore).root, { recursive: true, force: true });
      expect((await fetch(`${failing.url}/readyz`)).status).toBe(503);
      const metrics = await scrape(failing.metricsUrl);
      expect(
        metrics.value('wharf_store_operation_duration_seconds_count', { operation: 'ping', result: 'error' }),
      ).toBe(1);
      // The scrape itself still answers (the upload-session count is unavailable).
      expect(metrics.text).toContain('wharf_oci_upload_sessions');
    } finally {
      await failing.stop();
    }
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('condition not met in time');
}
