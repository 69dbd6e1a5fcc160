import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { buildWharf, type Wharf } from '../../server/app.ts';
import { validateConfig } from '../../server/config/load.ts';
import type { WharfConfig } from '../../server/config/types.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import type { ObjectStore } from '../../server/store/object-store.ts';

const SERVICE = { name: 'cargo-tests', password: 'cargo-tests-service-password' };
const PASSWORD = 'correct horse battery staple';

/**
 * Users, groups and tokens made through the real AuthService endpoints, as an operator or a user
 * would: Ktra's `new_user` (sign-up open in these tests), RestAuth's groups (as a service), and
 * named scoped tokens from `/auth/api/v1/tokens`.
 */
export class Accounts {
  private readonly wharf: Wharf;
  private readonly tokens = new Map<string, string>();
  private counter = 0;

  constructor(wharf: Wharf) {
    this.wharf = wharf;
  }

  private async call(
    method: 'POST' | 'GET',
    url: string,
    headers: Record<string, string>,
    payload?: unknown,
  ) {
    const res = await this.wharf.app.inject({
      method,
      url,
      headers,
      ...(payload ? { payload: payload as object } : {}),
    });
    if (res.statusCode >= 300) throw new Error(`${method} ${url} → ${res.statusCode} ${res.body}`);
    return res;
  }

  /** Creates a user with Ktra's endpoint and returns its login token (unrestricted). */
  async addUser(name: string, { groups = [] as string[] } = {}): Promise<string> {
    const res = await this.call('POST', `/ktra/api/v1/new_user/${name}`, {}, { password: PASSWORD });
    const token = (res.json() as { token: string }).token;
    this.tokens.set(name, token);
    const service = `Basic ${Buffer.from(`${SERVICE.name}:${SERVICE.password}`).toString('base64')}`;
    for (const group of groups) {
      const exists = await this.wharf.app.inject({
        method: 'GET',
        url: `/restauth/groups/${group}`,
        headers: { authorization: service },
      });
      if (exists.statusCode === 404)
        await this.call('POST', '/restauth/groups', { authorization: service }, { group, users: [name] });
      else
        await this.call(
          'POST',
          `/restauth/groups/${group}/users`,
          { authorization: service },
          { user: name },
        );
    }
    return token;
  }

  /** The user's login token, or a new named token with the given scopes. */
  async token(name: string, scopes?: string[]): Promise<string> {
    const login = this.tokens.get(name);
    if (!login) throw new Error(`no user ${name}`);
    if (!scopes) return login;
    this.counter += 1;
    const res = await this.call(
      'POST',
      '/auth/api/v1/tokens',
      { authorization: login },
      { name: `t${this.counter}`, scopes },
    );
    return (res.json() as { token: string }).token;
  }
}

export interface TestRegistry {
  wharf: Wharf;
  app: Wharf['app'];
  url: string;
  /** The `/metrics` listener (empty without `listen`). */
  metricsUrl: string;
  store: ObjectStore;
  dataDir: string;
  accounts: Accounts;
  config: WharfConfig;
  close(): Promise<void>;
}

/**
 * A whole wharf (auth and registry roles, as `npm start` runs it) on 127.0.0.1:random, on an fs
 * store in a temp dir, or on the given one (a second process on the same data).
 */
export async function startRegistry({
  cargo = {},
  dataDir,
  listen = true,
}: {
  cargo?: Record<string, unknown>;
  dataDir?: string;
  listen?: boolean;
} = {}): Promise<TestRegistry> {
  const ownDir = !dataDir;
  const dir = dataDir ?? (await mkdtemp(path.join(tmpdir(), 'wharf-cargo-')));
  const config = validateConfig({
    roles: ['auth', 'registry'],
    logLevel: 'silent',
    store: { dataDir: dir },
    auth: { signup: 'open', services: [{ ...SERVICE, permissions: ['*'] }] },
    registry: { cargo },
  });
  const store = await FsObjectStore.open(dir);
  const wharf = await buildWharf(config, store, pino({ level: process.env.WHARF_TEST_LOG ?? 'silent' }));
  let url = '';
  let metricsUrl = '';
  if (listen) {
    url = await wharf.app.listen({ host: '127.0.0.1', port: 0 });
    metricsUrl = await wharf.metricsApp.listen({ host: '127.0.0.1', port: 0 });
  } else await wharf.app.ready();
  return {
    wharf,
    app: wharf.app,
    url,
    metricsUrl,
    store,
    dataDir: dir,
    accounts: new Accounts(wharf),
    config,
    async close() {
      await wharf.close();
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
