import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { buildWharf, type Wharf } from '../../server/app.ts';
import { validateConfig } from '../../server/config/load.ts';
import type { OpenIdProviderConfig, WharfConfig } from '../../server/config/types.ts';
import { createLogger } from '../../server/observability/logger.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import { startProvider, type TestProvider } from './op.ts';

const SERVICE = { name: 'registry', password: 'registry-service-password-0123' };
export const ADMIN_PASSWORD = 'bootstrap-admin-password';

/** What a registry asks the AuthService (RestAuth API, as a service), to check tokens and accounts. */
export interface AuthServiceChecks {
  /** The account a token belongs to (`POST /restauth/verify {token}`), or null when refused. */
  accountOfToken(token: string): Promise<string | null>;
  /** `docker login`'s check: a username with a token as the password, or null when refused. */
  accountOfPassword(username: string, password: string): Promise<string | null>;
  userExists(name: string): Promise<boolean>;
  /** A local password account, made by an administrator's service. */
  createLocalUser(name: string, password: string): Promise<void>;
}

export interface Harness {
  baseUrl: string;
  /** Each replica's `/metrics` listener. */
  metricsUrls: string[];
  provider: TestProvider;
  auth: AuthServiceChecks;
  /** Everything the replicas logged, as JSON lines. */
  logs: string[];
  config: WharfConfig;
  close(): Promise<void>;
}

/**
 * A test provider and two wharf AuthService replicas (the real server program's buildWharf), each
 * with its own store handle on one data directory, behind one address answering requests in turn
 * (a round-robin load balancer): every multi-request flow crosses replicas, which proves that
 * pending logins and sessions live in the store and not in a process.
 */
export async function startHarness(
  options: {
    provider?: Partial<OpenIdProviderConfig>;
    /** More providers, all backed by the same test provider (same client), told apart by name. */
    extraProviders?: Partial<OpenIdProviderConfig>[];
    op?: { userinfo?: boolean; tamperNonce?: boolean };
    /** Extra settings for the server (e.g. roles, registry). */
    settings?: Record<string, unknown>;
  } = {},
): Promise<Harness> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = await startProvider({ redirectBaseUrl: baseUrl, ...options.op });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-oidc-'));
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
    roles: ['auth'],
    publicUrl: baseUrl,
    logLevel: 'info',
    store: { dataDir },
    auth: {
      bcryptCost: 10,
      adminPassword: ADMIN_PASSWORD,
      services: [{ ...SERVICE, permissions: ['*'] }],
    },
    openid: {
      tokenEncryptionKey: randomBytes(32).toString('base64'),
      providers: [
        providerSettings(options.provider),
        ...(options.extraProviders ?? []).map(providerSettings),
      ],
    },
    ...options.settings,
  });
  const replicas: Wharf[] = [];
  const metricsUrls: string[] = [];
  try {
    for (let replica = 0; replica < 2; replica++) {
      const store = await FsObjectStore.open(dataDir);
      const wharf = await buildWharf(config, store, createLogger('info', sink).child({ replica }));
      await wharf.app.ready();
      replicas.push(wharf);
      metricsUrls.push(await wharf.metricsApp.listen({ host: '127.0.0.1', port: 0 }));
    }
  } catch (error) {
    for (const wharf of replicas) await wharf.close();
    await provider.close();
    server.close();
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  let turn = 0;
  server.on('request', (req, res) => replicas[turn++ % replicas.length]!.app.routing(req, res));

  const service = `Basic ${Buffer.from(`${SERVICE.name}:${SERVICE.password}`).toString('base64')}`;
  const restauth = (method: string, url: string, body?: unknown) =>
    fetch(`${baseUrl}/restauth${url}`, {
      method,
      headers: { authorization: service, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  const verified = async (response: Response) =>
    response.status === 200 ? ((await response.json()) as { name: string }).name : null;
  const auth: AuthServiceChecks = {
    accountOfToken: async (token) => verified(await restauth('POST', '/verify', { token })),
    accountOfPassword: async (username, password) =>
      verified(await restauth('POST', '/verify', { username, password })),
    userExists: async (name) => (await restauth('GET', `/users/${name}`)).status === 200,
    async createLocalUser(name, password) {
      const response = await restauth('POST', '/users', { username: name, password });
      if (response.status !== 201) throw new Error(`creating ${name}: ${response.status}`);
    },
  };

  return {
    baseUrl,
    metricsUrls,
    provider,
    auth,
    logs,
    config,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      for (const wharf of replicas) await wharf.close();
      await provider.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
