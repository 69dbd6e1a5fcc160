import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FsObjectStore } from '../../server/store/fs-store.ts';
import { startServer, type TestServer } from '../support/wharf.ts';

describe('health, readiness and metrics', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  it('answers /healthz and /readyz while the store answers', async () => {
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ok', store: 'fs' });
  });

  it('reports requests by route template, method and status, with durations and process metrics', async () => {
    await fetch(`${server.url}/healthz`);
    await fetch(`${server.url}/no/such/route/12345`);
    const response = await fetch(`${server.metricsUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    const body = await response.text();
    expect(body).toMatch(/wharf_http_requests_total\{method="GET",route="\/healthz",status="200"\} \d+/);
    expect(body).toMatch(
      /wharf_http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="\/healthz",status="200"\}/,
    );
    // An unmatched URL is counted without its path, so scanners cannot explode the label set.
    expect(body).not.toContain('/no/such/route/12345');
    expect(body).toContain('process_resident_memory_bytes');
    expect(body).toContain('nodejs_eventloop_lag_seconds');
  });

  it('serves /metrics only on the metrics port, and nothing else there', async () => {
    // The main port is what an Ingress routes: /metrics is not there, under any spelling.
    for (const path of ['/metrics', '/metrics/', '//metrics', '/Metrics'])
      expect((await fetch(`${server.url}${path}`)).status, path).toBe(404);
    expect((await fetch(`${server.metricsUrl}/healthz`)).status).toBe(404);
    expect((await fetch(`${server.metricsUrl}/v2/`)).status).toBe(404);
    // Scrapes are not requests of the main port.
    await fetch(`${server.metricsUrl}/metrics`);
    const body = await (await fetch(`${server.metricsUrl}/metrics`)).text();
    expect(body).not.toMatch(/wharf_http_requests_total\{[^}]*route="\/metrics"/);
    expect(body).toMatch(/wharf_http_requests_total\{method="GET",route="unmatched",status="404"\} [1-9]/);
  });
});

it('is not ready when its store is gone', async () => {
  const server = await startServer();
  try {
    await rm((server.store as FsObjectStore).root, { recursive: true, force: true });
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'store unreachable' });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  } finally {
    await server.stop();
  }
});
