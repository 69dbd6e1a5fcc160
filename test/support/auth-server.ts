import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { buildWharf, type Wharf } from '../../server/app.ts';
import { validateConfig } from '../../server/config/load.ts';
import type { WharfConfig } from '../../server/config/types.ts';
import { createLogger } from '../../server/observability/logger.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import type { ObjectStore } from '../../server/store/object-store.ts';

/** A password long enough for the service schema; tests use it for their RestAuth service. */
export const SERVICE_PASSWORD = 'service-password-0123456789';

export interface RunningServer {
  url: string;
  /** The `/metrics` listener. */
  metricsUrl: string;
  wharf: Wharf;
  store: ObjectStore;
  dataDir: string;
  /** Every log line the server wrote, as pino produced it. */
  logs: string[];
  close(): Promise<void>;
}

/**
 * Starts a real server (auth role by default) on 127.0.0.1:<random> with an fs store in a temp
 * directory, its pino output captured in memory.
 */
export async function startServer(
  settings: Record<string, unknown> = {},
  { dataDir: sharedDir, store: givenStore }: { dataDir?: string; store?: ObjectStore } = {},
): Promise<RunningServer> {
  const dataDir = sharedDir ?? (await mkdtemp(path.join(tmpdir(), 'wharf-auth-')));
  const config: WharfConfig = validateConfig({
    roles: ['auth'],
    logLevel: 'debug',
    store: { driver: 'fs', dataDir },
    ...settings,
    auth: {
      services: [{ name: 'tester', password: SERVICE_PASSWORD, permissions: ['*'] }],
      ...(settings.auth as Record<string, unknown> | undefined),
    },
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const store = givenStore ?? (await FsObjectStore.open(dataDir));
  const wharf = await buildWharf(config, store, createLogger(config.logLevel, sink));
  const address = await wharf.app.listen({ port: 0, host: '127.0.0.1' });
  const metricsUrl = await wharf.metricsApp.listen({ port: 0, host: '127.0.0.1' });
  return {
    url: address,
    metricsUrl,
    wharf,
    store,
    dataDir,
    logs,
    async close() {
      await wharf.close();
      if (!sharedDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

export const SERVICE_AUTH = basic('tester', SERVICE_PASSWORD);

/** fetch with a JSON body (or a form body when `form` is given). */
export async function call(
  url: string,
  method: string,
  { json, form, auth }: { json?: unknown; form?: Record<string, string>; auth?: string } = {},
): Promise<{ status: number; headers: Headers; body: unknown; text: string }> {
  const headers: Record<string, string> = {};
  if (auth) headers.authorization = auth;
  let body: string | undefined;
  if (json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(form).toString();
  }
  const response = await fetch(url, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {}
  return { status: response.status, headers: response.headers, body: parsed, text };
}
