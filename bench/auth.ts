/**
 * AuthService benchmark: RestAuth password verification and token checks against a real server
 * process (fs store), at bcrypt cost 10 and 12, beside the bound a password check cannot beat:
 * bcrypt hashes per second on one core of this machine (bcryptjs runs on the event loop, so one
 * server process verifies at most that many passwords per second).
 *
 *   npx node bench/auth.ts [--seconds 6]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { freePort, startWharfProcess } from '../test/support/spawn-wharf.ts';

const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 6;
const SERVICE = { name: 'bench', password: 'bench-service-password-1' };
const serviceAuth = `Basic ${Buffer.from(`${SERVICE.name}:${SERVICE.password}`).toString('base64')}`;

/** bcrypt compares per second on this thread, for `budgetMs`. */
function bcryptPerSecond(cost: number, budgetMs = 3000): number {
  const hash = bcrypt.hashSync('benchmark-password', cost);
  const started = performance.now();
  let count = 0;
  while (performance.now() - started < budgetMs) {
    bcrypt.compareSync('benchmark-password', hash);
    count++;
  }
  return count / ((performance.now() - started) / 1000);
}

interface LoadResult {
  requests: number;
  perSecond: number;
  p50: number;
  p99: number;
  errors: number;
}

/** `concurrency` loops sending `request` back to back for `durationMs`; latencies in ms. */
async function load(
  request: () => Promise<Response>,
  concurrency: number,
  durationMs: number,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  const deadline = performance.now() + durationMs;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const begin = performance.now();
        const response = await request();
        await response.arrayBuffer();
        latencies.push(performance.now() - begin);
        if (response.status !== 200) errors++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return {
    requests: latencies.length,
    perSecond: latencies.length / elapsed,
    p50: at(0.5),
    p99: at(0.99),
    errors,
  };
}

async function benchCost(cost: number) {
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-bench-'));
  const configFile = path.join(dir, 'wharf.json');
  await writeFile(
    configFile,
    JSON.stringify({
      roles: ['auth'],
      logLevel: 'warn',
      auth: { bcryptCost: cost, signup: 'open', services: [{ ...SERVICE, permissions: ['*'] }] },
    }),
  );
  const server = await startWharfProcess({
    WHARF_CONFIG: configFile,
    WHARF_DATA_DIR: path.join(dir, 'data'),
    PORT: String(await freePort()),
  });
  try {
    const created = await fetch(`${server.url}/ktra/api/v1/new_user/bencher`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'bencher-password' }),
    });
    const { token } = (await created.json()) as { token: string };
    const verifyPassword = () =>
      fetch(`${server.url}/restauth/users/bencher/`, {
        method: 'POST',
        headers: { authorization: serviceAuth, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'password=bencher-password',
      });
    const verifyToken = () =>
      fetch(`${server.url}/restauth/verify`, {
        method: 'POST',
        headers: { authorization: serviceAuth, 'content-type': 'application/json' },
        body: JSON.stringify({ token }),
      });
    await load(verifyToken, 4, 500); // warm-up
    // The machine may be shared: measure the bound right before and right after, and take the mean.
    const boundBefore = bcryptPerSecond(cost);
    const password = await load(verifyPassword, 8, seconds * 1000);
    const bound = (boundBefore + bcryptPerSecond(cost)) / 2;
    const tokens = await load(verifyToken, 32, seconds * 1000);
    return { cost, bound, password, tokens };
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const rows = [];
for (const cost of [10, 12]) rows.push(await benchCost(cost));

const fmt = (n: number, digits = 1) => n.toFixed(digits);
const [load1] = (await import('node:os')).loadavg();
console.log(
  `\nAuthService benchmark (${seconds} s per measurement, fs store, one server process, load average ${load1?.toFixed(1)})\n`,
);
console.log(
  'cost | bcrypt/s (1 core, bound) | password verify req/s | ratio to bound | p50 ms | p99 ms | token check req/s | p50 ms | p99 ms | token/password',
);
for (const { cost, bound, password, tokens } of rows) {
  console.log(
    [
      cost,
      fmt(bound),
      fmt(password.perSecond),
      fmt(password.perSecond / bound, 2),
      fmt(password.p50),
      fmt(password.p99),
      fmt(tokens.perSecond, 0),
      fmt(tokens.p50),
      fmt(tokens.p99),
      `${fmt(tokens.perSecond / password.perSecond, 0)}x`,
    ].join(' | '),
  );
  if (password.errors || tokens.errors)
    console.log(`  errors: password ${password.errors}, token ${tokens.errors}`);
}
