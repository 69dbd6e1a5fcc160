import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Wharf } from '../../server/app.ts';
import {
  basic,
  call,
  type RunningServer,
  SERVICE_AUTH,
  SERVICE_PASSWORD,
  startServer,
} from '../support/auth-server.ts';
import { startServer as startRegistry, type TestServer } from '../support/wharf.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The current value of one of the server's own gauges or counters. */
async function metric(wharf: Wharf, name: string): Promise<number> {
  const found = await wharf.metrics.registry.getSingleMetric(name)?.get();
  return found?.values[0]?.value ?? Number.NaN;
}

/** Waits for a state of the pool (not for a duration); fails clearly if it never comes. */
async function until(what: string, condition: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 45_000; Date.now() < deadline; ) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`the password pool never reached: ${what}`);
}

const idle = (wharf: Wharf) => async () =>
  (await metric(wharf, 'wharf_password_workers_busy')) === 0 &&
  (await metric(wharf, 'wharf_password_queue_length')) === 0;

describe('password checks on a pool of one thread with room for one waiting job', () => {
  let dataDir: string;
  let auth: RunningServer;
  let registry: TestServer;
  const slowPassword = 'slow-user-password';

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-pool-'));
    // A user whose hash has cost 15 (≈2^5 times a cost-10 check): checking it keeps the thread
    // busy for seconds, long enough to fill the queue behind it and probe every surface.
    const slow = await startServer({ auth: { bcryptCost: 15, passwordWorkers: 2 } }, { dataDir });
    const created = await call(`${slow.url}/restauth/users/`, 'POST', {
      auth: SERVICE_AUTH,
      json: { username: 'slow', password: slowPassword },
    });
    expect(created.status).toBe(201);
    await slow.close();

    auth = await startServer(
      {
        roles: ['auth', 'registry'],
        logLevel: 'warn',
        // No credential cache: every request below reaches the pool.
        registry: { credentialCacheSeconds: 0 },
        auth: {
          bcryptCost: 10,
          signup: 'open',
          passwordWorkers: 1,
          passwordQueueLimit: 1,
          services: [
            { name: 'tester', password: SERVICE_PASSWORD, permissions: ['*'] },
            // A client of the released RestAuth library, which knows 500 but not 503.
            { name: 'wiki', password: SERVICE_PASSWORD, permissions: ['*'], protocol: 'restauth-0.6' },
          ],
        },
      },
      { dataDir },
    );
    await until('idle after start-up (the dummy hash)', idle(auth.wharf));
    const alice = await call(`${auth.url}/ktra/api/v1/new_user/alice`, 'POST', {
      json: { password: 'alice-password' },
    });
    expect(alice.status).toBe(200);
    // A registry in another server, asking this AuthService over RestAuth.
    registry = await startRegistry({
      roles: ['registry'],
      logLevel: 'warn',
      registry: {
        authUrl: auth.url,
        serviceName: 'tester',
        servicePassword: SERVICE_PASSWORD,
        credentialCacheSeconds: 0,
      },
    });
  }, 120_000);
  afterAll(async () => {
    await registry?.stop();
    await auth?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const verify = (password: string) =>
    call(`${auth.url}/restauth/verify`, 'POST', {
      auth: SERVICE_AUTH,
      json: { username: 'alice', password },
    });
  const restAuthCheck = (user: string, password: string) =>
    call(`${auth.url}/restauth/users/${user}/`, 'POST', { auth: SERVICE_AUTH, form: { password } });
  const ktraLogin = (password: string) =>
    call(`${auth.url}/ktra/api/v1/login/alice`, 'POST', { json: { password } });
  const dockerToken = (base: string, password: string) =>
    call(`${base}/v2/auth?service=wharf&scope=repository:alice/app:pull`, 'GET', {
      auth: basic('alice', password),
    });

  it('right and wrong passwords through RestAuth, Ktra and docker token auth (in and out of process)', async () => {
    expect(await verify('alice-password')).toMatchObject({
      status: 200,
      body: { kind: 'user', name: 'alice', via: 'password' },
    });
    expect((await verify('wrong-password')).status).toBe(404);
    expect((await restAuthCheck('alice', 'alice-password')).status).toBe(200);
    expect((await restAuthCheck('alice', 'wrong-password')).status).toBe(404);
    const login = await ktraLogin('alice-password');
    expect(login.status).toBe(200);
    expect((login.body as { token: string }).token).toMatch(/^wharf_/);
    expect((await ktraLogin('wrong-password')).status).toBe(403);
    for (const base of [auth.url, registry.url]) {
      const granted = await dockerToken(base, 'alice-password');
      expect(granted.status).toBe(200);
      expect((granted.body as { token: string }).token).toBeTruthy();
      expect((await dockerToken(base, 'wrong-password')).status).toBe(401);
    }
    expect(await metric(auth.wharf, 'wharf_password_workers')).toBe(1);
  });

  it('refuses a check at once when the queue is full: 503 with Retry-After, in each surface format', async () => {
    const refusedBefore = await metric(auth.wharf, 'wharf_password_queue_refused_total');
    const csrf = await call(`${auth.url}/csrf_token`, 'GET');
    const cookie = String(csrf.headers.get('set-cookie')).split(';')[0] as string;
    const csrfToken = (csrf.body as { csrf_token: string }).csrf_token;

    // Two slow checks: one runs on the only thread, one waits in the only place in the queue.
    const running = restAuthCheck('slow', 'not-the-password-1');
    await until(
      'one thread busy',
      async () => (await metric(auth.wharf, 'wharf_password_workers_busy')) === 1,
    );
    const waiting = restAuthCheck('slow', 'not-the-password-2');
    await until(
      'one job waiting',
      async () => (await metric(auth.wharf, 'wharf_password_queue_length')) === 1,
    );

    // Distinct credentials where the registry would share one check between concurrent requests.
    const [
      restAuthVerify,
      restAuthUser,
      ktra,
      ktraSignup,
      adminApi,
      tokenGet,
      tokenPost,
      signin,
      remoteToken,
      released,
    ] = await Promise.all([
      verify('alice-password'),
      restAuthCheck('alice', 'alice-password'),
      ktraLogin('alice-password'),
      call(`${auth.url}/ktra/api/v1/new_user/bob`, 'POST', { json: { password: 'bob-password' } }),
      call(`${auth.url}/auth/api/v1/me`, 'GET', { auth: basic('alice', 'alice-password') }),
      dockerToken(auth.url, 'alice-password'),
      fetch(`${auth.url}/v2/auth`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=password&service=wharf&username=alice&password=alice-password-2',
      }).then(async (response) => ({
        status: response.status,
        headers: response.headers,
        body: await response.json(),
      })),
      fetch(`${auth.url}/api/v1/signin`, {
        method: 'POST',
        headers: { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'alice', password: 'alice-password-3' }),
      }).then(async (response) => ({
        status: response.status,
        headers: response.headers,
        body: await response.json(),
      })),
      dockerToken(registry.url, 'alice-password'),
      call(`${auth.url}/restauth/users/alice/`, 'POST', {
        auth: basic('wiki', SERVICE_PASSWORD),
        json: { password: 'alice-password' },
      }),
    ]);

    const answers = {
      restAuthVerify,
      restAuthUser,
      ktra,
      ktraSignup,
      adminApi,
      tokenGet,
      tokenPost,
      signin,
      remoteToken,
    };
    for (const [surface, answer] of Object.entries(answers)) {
      expect(answer.status, surface).toBe(503);
      expect(Number(answer.headers.get('retry-after')), surface).toBeGreaterThanOrEqual(1);
    }
    // The restauth-0.6 protocol: 500, the server failure its clients know, with Retry-After.
    expect([released.status, released.text]).toEqual([500, expect.stringMatching(/busy/)]);
    expect(Number(released.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // RestAuth: `{error}`; Ktra and the admin API: cargo's `{errors:[{detail}]}`.
    expect(restAuthVerify.body).toEqual({ error: expect.stringMatching(/busy/) });
    expect(restAuthUser.body).toEqual({ error: expect.stringMatching(/busy/) });
    for (const answer of [ktra, ktraSignup, adminApi])
      expect(answer.body).toEqual({ errors: [{ detail: expect.stringMatching(/busy/) }] });
    // Docker token endpoint, here and in a registry whose AuthService answered 503: distribution's UNAVAILABLE.
    for (const answer of [tokenGet, tokenPost, remoteToken])
      expect((answer.body as { errors: { code: string }[] }).errors[0]?.code).toBe('UNAVAILABLE');
    expect(signin.body).toMatchObject({ status: 503, error_type: 'service_unavailable' });
    // Refused, not queued: each probe was one job turned away, and nothing was created.
    expect(await metric(auth.wharf, 'wharf_password_queue_refused_total')).toBe(
      refusedBefore + Object.keys(answers).length + 1, // and the released-protocol check
    );
    expect((await call(`${auth.url}/restauth/users/bob`, 'GET', { auth: SERVICE_AUTH })).status).toBe(404);

    // The job that waited was served, not dropped; then the pool is idle and takes checks again.
    expect((await running).status).toBe(404);
    expect((await waiting).status).toBe(404);
    expect(await idle(auth.wharf)()).toBe(true);
    expect((await ktraLogin('alice-password')).status).toBe(200);
    expect((await dockerToken(registry.url, 'alice-password')).status).toBe(200);
  });
});

describe('with passwordWorkers 0', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ logLevel: 'warn', auth: { signup: 'open', passwordWorkers: 0 } });
  });
  afterAll(async () => server?.close());

  it('checks passwords on the event loop, right and wrong', async () => {
    const created = await call(`${server.url}/ktra/api/v1/new_user/inline`, 'POST', {
      json: { password: 'inline-password' },
    });
    expect(created.status).toBe(200);
    const login = (password: string) =>
      call(`${server.url}/ktra/api/v1/login/inline`, 'POST', { json: { password } });
    expect((await login('inline-password')).status).toBe(200);
    expect((await login('wrong-password')).status).toBe(403);
    expect(await metric(server.wharf, 'wharf_password_workers')).toBe(0);
  });
});

it('closing wharf stops the bcrypt threads: a program that closes it ends by itself', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-pool-close-'));
  // The real server assembly, a password hashed and checked on 2 threads, then close() and no
  // process.exit: a thread left running would keep the process alive.
  const program = `
    import { buildWharf } from './server/app.ts';
    import { validateConfig } from './server/config/load.ts';
    import { createLogger } from './server/observability/logger.ts';
    import { FsObjectStore } from './server/store/fs-store.ts';
    const dataDir = ${JSON.stringify(dataDir)};
    const config = validateConfig({ roles: ['auth'], logLevel: 'warn', store: { dataDir },
      auth: { signup: 'open', passwordWorkers: 2 } });
    const wharf = await buildWharf(config, await FsObjectStore.open(dataDir), createLogger('warn'));
    const url = await wharf.app.listen({ port: 0, host: '127.0.0.1' });
    const post = (path) => fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'closing-password' }) });
    console.log('signup', (await post('/ktra/api/v1/new_user/closer')).status);
    console.log('login', (await post('/ktra/api/v1/login/closer')).status);
    await wharf.close();
    console.log('closed');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '--eval', program], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  try {
    // Not a timing assertion: a generous bound so that a hang fails with the program's output.
    const exited = await new Promise<number | null | 'still running'>((resolve) => {
      const timer = setTimeout(() => resolve('still running'), 40_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    expect(exited, output).toBe(0);
    expect(output).toContain('signup 200');
    expect(output).toContain('login 200');
    expect(output).toContain('closed');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  }
});

it('stops a thread that stayed idle and starts it again for the next check, with a queue of 0', async () => {
  const { PasswordPool } = await import('../../server/identity/password-pool.ts');
  const { Metrics } = await import('../../server/observability/metrics.ts');
  const metrics = new Metrics();
  const threads = async () =>
    (await metrics.registry.getSingleMetric('wharf_password_threads')?.get())?.values[0]?.value;
  // queueLimit 0: a check that finds the thread stopped must wait for its start, not be refused.
  const pool = await PasswordPool.start({ workers: 1, queueLimit: 0, idleMillis: 100, metrics });
  try {
    const hash = await pool.hash('idle-password', 4);
    expect(await threads()).toBe(1);
    for (const deadline = Date.now() + 10_000; pool.threads > 0 && Date.now() < deadline; )
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(pool.threads).toBe(0);
    expect(await threads()).toBe(0);
    expect(await pool.verify('idle-password', hash)).toBe(true);
    expect(await pool.verify('wrong-password', hash)).toBe(false);
    expect(pool.threads).toBe(1);
    // Two at once on a stopped one-thread pool with no queue: one waits for the start, one is refused.
    for (const deadline = Date.now() + 10_000; pool.threads > 0 && Date.now() < deadline; )
      await new Promise((resolve) => setTimeout(resolve, 20));
    const both = await Promise.allSettled([
      pool.verify('idle-password', hash),
      pool.verify('idle-password', hash),
    ]);
    expect(both.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected']);
  } finally {
    await pool.close();
  }
});
