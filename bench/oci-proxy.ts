/**
 * Pull-through cache benchmark: one large image (BENCH_MB, split into BENCH_LAYERS layers) in an
 * upstream distribution 2.8, pulled direct from the upstream, through wharf's proxy cold (nothing
 * cached) and warm (all cached), and the same through distribution v3.1.2 in proxy mode, in one run.
 * A pull is what a client does: the manifest by tag, then every layer concurrently. Each cold pull
 * uses an image of its own; figures are medians of BENCH_RUNS runs, the targets taking turns.
 *
 *   npx node bench/oci-proxy.ts                    # BENCH_MB=1024 BENCH_LAYERS=4 BENCH_RUNS=3
 *   BENCH_MB=128 BENCH_RUNS=1 npx node bench/oci-proxy.ts   # quick
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, spawnDeployedWharf, waitFor } from './support.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const MB = 1024 * 1024;
const IMAGE_BYTES = Number(process.env.BENCH_MB ?? 1024) * MB;
const LAYERS = Number(process.env.BENCH_LAYERS ?? 4);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const LAYER_BYTES = Math.floor(IMAGE_BYTES / LAYERS);
const PATTERN = randomBytes(4 * MB);
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

interface Server {
  name: string;
  url: string;
  child: ChildProcess;
  /** The repository prefix that reaches upstream's `bench/…` through this server. */
  prefix: string;
}

function get(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Buffer; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { headers, agent }, (res) => {
      const keep = !/\/blobs\//.test(url);
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (keep) chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), bytes }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Layer bytes: a unique 32-byte header, then the pattern (cheap to produce at 1 GiB). */
function* layerChunks(seed: string): Generator<Buffer> {
  yield createHash('sha256').update(seed).digest();
  let left = LAYER_BYTES - 32;
  while (left > 0) {
    const chunk = left >= PATTERN.length ? PATTERN : PATTERN.subarray(0, left);
    left -= chunk.length;
    yield chunk;
  }
}

function digestOf(chunks: Iterable<Buffer>): string {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

async function upload(
  registry: string,
  repository: string,
  digest: string,
  chunks: Iterable<Buffer>,
  size: number,
) {
  const start = await fetch(`${registry}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  const location = new URL(start.headers.get('location') as string, registry);
  location.searchParams.set('digest', digest);
  await new Promise<void>((resolve, reject) => {
    const req = http.request(location, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-length': size },
    });
    req.on('response', (res) => {
      res.resume();
      if (res.statusCode === 201) resolve();
      else reject(new Error(`blob upload: ${res.statusCode}`));
    });
    req.on('error', reject);
    (async () => {
      for (const chunk of chunks) if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
      req.end();
    })().catch(reject);
  });
}

/** Pushes `bench/image-<n>:v1` to the upstream: LAYERS layers of LAYER_BYTES. */
async function pushImage(upstream: string, n: number): Promise<string> {
  const repository = `bench/image-${n}`;
  const layers = [];
  for (let i = 0; i < LAYERS; i++) {
    const seed = `${n}-${i}-${Date.now()}`;
    const digest = digestOf(layerChunks(seed));
    await upload(upstream, repository, digest, layerChunks(seed), LAYER_BYTES);
    layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: LAYER_BYTES });
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', n }));
  const configDigest = digestOf([config]);
  await upload(upstream, repository, configDigest, [config], config.length);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: configDigest,
      size: config.length,
    },
    layers,
  });
  const put = await fetch(`${upstream}/v2/${repository}/manifests/v1`, {
    method: 'PUT',
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  if (put.status !== 201) throw new Error(`manifest push: ${put.status}`);
  return repository;
}

/** A client's pull: the manifest by tag, then the config and every layer at once. Returns MB/s. */
async function pull(server: { url: string; prefix: string }, repository: string): Promise<number> {
  const started = performance.now();
  const name = `${server.prefix}${repository}`;
  const manifest = await get(`${server.url}/v2/${name}/manifests/v1`, {
    accept: 'application/vnd.oci.image.manifest.v1+json',
  });
  if (manifest.status !== 200) throw new Error(`${server.url} manifest: ${manifest.status}`);
  const document = JSON.parse(manifest.body.toString()) as {
    config: { digest: string };
    layers: { digest: string }[];
  };
  const blobs = [document.config, ...document.layers].map((d) => d.digest);
  const sizes = await Promise.all(blobs.map((digest) => get(`${server.url}/v2/${name}/blobs/${digest}`)));
  const bytes = sizes.reduce((sum, r) => {
    if (r.status !== 200) throw new Error(`${server.url} blob: ${r.status}`);
    return sum + r.bytes;
  }, 0);
  if (bytes < IMAGE_BYTES - LAYERS) throw new Error(`${server.url}: pulled ${bytes} bytes`);
  return bytes / ((performance.now() - started) / 1000);
}

function rss(pid: number | undefined): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

async function peakRss<T>(
  pid: number | undefined,
  work: () => Promise<T>,
): Promise<{ result: T; peak: number }> {
  let peak = rss(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rss(pid));
  }, 50);
  try {
    return { result: await work(), peak };
  } finally {
    clearInterval(timer);
  }
}

function toolBinary(script: string): string {
  return execFileSync('bash', [path.join(ROOT, 'hack', script)], { stdio: ['ignore', 'pipe', 'ignore'] })
    .toString()
    .trim()
    .split('\n')
    .at(-1) as string;
}

async function startDistribution(
  dir: string,
  name: string,
  binary: string,
  proxyOf?: string,
): Promise<Server> {
  const port = await freePort();
  const config = path.join(dir, `${name}.yml`);
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: error, accesslog: { disabled: true } }',
      `storage: { filesystem: { rootdirectory: ${path.join(dir, name)} }, maintenance: { uploadpurging: { enabled: false } } }`,
      `http: { addr: 127.0.0.1:${port} }`,
      ...(proxyOf ? [`proxy: { remoteurl: ${proxyOf} }`] : []),
      '',
    ].join('\n'),
  );
  const child = spawn(binary, ['serve', config], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/v2/`);
  return { name, url, child, prefix: '' };
}

async function startWharf(dir: string, upstream: string): Promise<Server> {
  const port = await freePort();
  execFileSync(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], { cwd: ROOT });
  const config = path.join(dir, 'wharf.json');
  await writeFile(
    config,
    JSON.stringify({
      registry: { oci: { gc: { enabled: false }, proxies: [{ namespace: 'upstream', upstream }] } },
    }),
  );
  const child = spawnDeployedWharf(ROOT, port, {
    WHARF_CONFIG: config,
    WHARF_METRICS_PORT: '0',
    WHARF_DATA_DIR: path.join(dir, 'wharf'),
    WHARF_LOG_LEVEL: 'warn',
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/healthz`);
  return { name: 'wharf', url, child, prefix: 'upstream/' };
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const mbps = (value: number) => `${(value / 1e6).toFixed(0)} MB/s`;
const load = () =>
  loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-bench-oci-proxy-'));
  const servers: Server[] = [];
  try {
    console.log(
      `OCI proxy benchmark: ${IMAGE_BYTES / MB} MiB image in ${LAYERS} layers, median of ${RUNS} runs; load average ${load()}`,
    );
    const upstream = await startDistribution(dir, 'upstream', toolBinary('distribution.sh'));
    servers.push(upstream);
    const wharf = await startWharf(dir, upstream.url);
    servers.push(wharf);
    const peer = await startDistribution(
      dir,
      'distribution-v3',
      toolBinary('distribution-v3.sh'),
      upstream.url,
    );
    servers.push(peer);
    const proxies = [wharf, peer];

    const samples = new Map<string, number[]>();
    const add = (key: string, value: number) => samples.set(key, [...(samples.get(key) ?? []), value]);
    for (let run = 0; run < RUNS; run++) {
      for (const [turn, proxy] of (run % 2 === 0 ? proxies : [...proxies].reverse()).entries()) {
        const repository = await pushImage(upstream.url, run * 2 + turn);
        add('direct', await pull(upstream, repository));
        const cold = await peakRss(proxy.child.pid, () => pull(proxy, repository));
        add(`${proxy.name} cold`, cold.result);
        add(`${proxy.name} cold rss`, cold.peak);
        const warm = await peakRss(proxy.child.pid, () => pull(proxy, repository));
        add(`${proxy.name} warm`, warm.result);
        add(`${proxy.name} warm rss`, warm.peak);
      }
      console.log(
        `run ${run + 1}: ${[...samples.entries()]
          .filter(([key]) => !key.endsWith('rss'))
          .map(([key, values]) => `${key} ${mbps(values.at(-1) as number)}`)
          .join(', ')}`,
      );
    }
    const figure = (key: string) => median(samples.get(key) ?? [Number.NaN]);
    const direct = figure('direct');
    console.log('');
    console.log(
      `${'pull'.padEnd(16)} ${'wharf'.padStart(10)} ${'dist v3'.padStart(10)} ${'ratio'.padStart(7)}   direct from upstream ${mbps(direct)}`,
    );
    for (const phase of ['cold', 'warm']) {
      const ours = figure(`wharf ${phase}`);
      const theirs = figure(`distribution-v3 ${phase}`);
      console.log(
        `${`through, ${phase}`.padEnd(16)} ${mbps(ours).padStart(10)} ${mbps(theirs).padStart(10)} ${`${(ours / theirs).toFixed(2)}x`.padStart(7)}`,
      );
    }
    for (const phase of ['cold', 'warm']) {
      const ours = figure(`wharf ${phase} rss`);
      const theirs = figure(`distribution-v3 ${phase} rss`);
      console.log(
        `${`peak RSS, ${phase}`.padEnd(16)} ${`${(ours / 1e6).toFixed(0)} MB`.padStart(10)} ${`${(theirs / 1e6).toFixed(0)} MB`.padStart(10)}`,
      );
    }
    console.log(`load average at the end: ${load()}`);
    await writeFile(
      path.join(ROOT, 'bench', 'results', 'oci-proxy.json'),
      JSON.stringify(
        { imageBytes: IMAGE_BYTES, layers: LAYERS, runs: RUNS, samples: Object.fromEntries(samples) },
        null,
        2,
      ),
    ).catch(() => {});
  } finally {
    for (const server of servers) server.child.kill('SIGTERM');
    agent.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
