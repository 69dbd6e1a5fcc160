/**
 * Cargo registry benchmark: wharf against Ktra (the peer named by the issue) on this machine, in one
 * run, printed as ratios. Run: `npx node bench/cargo.ts` (Ktra from hack/ktra.sh; kellnr from
 * hack/kellnr.sh, when it is built, for the sparse-index figures, since Ktra 0.7.0 has no sparse
 * index: its index is a git repository cargo clones).
 *
 * Figures: sparse index requests/s (200 and 304), download throughput (MB/s, 1 MiB .crate),
 * publish latency (median of sequential publishes). Client and servers share the machine's cores.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeCrate, metadata, publishBody } from '../test/cargo/crate-file.ts';
import { load as loadFor } from './load.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const PUBLISHES = Number(process.env.BENCH_PUBLISHES ?? 20);
const root = path.resolve(import.meta.dirname, '..');
const work = await mkdtemp(path.join(tmpdir(), 'wharf-bench-cargo-'));
const children: ChildProcess[] = [];

function tool(script: string): string | null {
  try {
    const out = execFileSync(path.join(root, 'hack', script), {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const bin = out.trim().split('\n').at(-1) ?? '';
    return existsSync(bin) ? bin : null;
  } catch {
    return null;
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitFor(url: string, ok = (s: number) => s < 500): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      if (ok((await fetch(url)).status)) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not come up`);
}

/** The real program (`server/main.ts`, all roles, fs store), with a user made through Ktra's sign-up. */
async function startWharf(): Promise<{ url: string; token: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [path.join(root, 'server/main.ts')], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      WHARF_DATA_DIR: path.join(work, 'wharf'),
      WHARF_SIGNUP: 'open',
      WHARF_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  await waitFor(`${url}/healthz`, (s) => s === 200);
  const res = await fetch(`${url}/ktra/api/v1/new_user/bench`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ password: 'bench-password-123' }),
  });
  const { token } = (await res.json()) as { token: string };
  return { url, token };
}

async function startKtra(bin: string): Promise<{ url: string; token: string }> {
  const dir = path.join(work, 'ktra');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // Ktra pushes every index change to a git remote: a local bare repository stands in for it.
  await mkdir(path.join(dir, 'seed'), { recursive: true });
  await writeFile(path.join(dir, 'seed', 'config.json'), JSON.stringify({ dl: `${url}/dl`, api: url }));
  const git = (args: string[], cwd: string) => execFileSync('git', args, { cwd, stdio: 'ignore' });
  git(['init', '-q', '-b', 'main', '--bare', path.join(dir, 'index.git')], dir);
  git(['init', '-q', '-b', 'main'], path.join(dir, 'seed'));
  git(['add', '.'], path.join(dir, 'seed'));
  git(
    ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', 'commit', '-qm', 'config'],
    path.join(dir, 'seed'),
  );
  git(['push', '-q', path.join(dir, 'index.git'), 'main'], path.join(dir, 'seed'));
  await writeFile(
    path.join(dir, 'ktra.toml'),
    `[index_config]
remote_url = "file://${path.join(dir, 'index.git')}"
local_path = "${path.join(dir, 'index')}"
branch = "main"
name = "bench"
email = "bench@localhost"

[crate_files_config]
dl_dir_path = "${path.join(dir, 'crates')}"
cache_dir_path = "${path.join(dir, 'cache')}"

[db_config]
db_dir_path = "${path.join(dir, 'db')}"

[server_config]
address = [127, 0, 0, 1]
port = ${port}
`,
  );
  const child = spawn(bin, ['-c', path.join(dir, 'ktra.toml')], { cwd: dir, stdio: 'ignore' });
  children.push(child);
  await waitFor(`${url}/dl/none`);
  const res = await fetch(`${url}/ktra/api/v1/new_user/bench`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ password: 'bench-password-123' }),
  });
  const { token } = (await res.json()) as { token: string };
  return { url, token };
}

async function publishTimes(
  url: string,
  token: string,
  name: string,
  count: number,
  big?: Buffer,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const vers = `1.0.${i}`;
    const crate = await makeCrate([
      { name: `${name}-${vers}/Cargo.toml`, body: `[package]\nname = "${name}"\nversion = "${vers}"\n` },
      { name: `${name}-${vers}/src/lib.rs`, body: big ? big.toString('base64') : 'pub fn f() {}\n' },
    ]);
    const body = publishBody(
      {
        ...metadata(name, vers),
        readme: null,
        readme_file: null,
        keywords: [],
        categories: [],
        badges: {},
        links: null,
        documentation: null,
        homepage: null,
        repository: null,
        license_file: null,
      },
      crate,
    );
    const start = performance.now();
    const res = await fetch(`${url}/api/v1/crates/new`, {
      method: 'PUT',
      headers: { authorization: token },
      body,
    });
    const text = await res.text();
    times.push(performance.now() - start);
    if (res.status !== 200 || text.includes('"errors"'))
      throw new Error(`publish to ${url} failed: ${res.status} ${text}`);
  }
  return times;
}

const PIPELINING = Number(process.env.BENCH_PIPELINING ?? 8);
const load = (url: string, headers: Record<string, string> = {}, pipelining = 1) =>
  loadFor(url, { connections: CONNECTIONS, seconds: SECONDS, headers, pipelining });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const rows: [string, string, string, string][] = [];
const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
function row(
  figure: string,
  wharf: number,
  peer: number | null,
  peerName: string,
  higherIsBetter = true,
  digits = 0,
) {
  const ratio = peer === null ? 'n/a' : `${(higherIsBetter ? wharf / peer : peer / wharf).toFixed(2)}x`;
  rows.push([
    figure,
    fmt(wharf, digits),
    peer === null ? `n/a (${peerName})` : `${fmt(peer, digits)} (${peerName})`,
    ratio,
  ]);
}

try {
  const ktraBin = tool('ktra.sh');
  const wharf = await startWharf();
  const ktra = ktraBin ? await startKtra(ktraBin) : null;
  const big = randomBytes(768 * 1024); // base64 → ~1 MiB of text, stored gzip'd (~0.75 MiB)

  // Publish latency (sequential, small crates; Ktra commits and pushes its git index each time).
  const wharfPublish = median(await publishTimes(wharf.url, wharf.token, 'bench-crate', PUBLISHES));
  const ktraPublish = ktra
    ? median(await publishTimes(ktra.url, ktra.token, 'bench-crate', PUBLISHES))
    : null;
  await publishTimes(wharf.url, wharf.token, 'bench-big', 1, big);
  if (ktra) await publishTimes(ktra.url, ktra.token, 'bench-big', 1, big);

  // Sparse index: 200 and 304 paths.
  const indexUrl = `${wharf.url}/index/be/nc/bench-crate`;
  const etag = (await fetch(indexUrl)).headers.get('etag') ?? '';
  const index200 = await load(indexUrl, {}, PIPELINING);
  const index304 = await load(indexUrl, { 'if-none-match': etag }, PIPELINING);

  // Download throughput of a ~0.75 MiB .crate.
  const wharfDl = await load(`${wharf.url}/api/v1/crates/bench-big/1.0.0/download`);
  const ktraDl = ktra ? await load(`${ktra.url}/dl/bench-big/1.0.0/download`) : null;

  const peer = ktra ? 'Ktra 0.7.0' : 'Ktra not built';
  row('sparse index 200 (req/s)', index200.rps, null, 'Ktra 0.7.0 has no sparse index; kellnr not built');
  row('sparse index 304 (req/s)', index304.rps, null, 'Ktra 0.7.0 has no sparse index; kellnr not built');
  row('download (MB/s)', wharfDl.mbps, ktraDl?.mbps ?? null, peer, true, 1);
  row('download (req/s)', wharfDl.rps, ktraDl?.rps ?? null, peer);
  row('publish latency (ms, median)', wharfPublish, ktraPublish, peer, false, 1);

  console.log(
    `\nCargo registry benchmark (${SECONDS}s per load figure, ${CONNECTIONS} connections, index runs pipelined ${PIPELINING} deep, ${PUBLISHES} publishes; ${execFileSync('nproc').toString().trim()} cores shared by client and servers)`,
  );
  console.log(`cargo: ${execFileSync('cargo', ['--version']).toString().trim()}`);
  const widths = [30, 14, 52, 8];
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 10)).join(' ');
  console.log(line(['figure', 'wharf', 'peer', 'ratio']));
  for (const r of rows) console.log(line(r));
  console.log(
    `answers: 200 run ${JSON.stringify(index200.statuses)}, 304 run ${JSON.stringify(index304.statuses)}, downloads ${JSON.stringify(wharfDl.statuses)} / ${JSON.stringify(ktraDl?.statuses ?? {})}`,
  );
} finally {
  for (const child of children) child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  await rm(work, { recursive: true, force: true });
}
