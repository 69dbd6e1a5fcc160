/**
 * The crates.io metadata API under a crate page's load: the calls crates.io's own crate page makes
 * (crate with versions, README, dependencies, downloads, owner users and teams), asked in that order
 * on every keep-alive connection (bench/load.ts) of the real program (`server/main.ts`, fs store).
 * Run: `npx node bench/crate-page.ts` (BENCH_SECONDS, BENCH_CONNECTIONS).
 *
 * No server here answers crates.io's API to compare with (kellnr's web API has other shapes, and
 * crates.io is not reachable), so the peer is wharf's own cheapest read, the sparse index file
 * cargo revalidates on every build: the ratio says what a crate page costs against it.
 * Two crates: a usual one (20 versions) and one with 500 versions, whose page lists them all.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeCrate, metadata, publishBody } from '../test/cargo/crate-file.ts';
import { load } from './load.ts';
import { freePort } from './support.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const root = path.resolve(import.meta.dirname, '..');
const work = await mkdtemp(path.join(tmpdir(), 'wharf-bench-crate-page-'));
let child: ChildProcess | undefined;

async function startWharf(): Promise<{ url: string; token: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, [path.join(root, 'server/main.ts')], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      WHARF_METRICS_PORT: '0',
      WHARF_DATA_DIR: path.join(work, 'data'),
      WHARF_SIGNUP: 'open',
      WHARF_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  const res = await fetch(`${url}/ktra/api/v1/new_user/bench`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ password: 'bench-password-123' }),
  });
  return { url, token: ((await res.json()) as { token: string }).token };
}

const README = `# A crate\n\n${'Some *text* with [a link](https://example.com) and `code`.\n\n'.repeat(60)}\`\`\`rust\nfn main() {}\n\`\`\`\n`;

async function publish(url: string, token: string, name: string, versions: number): Promise<string> {
  let last = '';
  for (let i = 0; i < versions; i++) {
    last = `1.${Math.floor(i / 10)}.${i % 10}`;
    const crate = await makeCrate([
      {
        name: `${name}-${last}/Cargo.toml`,
        body: `[package]\nname = "${name}"\nversion = "${last}"\nedition = "2021"\n`,
      },
      { name: `${name}-${last}/src/lib.rs`, body: 'pub fn f() {}\n' },
    ]);
    const meta = metadata(name, last, {
      readme: README,
      keywords: ['bench', 'page'],
      categories: ['development-tools'],
      repository: 'https://git.example/bench',
      deps: ['dep-a', 'dep-b', 'dep-c'].map((dep) => ({
        name: dep,
        version_req: '^1',
        features: [],
        optional: false,
        default_features: true,
        target: null,
        kind: 'normal',
        registry: null,
      })),
    });
    const res = await fetch(`${url}/api/v1/crates/new`, {
      method: 'PUT',
      headers: { authorization: token },
      body: publishBody(meta, crate),
    });
    if (res.status !== 200) throw new Error(`publish ${name}@${last}: ${res.status} ${await res.text()}`);
  }
  // Some downloads, so the downloads chart has data.
  for (let i = 0; i < 20; i++)
    await fetch(`${url}/api/v1/crates/${name}/${last}/download`).then((r) => r.arrayBuffer());
  return last;
}

async function run(url: string, paths: string[]): Promise<{ rps: number; failed: number }> {
  const result = await load(url, { connections: CONNECTIONS, seconds: SECONDS, paths });
  const failed = Object.entries(result.statuses)
    .filter(([status]) => Number(status) >= 300)
    .reduce((sum, [, n]) => sum + n, 0);
  return { rps: result.rps, failed };
}

try {
  const { url, token } = await startWharf();
  const crates = [
    { name: 'page-crate', versions: 20 },
    { name: 'big-crate', versions: 500 },
  ];
  console.log(
    `wharf crate page benchmark: ${CONNECTIONS} connections, ${SECONDS} s per run, client on the same 2 cores`,
  );
  for (const { name, versions } of crates) {
    const latest = await publish(url, token, name, versions);
    const rest = [
      `/api/v1/crates/${name}/${latest}/readme`,
      `/api/v1/crates/${name}/${latest}/dependencies`,
      `/api/v1/crates/${name}/downloads`,
      `/api/v1/crates/${name}/owner_user`,
      `/api/v1/crates/${name}/owner_team`,
    ];
    // crates.io's page today: the crate with its default version only, versions paged apart.
    const paged = [
      `/api/v1/crates/${name}?include=keywords,categories,downloads,default_version`,
      `/api/v1/crates/${name}/versions?per_page=100`,
      ...rest,
    ];
    // The older form: every version inside the crate answer.
    const full = [`/api/v1/crates/${name}`, ...rest];
    const indexPath = `/index/${name.slice(0, 2)}/${name.slice(2, 4)}/${name}`;
    await run(url, paged); // warm-up
    const index = await run(url, [indexPath]);
    for (const [label, page] of [
      ['default version + 100 versions', paged],
      ['all versions in the crate answer', full],
    ] as const) {
      const calls = await run(url, [...page]);
      console.log(
        `${name} (${versions} versions), ${label}: ${calls.rps.toFixed(0)} API requests/s = ` +
          `${(calls.rps / page.length).toFixed(0)} crate pages/s (${page.length} calls, failed ${calls.failed}); ` +
          `API request / index file request = ${(calls.rps / index.rps).toFixed(2)}`,
      );
    }
    console.log(`  index file (${versions} lines): ${index.rps.toFixed(0)} requests/s`);
    const search = await run(url, ['/api/v1/crates?q=crate&per_page=10']);
    console.log(`  search ?q=crate: ${search.rps.toFixed(0)} requests/s (failed ${search.failed})`);
  }
} finally {
  child?.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  await rm(work, { recursive: true, force: true });
}
