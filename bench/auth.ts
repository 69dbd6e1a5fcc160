/**
 * Password checks against everything else: does a burst of logins stall the requests that do not
 * need a password? One server process (auth + registry, fs store) per password pool size, in one
 * run: bcrypt on the event loop (`WHARF_PASSWORD_WORKERS=0`, how wharf ran before the pool) and on
 * worker threads. For each it measures token checks (RestAuth `POST /restauth/verify {token}`) and
 * manifest GETs (`GET /v2/…/manifests/<digest>` with a registry token), p50 and p99, first idle and
 * then while password checks (RestAuth `POST /restauth/users/<u>`) run at the pool's maximum rate.
 * The password rate is measured alone (before the probes join) and with the probes, and compared
 * with its bound: bcrypt compares per second on one thread of this machine (measured here, before
 * and after each server) times the number of threads.
 *
 * The probes are open-loop (a request every 1/rate s, latency counted from when it was due, so a
 * stalled server is not hidden by a client that waits for it); the password load is closed-loop
 * with enough clients to keep every thread busy and a few jobs queued.
 *
 * `--server-cpus 0` pins the server (all its threads) to those CPUs with taskset: a 1-CPU pod.
 *
 *   npx node bench/auth.ts [--seconds 8] [--cost 10] [--workers 0,1] [--rate 100] [--server-cpus 0]
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { type Dispatcher, Pool } from 'undici';
import { defaultPasswordWorkers } from '../server/identity/password-pool.ts';
import { freePort, startWharfProcess } from '../test/support/spawn-wharf.ts';

function option(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : undefined;
}
const seconds = Number(option('seconds')) || 8;
const cost = Number(option('cost')) || 10;
const rate = Number(option('rate')) || 100;
const serverCpus = option('server-cpus');
const poolSizes = (option('workers') ?? `0,${defaultPasswordWorkers()}`).split(',').map(Number);

const SERVICE = { name: 'bench', password: 'bench-service-password-1' };
const serviceAuth = `Basic ${Buffer.from(`${SERVICE.name}:${SERVICE.password}`).toString('base64')}`;
const USER = { name: 'bencher', password: 'bencher-password' };
const userAuth = `Basic ${Buffer.from(`${USER.name}:${USER.password}`).toString('base64')}`;

/** bcrypt compares per second on this thread, for `budgetMs`. */
function bcryptPerSecond(budgetMs = 3000): number {
  const hash = bcrypt.hashSync(USER.password, cost);
  const started = performance.now();
  let count = 0;
  while (performance.now() - started < budgetMs) {
    bcrypt.compareSync(USER.password, hash);
    count++;
  }
  return count / ((performance.now() - started) / 1000);
}

interface Latencies {
  p50: number;
  p99: number;
  count: number;
  failures: number;
}

function summary(latencies: number[], failures: number): Latencies {
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99), count: latencies.length, failures };
}

/** One request, its body read; resolves to the status. */
type Call = () => Promise<number>;

/** Sends `request` every 1/rate s for `durationMs`; each latency runs from when it was due. */
async function probe(request: Call, durationMs: number): Promise<Latencies> {
  const latencies: number[] = [];
  let failures = 0;
  const interval = 1000 / rate;
  const started = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i * interval < durationMs; i++) {
    const due = started + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    inFlight.push(
      request().then(
        (status) => {
          latencies.push(performance.now() - due);
          if (status !== 200) failures++;
        },
        () => {
          failures++;
        },
      ),
    );
  }
  await Promise.all(inFlight);
  return summary(latencies, failures);
}

/**
 * `clients` loops sending password checks back to back until stopped; `rate()` gives the checks
 * answered 200 per second since the previous call (or the start).
 */
function passwordLoad(request: Call, clients: number) {
  let running = true;
  let done = 0;
  let refused = 0;
  let failures = 0;
  let mark = { at: performance.now(), done: 0 };
  const loops = Promise.all(
    Array.from({ length: clients }, async () => {
      while (running) {
        const status = await request();
        if (status === 200) done++;
        else if (status === 503) refused++;
        else failures++;
      }
    }),
  );
  return {
    rate(): number {
      const now = { at: performance.now(), done };
      const perSecond = (now.done - mark.done) / ((now.at - mark.at) / 1000);
      mark = now;
      return perSecond;
    },
    async stop(): Promise<{ refused: number; failures: number }> {
      running = false;
      await loops;
      return { refused, failures };
    },
  };
}

async function ok(response: Promise<Response>, what: string): Promise<Response> {
  const answer = await response;
  if (answer.status >= 300) throw new Error(`${what}: ${answer.status} ${await answer.text()}`);
  return answer;
}

/** Pushes a one-blob image as the bench user; returns the manifest's digest. */
async function pushImage(base: string, bearer: string): Promise<string> {
  const headers = { authorization: `Bearer ${bearer}` };
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const session = await ok(
    fetch(`${base}/v2/bencher/app/blobs/uploads/`, { method: 'POST', headers }),
    'upload session',
  );
  const location = new URL(session.headers.get('location') ?? '', base);
  location.searchParams.set('digest', configDigest);
  await ok(
    fetch(location, {
      method: 'PUT',
      headers: { ...headers, 'content-type': 'application/octet-stream' },
      body: config,
    }),
    'config blob',
  );
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: configDigest,
      size: config.length,
    },
    layers: [],
  });
  await ok(
    fetch(`${base}/v2/bencher/app/manifests/v1`, {
      method: 'PUT',
      headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    }),
    'manifest',
  );
  return `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
}

async function benchPool(workers: number) {
  const boundBefore = bcryptPerSecond();
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-bench-'));
  const configFile = path.join(dir, 'wharf.json');
  await writeFile(
    configFile,
    JSON.stringify({
      roles: ['auth', 'registry'],
      logLevel: 'warn',
      auth: {
        bcryptCost: cost,
        passwordWorkers: workers,
        signup: 'open',
        services: [{ ...SERVICE, permissions: ['*'] }],
      },
      // Every password check of the load reaches bcrypt (no registry-side cache is involved here).
      registry: { credentialCacheSeconds: 0 },
    }),
  );
  const server = await startWharfProcess({
    WHARF_CONFIG: configFile,
    WHARF_DATA_DIR: path.join(dir, 'data'),
    PORT: String(await freePort()),
  });
  try {
    if (serverCpus && server.child.pid)
      execFileSync('taskset', ['--all-tasks', '--cpu-list', '--pid', serverCpus, String(server.child.pid)]);
    const base = server.url;
    const created = await ok(
      fetch(`${base}/ktra/api/v1/new_user/${USER.name}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ password: USER.password }),
      }),
      'new user',
    );
    const { token } = (await created.json()) as { token: string };
    const granted = await ok(
      fetch(`${base}/v2/auth?service=wharf&scope=repository:bencher/app:pull,push`, {
        headers: { authorization: userAuth },
      }),
      'registry token',
    );
    const bearer = ((await granted.json()) as { token: string }).token;
    const digest = await pushImage(base, bearer);

    // undici's request API on keep-alive connections: the client shares this machine's CPUs with
    // the server, so it should spend as little of them as it can (fetch costs several times more).
    const pool = new Pool(base, { connections: 64 });
    const call =
      (options: Dispatcher.RequestOptions): Call =>
      async () => {
        const response = await pool.request(options);
        await response.body.dump();
        return response.statusCode;
      };
    const tokenCheck = call({
      method: 'POST',
      path: '/restauth/verify',
      headers: { authorization: serviceAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    const manifestGet = call({
      method: 'GET',
      path: `/v2/bencher/app/manifests/${digest}`,
      headers: { authorization: `Bearer ${bearer}`, accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    const passwordCheck = call({
      method: 'POST',
      path: `/restauth/users/${USER.name}/`,
      headers: { authorization: serviceAuth, 'content-type': 'application/x-www-form-urlencoded' },
      body: `password=${USER.password}`,
    });

    await Promise.all([probe(tokenCheck, 1000), probe(manifestGet, 1000)]); // warm-up
    const [idleToken, idleManifest] = await Promise.all([
      probe(tokenCheck, seconds * 1000),
      probe(manifestGet, seconds * 1000),
    ]);
    // Every thread busy and a few checks queued behind them (well under the queue limit): first
    // alone, for the password rate, then with the probes, for their latency.
    const load = passwordLoad(passwordCheck, 2 * Math.max(1, workers) + 2);
    await new Promise((resolve) => setTimeout(resolve, 1000)); // the load reaches its pace
    load.rate();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const passwordRate = load.rate();
    const [loadedToken, loadedManifest] = await Promise.all([
      probe(tokenCheck, seconds * 1000),
      probe(manifestGet, seconds * 1000),
    ]);
    const passwordRateProbed = load.rate();
    const passwords = { perSecond: passwordRate, probed: passwordRateProbed, ...(await load.stop()) };
    const bound = ((boundBefore + bcryptPerSecond()) / 2) * Math.max(1, workers);
    await pool.close();
    return { workers, idleToken, idleManifest, loadedToken, loadedManifest, passwords, bound };
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const loadBefore = loadavg()[0] ?? 0;
const rows = [];
for (const workers of poolSizes) rows.push(await benchPool(workers));
const loadAfter = loadavg()[0] ?? 0;

const ms = (n: number) => n.toFixed(1);
const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}x` : '-');
console.log(
  `\nPassword load against token checks and manifest GETs (bcrypt cost ${cost}, ${seconds} s per window, ` +
    `probes at ${rate}/s each, fs store, one server process${serverCpus ? ` pinned to CPU ${serverCpus}` : ''}; ` +
    `${availableParallelism()} CPUs, load average ` +
    `${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after)\n`,
);
console.log(
  '| bcrypt threads | token p50 idle | p99 idle | p50 loaded | p99 loaded | p99 loaded/idle | manifest p50 idle | p99 idle | p50 loaded | p99 loaded | p99 loaded/idle | passwords/s alone | with probes | bound (bcrypt/s x threads) | alone/bound |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const row of rows) {
  const { idleToken, loadedToken, idleManifest, loadedManifest, passwords, bound } = row;
  console.log(
    `| ${row.workers === 0 ? '0 (event loop)' : row.workers} | ${[
      ms(idleToken.p50),
      ms(idleToken.p99),
      ms(loadedToken.p50),
      ms(loadedToken.p99),
      ratio(loadedToken.p99, idleToken.p99),
      ms(idleManifest.p50),
      ms(idleManifest.p99),
      ms(loadedManifest.p50),
      ms(loadedManifest.p99),
      ratio(loadedManifest.p99, idleManifest.p99),
      passwords.perSecond.toFixed(1),
      passwords.probed.toFixed(1),
      bound.toFixed(1),
      ratio(passwords.perSecond, bound),
    ].join(' | ')} |`,
  );
}
const inline = rows.find((row) => row.workers === 0);
for (const row of rows.filter((candidate) => candidate.workers > 0 && inline)) {
  if (!inline) break;
  console.log(
    `\n${row.workers} thread(s) against the event loop, p99 under password load: token checks ` +
      `${ratio(inline.loadedToken.p99, row.loadedToken.p99)} lower, manifest GETs ` +
      `${ratio(inline.loadedManifest.p99, row.loadedManifest.p99)} lower; passwords/s ` +
      `${ratio(row.passwords.perSecond, inline.passwords.perSecond)} of the event loop's.`,
  );
}
const problems = rows.flatMap((row) =>
  [
    ['token', row.idleToken.failures + row.loadedToken.failures],
    ['manifest', row.idleManifest.failures + row.loadedManifest.failures],
    ['password (not 200 or 503)', row.passwords.failures],
    ['password refused (503)', row.passwords.refused],
  ]
    .filter(([, count]) => Number(count) > 0)
    .map(([what, count]) => `${row.workers} threads: ${count} ${what} answers`),
);
if (problems.length > 0) console.log(`\nNot 200: ${problems.join('; ')}`);
