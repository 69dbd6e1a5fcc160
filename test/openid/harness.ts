import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { createOpenIdLogin } from '../../server/auth/openid/login.ts';
import { validateConfig } from '../../server/config/load.ts';
import type { OpenIdProviderConfig, WharfConfig } from '../../server/config/types.ts';
import { createLogger } from '../../server/observability/logger.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import { InterimIdentity } from './interim-identity.ts';
import { startProvider, type TestProvider } from './op.ts';

export interface Harness {
  baseUrl: string;
  provider: TestProvider;
  identity: InterimIdentity;
  /** Everything the replicas logged, as JSON lines. */
  logs: string[];
  config: WharfConfig;
  close(): Promise<void>;
}

/**
 * A test provider and two wharf replicas on one store behind one address, answering requests in
 * turn (a round-robin load balancer): every multi-request flow crosses replicas, which proves that
 * pending logins and sessions live in the store and not in a process.
 */
export async function startHarness(
  options: {
    provider?: Partial<OpenIdProviderConfig>;
    /** More providers, all backed by the same test provider (same client), told apart by name. */
    extraProviders?: Partial<OpenIdProviderConfig>[];
    op?: { userinfo?: boolean; tamperNonce?: boolean };
  } = {},
): Promise<Harness> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = await startProvider({ redirectBaseUrl: baseUrl, ...options.op });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-oidc-'));
  const store = await FsObjectStore.open(dataDir);
  const identity = new InterimIdentity(store);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const providerSettings = (overrides: Partial<OpenIdProviderConfig> = {}) => ({
    name: 'corp',
    issuerUrl: provider.issuer,
    clientId: provider.clientId,
    clientSecret: provider.clientSecret,
    redirectBaseUrl: baseUrl,
    additionalScopes: ['profile', 'groups'],
    authorizedGroups: ['firm/crate-owners'],
    authorizedUsers: ['carol'],
    allowInsecureRequests: true,
    ...overrides,
  });
  const config = validateConfig({
    store: { dataDir },
    logLevel: 'info',
    openid: {
      tokenEncryptionKey: randomBytes(32).toString('base64'),
      providers: [
        providerSettings(options.provider),
        ...(options.extraProviders ?? []).map(providerSettings),
      ],
    },
  });
  const replicas: FastifyInstance[] = [];
  const closers: (() => Promise<void>)[] = [];
  try {
    for (let replica = 0; replica < 2; replica++) {
      const logger = createLogger('info', sink).child({ replica });
      const app = Fastify({ loggerInstance: logger as FastifyBaseLogger });
      const login = await createOpenIdLogin({ config: config.openid, store, logger, identity });
      await login!.register(app);
      await app.ready();
      replicas.push(app);
      closers.push(async () => {
        await login!.close();
        await app.close();
      });
    }
  } catch (error) {
    await provider.close();
    server.close();
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  let turn = 0;
  server.on('request', (req, res) => replicas[turn++ % replicas.length]!.routing(req, res));
  return {
    baseUrl,
    provider,
    identity,
    logs,
    config,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      for (const close of closers) await close();
      await provider.close();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
