import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import pino from 'pino';
import { mePage } from '../../server/auth/me-page.ts';
import { validateConfig } from '../../server/config/load.ts';
import type { WharfConfig } from '../../server/config/types.ts';
import type { IdentityClient, Principal } from '../../server/identity/principal.ts';
import { Metrics } from '../../server/observability/metrics.ts';
import { createRegistryRole } from '../../server/registry/role.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import type { ObjectStore } from '../../server/store/object-store.ts';

/**
 * STAND-IN for the AuthService (branch `identity` had not landed in main when these tests were
 * written): tokens, users and groups held in memory, answering the IdentityClient contract the way
 * the real AuthService does (null for an unknown token, scopes null = unrestricted).
 */
export class StandInIdentity implements IdentityClient {
  private readonly tokens = new Map<string, Principal>();
  private readonly users = new Set<string>();
  private readonly groups = new Map<string, Set<string>>();
  private counter = 0;

  addUser(name: string, { groups = [] as string[] } = {}): void {
    this.users.add(name);
    for (const group of groups) {
      const members = this.groups.get(group) ?? new Set();
      members.add(name);
      this.groups.set(group, members);
    }
  }

  /** A new API token for a user; `scopes` null = unrestricted. */
  issueToken(name: string, scopes: string[] | null = null): string {
    this.counter += 1;
    const token = `wharf_test_${name}_${this.counter}_${Math.random().toString(36).slice(2)}`;
    const groups = [...this.groups].filter(([, members]) => members.has(name)).map(([group]) => group);
    this.tokens.set(token, { kind: 'user', name, groups, scopes, via: 'token', admin: false });
    return token;
  }

  async verifyToken(token: string): Promise<Principal | null> {
    return this.tokens.get(token) ?? null;
  }
  async verifyPassword(): Promise<Principal | null> {
    return null;
  }
  async userExists(name: string): Promise<boolean> {
    return this.users.has(name);
  }
  async groupExists(name: string): Promise<boolean> {
    return this.groups.has(name);
  }
}

export interface TestRegistry {
  app: FastifyInstance;
  url: string;
  store: ObjectStore;
  dataDir: string;
  identity: StandInIdentity;
  config: WharfConfig;
  close(): Promise<void>;
}

/** A registry (plus the /me page) on 127.0.0.1:random, on an fs store in a temp dir (or the given one). */
export async function startRegistry({
  cargo = {},
  identity = new StandInIdentity(),
  dataDir,
  listen = true,
}: {
  cargo?: Record<string, unknown>;
  identity?: StandInIdentity;
  dataDir?: string;
  listen?: boolean;
} = {}): Promise<TestRegistry> {
  const ownDir = !dataDir;
  const dir = dataDir ?? (await mkdtemp(path.join(tmpdir(), 'wharf-cargo-')));
  const config = validateConfig({
    roles: ['auth', 'registry'],
    store: { dataDir: dir },
    registry: { cargo },
  });
  const store = await FsObjectStore.open(dir);
  const logger = pino({ level: process.env.WHARF_TEST_LOG ?? 'silent' });
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, maxParamLength: 500 },
    forceCloseConnections: true,
  });
  const role = await createRegistryRole({ config, store, metrics: new Metrics(), logger, identity });
  await role.register(app);
  await app.register(mePage, { config });
  let url = '';
  if (listen) url = (await app.listen({ host: '127.0.0.1', port: 0 })).replace('localhost', '127.0.0.1');
  else await app.ready();
  return {
    app,
    url,
    store,
    dataDir: dir,
    identity,
    config,
    async close() {
      await app.close();
      await store.close();
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Every key under a prefix, for "no trace left" assertions. */
export async function allKeys(store: ObjectStore, prefix = 'cargo/'): Promise<string[]> {
  const keys: string[] = [];
  let continuationToken: string | undefined;
  do {
    const page = await store.list({ prefix, ...(continuationToken ? { continuationToken } : {}) });
    keys.push(...page.objects.map((o) => o.key));
    continuationToken = page.nextContinuationToken;
  } while (continuationToken);
  return keys.sort();
}
