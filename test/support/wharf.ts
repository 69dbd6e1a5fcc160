import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { buildWharf, type Wharf } from '../../server/app.ts';
import { validateConfig } from '../../server/config/load.ts';
import type { WharfConfig } from '../../server/config/types.ts';
import { loggerOptions } from '../../server/observability/logger.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import type { ObjectStore } from '../../server/store/object-store.ts';

export interface TestServer {
  wharf: Wharf;
  config: WharfConfig;
  store: ObjectStore;
  /** http://127.0.0.1:PORT */
  url: string;
  /** http://127.0.0.1:METRICS_PORT, the `/metrics` listener (empty without `listen`). */
  metricsUrl: string;
  /** Every log line the server wrote, as text, for tests that search logs for secrets. */
  logs(): string;
  stop(): Promise<void>;
}

/**
 * A real server on a random loopback port with an fs store in a temporary directory, built from a
 * raw configuration exactly as the program would validate it.
 */
export async function startServer(
  raw: Record<string, unknown> = {},
  options: { store?: ObjectStore; listen?: boolean } = {},
): Promise<TestServer> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-test-'));
  const config = validateConfig({ logLevel: 'info', ...raw, store: { dataDir, ...(raw.store as object) } });
  const store = options.store ?? (await FsObjectStore.open(dataDir));
  let captured = '';
  const sink = new Writable({
    write(chunk, _encoding, done) {
      captured += chunk.toString();
      done();
    },
  });
  const logger = pino(loggerOptions(config.logLevel), sink);
  const wharf = await buildWharf(config, store, logger);
  let url = '';
  let metricsUrl = '';
  if (options.listen !== false) {
    url = await wharf.app.listen({ host: '127.0.0.1', port: 0 });
    metricsUrl = await wharf.metricsApp.listen({ host: '127.0.0.1', port: 0 });
  } else {
    await wharf.app.ready();
  }
  return {
    wharf,
    config,
    store,
    url,
    metricsUrl,
    logs: () => captured,
    async stop() {
      await wharf.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
