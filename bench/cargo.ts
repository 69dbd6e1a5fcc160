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
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { makeCrate, metadata, publishBody } from '../test/cargo/crate-file.ts';
import { load as loadFor } from './load.ts';
import { freePort, waitFor } from './support.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const PUBLISHES = Number(process.env.BENCH_PUBLISHES ?? 30);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
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

/** The real program (`server/main.ts`, all roles, fs store), with a user made through Ktra's sign-up. */
async function startWharf(): Promise<{ url: string; token: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [path.join(root, 'server/main.ts')], {
    env: {
      ...process.env,
      PORT: String(port),
      WHARF_METRICS_PORT: '0',
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

/** kellnr with an admin token from its setup settings and its data in the temp dir. */
async function startKellnr(bin: string): Promise<{ url: string; token: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const token = `bench${randomBytes(12).toString('hex')}`;
  const child = spawn(bin, ['start'], {
    cwd: work,
    env: {
      ...process.env,
      KELLNR_LOCAL__IP: '127.0.0.1',
      KELLNR_LOCAL__PORT: String(port),
      KELLNR_ORIGIN__HOSTNAME: '127.0.0.1',
      KELLNR_ORIGIN__PORT: String(port),
      KELLNR_REGISTRY__DATA_DIR: path.join(work, 'kellnr'),
      KELLNR_SETUP__ADMIN_TOKEN: token,
      KELLNR_SETUP__ADMIN_PWD: 'bench-password-123',
    },
    stdio: 'ignore',
  });
  children.push(child);
  await waitFor(`${url}/api/v1/crates/config.json`, (s) => s < 500);
  return { url, token };
}

async function publishTimes(
  url: string,
  token: string,
  name: string,
  count: number,
  big?: Buffer,
  firstPatch = 0,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const vers = `1.0.${firstPatch + i}`;
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
const fmt = (n: number | null, digits = 0) => (n !== null && Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

/** A registry under test: how to reach its index file, its downloads, and publish to it. */
interface Target {
  name: string;
  url: string;
  token: string;
  /** URL of the index file of `bench-crate`, or null without a sparse index. */
  indexFile: string | null;
  download: (crate: string, version: string) => string;
}

interface Figures {
  index200: number | null;
  index304: number | null;
  dlMBps: number;
  dlRps: number;
  publishMs: number;
  notes: string[];
}

/**
 * The machine is shared (other work runs beside the benchmark), so figures are taken in ROUNDS
 * short rounds that alternate between the registries, and each figure is the median of its rounds:
 * a burst of outside load then hits every registry alike instead of one of them.
 */
async function measureAll(targets: Target[], big: Buffer): Promise<Figures[]> {
  const samples = targets.map(() => ({
    index200: [] as number[],
    index304: [] as number[],
    dlMBps: [] as number[],
    dlRps: [] as number[],
    publish: [] as number[],
    notes: new Map<string, Record<number, number>>(),
  }));
  const etags = new Map<Target, string | null>();
  for (const target of targets) {
    await publishTimes(target.url, target.token, 'bench-big', 1, big);
    if (target.indexFile) {
      await publishTimes(target.url, target.token, 'bench-crate', 1, undefined, 999);
      const first = await fetch(target.indexFile, { headers: { authorization: target.token } });
      etags.set(target, first.headers.get('etag'));
      await first.arrayBuffer();
    }
  }
  const tally = (
    notes: Map<string, Record<number, number>>,
    name: string,
    statuses: Record<number, number>,
  ) => {
    const sum = notes.get(name) ?? {};
    for (const [status, count] of Object.entries(statuses))
      sum[Number(status)] = (sum[Number(status)] ?? 0) + count;
    notes.set(name, sum);
  };
  // Publishes alternate one by one between the registries, for the same reason.
  for (let n = 0; n < PUBLISHES; n++) {
    for (const [i, target] of targets.entries()) {
      samples[i]?.publish.push(
        ...(await publishTimes(target.url, target.token, 'bench-crate', 1, undefined, n)),
      );
    }
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, target] of targets.entries()) {
      const sample = samples[i];
      if (!sample) continue;
      if (target.indexFile) {
        const ok = await load(target.indexFile, { authorization: target.token }, PIPELINING);
        tally(sample.notes, 'index 200 run', ok.statuses);
        if (ok.statuses[200]) sample.index200.push(ok.rps);
        // Publishes of this round changed the file: take its current ETag, as cargo would have it.
        const current = await fetch(target.indexFile, { headers: { authorization: target.token } });
        const etag = current.headers.get('etag');
        await current.arrayBuffer();
        etags.set(target, etag);
        if (etag) {
          const notModified = await load(
            target.indexFile,
            { authorization: target.token, 'if-none-match': etag },
            PIPELINING,
          );
          tally(sample.notes, '304 run', notModified.statuses);
          if (notModified.statuses[304]) sample.index304.push(notModified.rps);
        }
      }
      const dl = await load(target.download('bench-big', '1.0.0'), { authorization: target.token });
      tally(sample.notes, 'downloads', dl.statuses);
      sample.dlMBps.push(dl.mbps);
      sample.dlRps.push(dl.rps);
    }
  }
  const mid = (xs: number[]) => (xs.length ? median(xs) : null);
  return samples.map((sample, i) => ({
    index200: mid(sample.index200),
    index304: mid(sample.index304),
    dlMBps: mid(sample.dlMBps) ?? Number.NaN,
    dlRps: mid(sample.dlRps) ?? Number.NaN,
    publishMs: median(sample.publish),
    notes: [
      ...[...sample.notes].map(([name, statuses]) => `${name} ${JSON.stringify(statuses)}`),
      ...(targets[i]?.indexFile ? [] : ['no sparse index']),
      ...(targets[i]?.indexFile && !etags.get(targets[i] as Target)
        ? ['no ETag on index files, so no 304 path']
        : []),
    ],
  }));
}

try {
  const big = randomBytes(768 * 1024); // base64 → ~1 MiB of text, stored gzip'd (~0.75 MiB)
  const wharfServer = await startWharf();
  const targets: Target[] = [
    {
      name: 'wharf',
      ...wharfServer,
      indexFile: `${wharfServer.url}/index/be/nc/bench-crate`,
      download: (c, v) => `${wharfServer.url}/api/v1/crates/${c}/${v}/download`,
    },
  ];
  const ktraBin = tool('ktra.sh');
  if (ktraBin) {
    const ktra = await startKtra(ktraBin);
    // Ktra 0.7.0 has no sparse index: cargo clones its git index from the git server it pushes to.
    targets.push({
      name: 'Ktra 0.7.0',
      ...ktra,
      indexFile: null,
      download: (c, v) => `${ktra.url}/dl/${c}/${v}/download`,
    });
  } else console.log('Ktra could not be built (hack/ktra.sh): no Ktra figures');
  const kellnrBin = path.join(
    process.env.WHARF_CACHE ?? path.join(homedir(), '.cache/wharf'),
    'kellnr-6.13.0/kellnr',
  );
  if (existsSync(kellnrBin)) {
    const kellnr = await startKellnr(kellnrBin);
    targets.push({
      name: 'kellnr 6.13.0',
      ...kellnr,
      indexFile: `${kellnr.url}/api/v1/crates/be/nc/bench-crate`,
      download: (c, v) => `${kellnr.url}/api/v1/crates/dl/${c}/${v}/download`,
    });
  } else console.log('kellnr is not built (hack/kellnr.sh): no sparse-index peer figures');

  const results = await measureAll(targets, big);
  const [ours] = results as [Figures];

  console.log(
    `\nCargo registry benchmark (${ROUNDS} alternating rounds of ${SECONDS}s per load figure (medians), ${CONNECTIONS} connections, index runs pipelined ${PIPELINING} deep, ${PUBLISHES} sequential publishes; ${execFileSync('nproc').toString().trim()} cores shared by the client and the servers)`,
  );
  console.log(`cargo: ${execFileSync('cargo', ['--version']).toString().trim()}`);
  const figures: [string, (f: Figures) => number | null, boolean, number][] = [
    ['sparse index 200 (req/s)', (f) => f.index200, true, 0],
    ['sparse index 304 (req/s)', (f) => f.index304, true, 0],
    ['download (MB/s)', (f) => f.dlMBps, true, 1],
    ['download (req/s)', (f) => f.dlRps, true, 0],
    ['publish latency (ms, median)', (f) => f.publishMs, false, 1],
  ];
  const header = [
    'figure',
    ...targets.map((t) => t.name),
    ...targets.slice(1).map((t) => `wharf vs ${t.name}`),
  ];
  const table = figures.map(([label, get, higherIsBetter, digits]) => {
    const mine = get(ours);
    const cells = results.map((r) => fmt(get(r), digits));
    const ratios = results.slice(1).map((r) => {
      const theirs = get(r);
      if (mine === null || theirs === null) return 'n/a';
      return `${(higherIsBetter ? mine / theirs : theirs / mine).toFixed(2)}x`;
    });
    return [label, ...cells, ...ratios];
  });
  const widths = header.map((_, i) => Math.max(...[header, ...table].map((r) => (r[i] ?? '').length)) + 2);
  for (const r of [header, ...table]) console.log(r.map((c, i) => c.padEnd(widths[i] ?? 10)).join(''));
  console.log('(ratios: above 1 means wharf is better: more requests/s, more MB/s, lower latency)');
  for (const [i, t] of targets.entries()) console.log(`${t.name}: ${results[i]?.notes.join('; ')}`);
} finally {
  for (const child of children) child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  await rm(work, { recursive: true, force: true });
}
