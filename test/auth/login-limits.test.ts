import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { THROTTLE_PREFIX } from '../../server/identity/keys.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import { type Answer, basicAuth, requestFrom } from '../support/from-address.ts';
import { startServer, type TestServer } from '../support/wharf.ts';

const LIMITS = { perAccountAndAddress: 3, perAccount: 6, perAddress: 8 };
/** Longer than this file runs: no counter expires under a test. */
const WINDOW_SECONDS = 600;
const WIKI = { name: 'wiki', password: 'wiki-service-password' };
const RELAY = { name: 'relay', password: 'relay-service-password' };

/**
 * Password rate limits as people meet them, over real sockets: the attacker and the user are
 * different peer addresses (client sockets bound to 127.0.0.x), RestAuth services relay or do not.
 */
describe('password rate limits without lockout', () => {
  let server: TestServer;
  let url: string;

  beforeAll(async () => {
    server = await startServer({
      auth: {
        signup: 'open',
        adminPassword: 'admin-password-limits',
        rateLimit: { ...LIMITS, windowSeconds: WINDOW_SECONDS },
        services: [
          { ...WIKI, permissions: ['*'] },
          { ...RELAY, permissions: ['*'], forwardsClientAddress: true },
        ],
      },
    });
    url = server.url;
  });
  afterAll(async () => server?.stop());

  async function createUser(name: string): Promise<void> {
    const created = await requestFrom('127.0.0.1', `${url}/ktra/api/v1/new_user/${name}`, {
      method: 'POST',
      json: { password: `${name}-password` },
    });
    expect(created.status).toBe(200);
  }
  const ktraLogin = (from: string, user: string, password: string) =>
    requestFrom(from, `${url}/ktra/api/v1/login/${user}`, { method: 'POST', json: { password } });
  const viaService = (
    service: { name: string; password: string },
    user: string,
    password: string,
    forwardedFor?: string,
  ) =>
    requestFrom('127.0.0.1', `${url}/restauth/users/${user}/`, {
      method: 'POST',
      headers: {
        authorization: basicAuth(service.name, service.password),
        ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}),
      },
      form: { password },
    });
  const expectRetryAfter = (answer: Answer, atMost = WINDOW_SECONDS) => {
    expect(answer.status).toBe(429);
    const seconds = Number(answer.headers['retry-after']);
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThanOrEqual(atMost);
  };
  const auditLines = (event: string) =>
    server
      .logs()
      .split('\n')
      .filter((line) => line.includes(`"audit":"${event}"`))
      .map((line) => JSON.parse(line) as Record<string, unknown>);

  it('an attacker who fails many times for a user does not lock that user out', async () => {
    await createUser('ursula');
    const attacker = '127.0.0.2';
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await ktraLogin(attacker, 'ursula', `guess-${i}`)).status);
    expect(statuses).toEqual([403, 403, 403, ...Array(9).fill(429)]);
    // The attacker's own address is refused even with the right password: it guessed enough.
    expectRetryAfter(await ktraLogin(attacker, 'ursula', 'ursula-password'));

    // Ursula, from her own address, signs in at once, on every surface.
    const user = '127.0.0.3';
    expect((await ktraLogin(user, 'ursula', 'ursula-password')).status).toBe(200);
    const me = await requestFrom(user, `${url}/auth/api/v1/me`, {
      headers: { authorization: basicAuth('ursula', 'ursula-password') },
    });
    expect(me.status).toBe(200);
    const docker = await requestFrom(user, `${url}/v2/auth?service=wharf&scope=repository:ursula/app:pull`, {
      headers: { authorization: basicAuth('ursula', 'ursula-password') },
    });
    expect(docker.status).toBe(200);
    const throttled = auditLines('login.throttled').filter((line) => line.user === 'ursula');
    expect(throttled.every((line) => line.address === attacker)).toBe(true);
    expect(throttled[0]).toMatchObject({ limit: 'account-and-address' });
  });

  it('guessing one account from many addresses is bounded: past perAccount, one guess per new address', async () => {
    await createUser('victor');
    const bots = Array.from({ length: 10 }, (_, i) => `127.0.1.${i + 1}`);
    const failuresPerBot: number[] = [];
    for (const bot of bots) {
      let failures = 0;
      for (let i = 0; i < 5; i++) {
        const answer = await ktraLogin(bot, 'victor', `${bot}-guess-${i}`);
        if (answer.status === 403) failures++;
        else expectRetryAfter(answer);
      }
      failuresPerBot.push(failures);
    }
    // Two addresses reach perAccount (3 + 3 = 6); each later address gets one check, then waits.
    expect(failuresPerBot).toEqual([3, 3, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(failuresPerBot.reduce((sum, n) => sum + n)).toBe(LIMITS.perAccount + bots.length - 2);
    // A bot that guessed is refused even with the right password, Victor from elsewhere is not.
    expectRetryAfter(await ktraLogin('127.0.1.5', 'victor', 'victor-password'));
    expect(auditLines('login.throttled').at(-1)).toMatchObject({ user: 'victor', limit: 'account' });
    expect((await ktraLogin('127.0.1.200', 'victor', 'victor-password')).status).toBe(200);
  });

  it('guessing across accounts from one address is bounded by perAddress, right passwords included', async () => {
    await createUser('sasha');
    const stuffer = '127.0.2.1';
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++)
      statuses.push((await ktraLogin(stuffer, `stuffed${i}`, 'leaked-pass')).status);
    expect(statuses).toEqual([...Array(LIMITS.perAddress).fill(403), 429, 429]);
    expectRetryAfter(await ktraLogin(stuffer, 'sasha', 'sasha-password'));
    expect(auditLines('login.throttled').at(-1)).toMatchObject({ address: stuffer, limit: 'address' });
    expect((await ktraLogin('127.0.2.2', 'sasha', 'sasha-password')).status).toBe(200);
  });

  it('answers 429 with Retry-After in each surface’s own format', async () => {
    await createUser('fiona');
    const blocked = '127.0.3.1';
    for (let i = 0; i < LIMITS.perAddress; i++)
      expect((await ktraLogin(blocked, `nobody${i}`, 'wrong-password')).status).toBe(403);
    const right = basicAuth('fiona', 'fiona-password');

    const ktra = await ktraLogin(blocked, 'fiona', 'fiona-password');
    expectRetryAfter(ktra);
    expect(ktra.body).toEqual({ errors: [{ detail: 'too many failed attempts' }] });

    const api = await requestFrom(blocked, `${url}/auth/api/v1/me`, { headers: { authorization: right } });
    expectRetryAfter(api);
    expect(api.body).toEqual({ errors: [{ detail: 'too many failed attempts' }] });

    const docker = await requestFrom(blocked, `${url}/v2/auth?service=wharf&scope=repository:fiona/x:pull`, {
      headers: { authorization: right },
    });
    expectRetryAfter(docker);
    expect(docker.body).toMatchObject({ errors: [{ code: 'TOOMANYREQUESTS' }] });

    const csrf = await requestFrom(blocked, `${url}/csrf_token`);
    const cookie = String(csrf.headers['set-cookie']).split(';')[0]!;
    const signin = await requestFrom(blocked, `${url}/api/v1/signin`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': (csrf.body as { csrf_token: string }).csrf_token },
      json: { username: 'fiona', password: 'fiona-password' },
    });
    expectRetryAfter(signin);
    expect(signin.body).toMatchObject({ status: 429, error_type: 'too_many_requests' });

    // RestAuth: the relay speaks for the blocked address, in both password endpoints.
    const restauth = await viaService(RELAY, 'fiona', 'fiona-password', blocked);
    expectRetryAfter(restauth);
    expect(restauth.body).toEqual({ error: 'too many failed password checks' });
    const verify = await requestFrom('127.0.0.1', `${url}/restauth/verify`, {
      method: 'POST',
      headers: { authorization: basicAuth(RELAY.name, RELAY.password), 'x-forwarded-for': blocked },
      json: { username: 'fiona', password: 'fiona-password' },
    });
    expectRetryAfter(verify);
    expect(verify.body).toEqual({ error: 'too many failed password checks' });
  });

  it('a parallel burst from one address gets exactly perAccountAndAddress checks', async () => {
    await createUser('petra');
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => ktraLogin('127.0.4.1', 'petra', `burst-guess-${i}`)),
    );
    const statuses = answers.map((answer) => answer.status).sort();
    expect(statuses).toEqual([...Array(LIMITS.perAccountAndAddress).fill(403), ...Array(17).fill(429)]);
  });

  it('a wiki that relays no address: failures count per (wiki, user), other wiki users sign in', async () => {
    await createUser('wendy');
    await createUser('walter');
    for (let i = 0; i < LIMITS.perAccountAndAddress; i++)
      expect((await viaService(WIKI, 'wendy', `wiki-guess-${i}`)).status).toBe(404);
    expectRetryAfter(await viaService(WIKI, 'wendy', 'wendy-password'));
    // Everyone behind the wiki shares its one connection, yet the others are not refused, even
    // after more failures through it than perAddress: the wiki is not an address.
    for (let i = 0; i < LIMITS.perAddress + 2; i++)
      expect((await viaService(WIKI, `wikiuser${i}`, 'wrong-password')).status).toBe(404);
    expect((await viaService(WIKI, 'walter', 'walter-password')).status).toBe(200);
    // Wendy herself, straight to wharf, is another source.
    expect((await ktraLogin('127.0.5.1', 'wendy', 'wendy-password')).status).toBe(200);
  });

  it("ignores an untrusted service's X-Forwarded-For: rotating it does not buy more guesses", async () => {
    await createUser('uma');
    for (let i = 0; i < LIMITS.perAccountAndAddress; i++)
      expect((await viaService(WIKI, 'uma', `rotating-${i}`, `198.51.100.${10 + i}`)).status).toBe(404);
    expectRetryAfter(await viaService(WIKI, 'uma', 'uma-password', '198.51.100.99'));
    const failed = auditLines('login.failed').filter((line) => line.user === 'uma');
    expect(failed).toHaveLength(LIMITS.perAccountAndAddress);
    for (const line of failed) {
      expect(line.service).toBe('wiki');
      expect(line.address).toBeUndefined();
    }
  });

  it("uses a trusted relay's X-Forwarded-For as the end user's address (IPv6 by /64)", async () => {
    await createUser('rita');
    for (let i = 0; i < LIMITS.perAccountAndAddress; i++)
      expect((await viaService(RELAY, 'rita', `relayed-${i}`, '198.51.100.1')).status).toBe(404);
    expectRetryAfter(await viaService(RELAY, 'rita', 'rita-password', '198.51.100.1'));
    expect((await viaService(RELAY, 'rita', 'rita-password', '198.51.100.2')).status).toBe(200);
    expect(auditLines('login.failed').find((line) => line.user === 'rita')).toMatchObject({
      service: 'relay',
      address: '198.51.100.1',
    });
    // The relayed address also counts against the address across accounts, like a direct one.
    for (let i = 0; i < LIMITS.perAddress; i++)
      expect((await viaService(RELAY, `relayed${i}`, 'wrong-password', '198.51.100.3')).status).toBe(404);
    expectRetryAfter(await viaService(RELAY, 'rita', 'rita-password', '198.51.100.3'));

    // One IPv6 subscriber (/64) is one source, whatever its interface identifiers.
    await createUser('ivan');
    for (let i = 0; i < LIMITS.perAccountAndAddress; i++)
      expect((await viaService(RELAY, 'ivan', `v6-${i}`, `2001:db8:1:2::${i + 1}`)).status).toBe(404);
    expectRetryAfter(await viaService(RELAY, 'ivan', 'ivan-password', '2001:db8:1:2:ffff::1'));
    expect((await viaService(RELAY, 'ivan', 'ivan-password', '2001:db8:1:3::1')).status).toBe(200);
  });

  it('a service stored through the admin API may be trusted to relay addresses, or not', async () => {
    await createUser('stella');
    const admin = basicAuth('admin', 'admin-password-limits');
    const save = (name: string, forwardsClientAddress?: boolean) =>
      requestFrom('127.0.0.1', `${url}/auth/api/v1/services/${name}`, {
        method: 'PUT',
        headers: { authorization: admin },
        json: {
          permissions: ['user_verify_password'],
          password: `${name}-stored-password`,
          ...(forwardsClientAddress === undefined ? {} : { forwardsClientAddress }),
        },
      });
    expect((await save('stored-relay', true)).body).toMatchObject({ forwardsClientAddress: true });
    expect((await save('stored-wiki')).body).toMatchObject({ forwardsClientAddress: false });
    const listed = await requestFrom('127.0.0.1', `${url}/auth/api/v1/services`, {
      headers: { authorization: admin },
    });
    expect((listed.body as { services: unknown[] }).services).toEqual(
      expect.arrayContaining([
        {
          name: 'stored-relay',
          permissions: ['user_verify_password'],
          forwardsClientAddress: true,
          protocol: 'reference',
          userNames: 'registry',
          passwordMinLength: 8,
          groups: 'shared',
          source: 'store',
        },
        {
          name: 'stored-wiki',
          permissions: ['user_verify_password'],
          forwardsClientAddress: false,
          protocol: 'reference',
          userNames: 'registry',
          passwordMinLength: 8,
          groups: 'shared',
          source: 'store',
        },
      ]),
    );
    const relay = { name: 'stored-relay', password: 'stored-relay-stored-password' };
    const wiki = { name: 'stored-wiki', password: 'stored-wiki-stored-password' };
    for (let i = 0; i < LIMITS.perAccountAndAddress; i++) {
      expect((await viaService(relay, 'stella', `stored-${i}`, '198.51.100.70')).status).toBe(404);
      expect((await viaService(wiki, 'stella', `stored-${i}`, '198.51.100.70')).status).toBe(404);
    }
    expectRetryAfter(await viaService(relay, 'stella', 'stella-password', '198.51.100.70'));
    expect((await viaService(relay, 'stella', 'stella-password', '198.51.100.71')).status).toBe(200);
    // The stored wiki's header is ignored: another forwarded address does not help it.
    expectRetryAfter(await viaService(wiki, 'stella', 'stella-password', '198.51.100.71'));
  });

  it('a successful check writes nothing to the store', async () => {
    await createUser('sol');
    const before = await throttleKeys();
    for (let i = 0; i < 5; i++)
      expect((await ktraLogin(`127.0.6.${i + 1}`, 'sol', 'sol-password')).status).toBe(200);
    expect((await viaService(RELAY, 'sol', 'sol-password', '198.51.100.50')).status).toBe(200);
    expect((await viaService(WIKI, 'sol', 'sol-password')).status).toBe(200);
    expect(await throttleKeys()).toEqual(before);
  });

  async function throttleKeys(): Promise<string[]> {
    const listed = await server.store.list({ prefix: THROTTLE_PREFIX });
    return listed.objects.map((object) => `${object.key} ${object.etag}`);
  }
});

/**
 * A Registry in its own process calls the AuthService as a RestAuth service trusted to relay, and
 * relays what its own trusted proxies told it (clientAddress), never a header from anyone else.
 */
describe('a separate Registry relays the end user address it trusts', () => {
  let auth: TestServer;
  let registry: TestServer;
  const ingress = '127.0.8.1';
  const servicePassword = 'registry-service-password-limits';

  beforeAll(async () => {
    auth = await startServer({
      roles: ['auth'],
      auth: {
        signup: 'open',
        rateLimit: { ...LIMITS, windowSeconds: WINDOW_SECONDS },
        services: [
          {
            name: 'registry',
            password: servicePassword,
            permissions: ['user_verify_password', 'token_verify', 'user_exists', 'group_users_list'],
            forwardsClientAddress: true,
          },
        ],
      },
    });
    registry = await startServer({
      roles: ['registry'],
      trustedProxies: [ingress],
      registry: { authUrl: auth.url, serviceName: 'registry', servicePassword, credentialCacheSeconds: 0 },
    });
    const created = await requestFrom('127.0.0.1', `${auth.url}/ktra/api/v1/new_user/rob`, {
      method: 'POST',
      json: { password: 'rob-password' },
    });
    expect(created.status).toBe(200);
  });
  afterAll(async () => {
    await registry?.stop();
    await auth?.stop();
  });

  const dockerLogin = (from: string, password: string, forwardedFor?: string) =>
    requestFrom(from, `${registry.url}/v2/auth?service=wharf&scope=repository:rob/app:pull`, {
      headers: {
        authorization: basicAuth('rob', password),
        ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}),
      },
    });

  it('counts the address the ingress saw, so the user behind another address is not refused', async () => {
    for (let i = 0; i < LIMITS.perAccountAndAddress; i++)
      expect((await dockerLogin(ingress, `docker-guess-${i}`, '203.0.113.50')).status).toBe(401);
    const refused = await dockerLogin(ingress, 'rob-password', '203.0.113.50');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect((await dockerLogin(ingress, 'rob-password', '203.0.113.51')).status).toBe(200);
    const failed = auth
      .logs()
      .split('\n')
      .filter((line) => line.includes('"audit":"login.failed"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(failed).toHaveLength(LIMITS.perAccountAndAddress);
    for (const line of failed) expect(line).toMatchObject({ address: '203.0.113.50', service: 'registry' });
  });

  it('ignores X-Forwarded-For from a peer that is not its trusted proxy', async () => {
    // The same header from elsewhere is the peer's own address: a fresh source, not the refused one.
    expect((await dockerLogin('127.0.8.2', 'rob-password', '203.0.113.50')).status).toBe(200);
    expect((await dockerLogin('127.0.8.2', 'not-robs-password', '203.0.113.50')).status).toBe(401);
    expect(auth.logs()).toContain('"address":"127.0.8.2"');
  });
});

describe('a relaying service behind the AuthService’s own trusted proxy', () => {
  let server: TestServer;
  const proxy = '127.0.9.1';

  beforeAll(async () => {
    server = await startServer({
      roles: ['auth'],
      trustedProxies: [proxy],
      auth: { services: [{ ...RELAY, permissions: ['*'], forwardsClientAddress: true }] },
    });
  });
  afterAll(async () => server?.stop());

  const failedAddress = async (from: string, forwardedFor: string) => {
    const answer = await requestFrom(from, `${server.url}/restauth/users/nobody/`, {
      method: 'POST',
      headers: { authorization: basicAuth(RELAY.name, RELAY.password), 'x-forwarded-for': forwardedFor },
      form: { password: 'not-a-password' },
    });
    expect(answer.status).toBe(404);
    const lines = server
      .logs()
      .split('\n')
      .filter((line) => line.includes('"audit":"login.failed"'));
    return (JSON.parse(lines.at(-1)!) as { address?: string }).address;
  };

  it('takes the entry the service wrote, before the hops the trusted proxy appended', async () => {
    // The service wrote "198.51.100.80"; the proxy appended the service's address.
    expect(await failedAddress(proxy, '198.51.100.80, 127.0.9.2')).toBe('198.51.100.80');
    // Straight from the service, its last entry is what it relays (earlier ones are its clients' claims).
    expect(await failedAddress('127.0.9.2', '192.0.2.1, 198.51.100.81')).toBe('198.51.100.81');
  });
});

describe('a refused source hammering on', () => {
  let server: TestServer;
  let dataDir: string;
  let counterReads = 0;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-hammer-'));
    const fs = await FsObjectStore.open(dataDir);
    // Counts reads of failure counters, to see what a refused check costs the store.
    const store = new Proxy(fs, {
      get(target, property, receiver) {
        if (property === 'get')
          return (key: string, ...rest: unknown[]) => {
            if (key.startsWith(THROTTLE_PREFIX)) counterReads++;
            return (target.get as (...args: unknown[]) => unknown).call(target, key, ...rest);
          };
        const value = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    server = await startServer(
      { roles: ['auth'], auth: { signup: 'open', rateLimit: { ...LIMITS, windowSeconds: WINDOW_SECONDS } } },
      { store },
    );
  });
  afterAll(async () => {
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('costs no store reads once this process has refused it', async () => {
    const login = (password: string) =>
      requestFrom('127.0.15.1', `${server.url}/ktra/api/v1/login/nobody`, {
        method: 'POST',
        json: { password },
      });
    for (let i = 0; i < LIMITS.perAccountAndAddress; i++)
      expect((await login(`guess-${i}`)).status).toBe(403);
    expect((await login('refused-once')).status).toBe(429);
    const readsBefore = counterReads;
    for (let i = 0; i < 20; i++) {
      const answer = await login(`hammer-${i}`);
      expect(answer.status).toBe(429);
      expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0);
    }
    expect(counterReads).toBe(readsBefore);
  });
});
