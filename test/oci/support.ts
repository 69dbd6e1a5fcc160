import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import formbody from '@fastify/formbody';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import pino from 'pino';
import { validateConfig } from '../../server/config/load.ts';
import type { WharfConfig } from '../../server/config/types.ts';
import type { IdentityClient, Principal } from '../../server/identity/principal.ts';
import { Metrics } from '../../server/observability/metrics.ts';
import { createRegistryRole } from '../../server/registry/role.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';

export interface StandInUser {
  password: string;
  groups?: string[];
  admin?: boolean;
}

/**
 * STAND-IN IdentityClient: the real AuthService (branch `identity`) has not landed in main yet.
 * It answers verifyPassword from a fixed user table; everything else about the registry is real.
 */
export function standInIdentity(users: Record<string, StandInUser>): IdentityClient {
  const principal = (name: string, user: StandInUser): Principal => ({
    kind: 'user',
    name,
    groups: user.groups ?? [],
    scopes: null,
    via: 'password',
    admin: user.admin ?? false,
  });
  return {
    async verifyPassword(username, secret) {
      const user = users[username];
      return user && user.password === secret ? principal(username, user) : null;
    },
    async verifyToken() {
      return null;
    },
    async userExists(name) {
      return name in users;
    },
    async groupExists(name) {
      return Object.values(users).some((user) => user.groups?.includes(name));
    },
  };
}

export interface TestRegistry {
  app: FastifyInstance;
  url: string;
  dataDir: string;
  config: WharfConfig;
  close(): Promise<void>;
}

/** A registry-role server on a random port with a fs store in a temp dir. */
export async function startRegistry(
  users: Record<string, StandInUser>,
  overrides: Record<string, unknown> = {},
  { listen = true }: { listen?: boolean } = {},
): Promise<TestRegistry> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-oci-'));
  const config = validateConfig({
    roles: ['auth', 'registry'],
    logLevel: 'silent',
    store: { driver: 'fs', dataDir },
    ...overrides,
  });
  const store = await FsObjectStore.open(dataDir);
  const logger = pino({ level: process.env.OCI_TEST_LOG ?? 'silent' });
  const app = Fastify({
    loggerInstance: logger as unknown as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, maxParamLength: 500 },
    forceCloseConnections: 'idle',
  });
  await app.register(formbody);
  const metrics = new Metrics();
  const role = await createRegistryRole({ config, store, metrics, logger, identity: standInIdentity(users) });
  await role.register(app);
  let url = '';
  if (listen) url = await app.listen({ host: '127.0.0.1', port: 0 });
  else await app.ready();
  return {
    app,
    url,
    dataDir,
    config,
    async close() {
      await app.close();
      await role.close?.();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs a hack/ script and returns the tool path it prints last. */
export async function toolPath(name: string): Promise<string> {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { stdout } = await promisify(execFile)('bash', [path.resolve('hack', `${name}.sh`)], {
    maxBuffer: 16 * 1024 * 1024,
    timeout: 900_000,
  });
  const last = stdout.trim().split('\n').at(-1);
  if (!last) throw new Error(`hack/${name}.sh printed no path`);
  return last;
}
