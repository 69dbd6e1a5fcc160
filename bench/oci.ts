/**
 * OCI benchmark: wharf against the distribution registry 2.8 (Debian `docker-registry`), both on
 * the filesystem store in one temp dir, in one run. Prints each figure, the ratio, and the bound
 * (the lower of single-core SHA-256 speed and the disk's fdatasync'd sequential write speed).
 *
 *   npx node bench/oci.ts            # BENCH_GIB=1 BENCH_SECONDS=5 BENCH_RUNS=3 by default
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const ROOT = path.resolve(import.meta.dirname, '..');
const GiB = 1024 * 1024 * 1024;
const BLOB_BYTES = Number(process.env.BENCH_GIB ?? 1) * GiB;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = 32;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const execFileAsync = promisify(execFile);
const PATTERN = randomBytes(16 * 1024 * 1024);
const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });

interface Target {
  name: string;
  url: string;
  child: ChildProcess;
  auth: () => Promise<Record<string, string>>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

async function waitFor(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      await fetch(url);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`${url} did not come up`);
}

function request(
  url: string,
  method: string,
  headers: Record<string, string | number>,
  body?: (req: http.ClientRequest) => Promise<void> | void,
  sink = false,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (!sink) chunks.push(chunk);
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), bytes }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body) Promise.resolve(body(req)).then(() => req.end(), reject);
    else req.end();
  });
}

/** Writes `length` bytes of the repeating pattern, respecting backpressure. */
async function writePattern(req: http.ClientRequest, length: number): Promise<void> {
  let left = length;
  while (left > 0) {
    const chunk = left >= PATTERN.length ? PATTERN : PATTERN.subarray(0, left);
    left -= chunk.length;
    if (!req.write(chunk)) await new Promise((resolve) => req.once('drain', resolve));
  }
}

function patternDigest(length: number): string {
  const hash = createHash('sha256');
  let left = length;
  while (left > 0) {
    const chunk = left >= PATTERN.length ? PATTERN : PATTERN.subarray(0, left);
    hash.update(chunk);
    left -= chunk.length;
  }
  return `sha256:${hash.digest('hex')}`;
}

/** Resident memory: total, and anonymous only (heap and buffers, without the mapped node binary). */
function rssOf(pid: number): { total: number; anon: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
    return { total: field('VmRSS'), anon: field('RssAnon') };
  } catch {
    return { total: 0, anon: 0 };
  }
}

async function withRss<T>(
  pid: number,
  work: () => Promise<T>,
): Promise<{ result: T; maxRss: number; maxAnon: number }> {
  let maxRss = 0;
  let maxAnon = 0;
  const sample = () => {
    const { total, anon } = rssOf(pid);
    maxRss = Math.max(maxRss, total);
    maxAnon = Math.max(maxAnon, anon);
  };
  sample();
  const timer = setInterval(sample, 50);
  try {
    const result = await work();
    sample();
    return { result, maxRss, maxAnon };
  } finally {
    clearInterval(timer);
  }
}

async function startWharf(dir: string): Promise<Target> {
  const port = await freePort();
  // As deployed (Dockerfile, `npm start`): compiled JavaScript and the same GC flags (docs/oci.md).
  execFileSync(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], { cwd: ROOT });
  const child = spawn(
    path.join(ROOT, 'node_modules/.bin/node'),
    ['--max-semi-space-size=1', '--heap-growing-percent=300', '--enable-source-maps', 'dist/server/main.js'],
    {
      cwd: ROOT,
      stdio: 'ignore',
      env: {
        PATH: process.env.PATH,
        HOST: '127.0.0.1',
        PORT: String(port),
        WHARF_METRICS_PORT: '0',
        WHARF_DATA_DIR: path.join(dir, 'wharf'),
        WHARF_SIGNUP: 'open',
        WHARF_LOG_LEVEL: 'warn',
        WHARF_OCI_GC_ENABLED: 'false',
      },
    },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/healthz`);
  const signup = await fetch(`${url}/ktra/api/v1/new_user/bench`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ password: 'bench-password' }),
  });
  if (signup.status !== 200) throw new Error(`signup failed: ${signup.status}`);
  const basic = `Basic ${Buffer.from('bench:bench-password').toString('base64')}`;
  let cached: Record<string, string> | null = null;
  return {
    name: 'wharf',
    url,
    child,
    auth: async () => {
      if (cached) return cached;
      const response = await fetch(
        `${url}/v2/auth?service=wharf&scope=repository:bench/app:pull,push&scope=repository:bench/chunked:pull,push`,
        {
          headers: { authorization: basic },
        },
      );
      cached = { authorization: `Bearer ${((await response.json()) as { token: string }).token}` };
      return cached;
    },
  };
}

async function startDistribution(dir: string): Promise<Target> {
  const binary = execFileSync('bash', [path.join(ROOT, 'hack/distribution.sh')], {
    stdio: ['ignore', 'pipe', 'ignore'],
  })
    .toString()
    .trim()
    .split('\n')
    .at(-1) as string;
  const port = await freePort();
  const config = path.join(dir, 'distribution.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: error, accesslog: { disabled: true } }',
      `storage: { filesystem: { rootdirectory: ${path.join(dir, 'distribution')} }, delete: { enabled: true }, maintenance: { uploadpurging: { enabled: false } } }`,
      `http: { addr: 127.0.0.1:${port} }`,
      '',
    ].join('\n'),
  );
  const child = spawn(binary, ['serve', config], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/v2/`);
  return { name: 'distribution 2.8', url, child, auth: async () => ({}) };
}

async function pushMonolithic(target: Target, digest: string): Promise<number> {
  const auth = await target.auth();
  const started = performance.now();
  const post = await request(`${target.url}/v2/bench/app/blobs/uploads/`, 'POST', {
    ...auth,
    'content-length': 0,
  });
  const location = new URL(String(post.headers.location), target.url);
  location.searchParams.set('digest', digest);
  const put = await request(
    location.toString(),
    'PUT',
    { ...auth, 'content-type': 'application/octet-stream', 'content-length': BLOB_BYTES },
    (req) => writePattern(req, BLOB_BYTES),
  );
  if (put.status !== 201) throw new Error(`${target.name} monolithic push: ${put.status} ${put.body}`);
  return BLOB_BYTES / ((performance.now() - started) / 1000);
}

async function pushChunked(target: Target, digest: string, chunk = 16 * 1024 * 1024): Promise<number> {
  const auth = await target.auth();
  const started = performance.now();
  const post = await request(`${target.url}/v2/bench/chunked/blobs/uploads/`, 'POST', {
    ...auth,
    'content-length': 0,
  });
  let location = new URL(String(post.headers.location), target.url).toString();
  for (let offset = 0; offset < BLOB_BYTES; offset += chunk) {
    const length = Math.min(chunk, BLOB_BYTES - offset);
    const patch = await request(
      location,
      'PATCH',
      {
        ...auth,
        'content-type': 'application/octet-stream',
        'content-length': length,
        'content-range': `${offset}-${offset + length - 1}`,
      },
      (req) => writePattern(req, length),
    );
    if (patch.status !== 202) throw new Error(`${target.name} chunk: ${patch.status} ${patch.body}`);
    location = new URL(String(patch.headers.location), target.url).toString();
  }
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  const put = await request(url.toString(), 'PUT', { ...auth, 'content-length': 0 });
  if (put.status !== 201) throw new Error(`${target.name} chunked PUT: ${put.status} ${put.body}`);
  return BLOB_BYTES / ((performance.now() - started) / 1000);
}

async function pull(target: Target, digest: string): Promise<number> {
  const auth = await target.auth();
  const started = performance.now();
  const response = await request(`${target.url}/v2/bench/app/blobs/${digest}`, 'GET', auth, undefined, true);
  if (response.status !== 200 || response.bytes !== BLOB_BYTES)
    throw new Error(`${target.name} pull: ${response.status}`);
  return BLOB_BYTES / ((performance.now() - started) / 1000);
}

/** The same download with curl, which leaves more of the machine's two cores to the server. */
async function pullWithCurl(target: Target, digest: string): Promise<number> {
  const auth = await target.auth();
  const headers = Object.entries(auth).flatMap(([name, value]) => ['-H', `${name}: ${value}`]);
  const { stdout } = await execFileAsync('curl', [
    '-sf',
    '-o',
    '/dev/null',
    '-w',
    '%{size_download} %{speed_download}',
    ...headers,
    `${target.url}/v2/bench/app/blobs/${digest}`,
  ]);
  const [bytes, speed] = stdout.trim().split(' ').map(Number);
  if (bytes !== BLOB_BYTES) throw new Error(`${target.name} curl pull: ${bytes} bytes`);
  return speed as number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

async function pushManifest(target: Target): Promise<void> {
  const auth = await target.auth();
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  // POST then PUT: distribution 2.8 does not take a monolithic POST ?digest=.
  const session = await request(`${target.url}/v2/bench/app/blobs/uploads/`, 'POST', {
    ...auth,
    'content-length': 0,
  });
  const location = new URL(String(session.headers.location), target.url);
  location.searchParams.set('digest', configDigest);
  await request(
    location.toString(),
    'PUT',
    { ...auth, 'content-type': 'application/octet-stream', 'content-length': config.length },
    (req) => {
      req.write(config);
    },
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: {
        mediaType: 'application/vnd.docker.container.image.v1+json',
        digest: configDigest,
        size: config.length,
      },
      layers: [],
    }),
  );
  const put = await request(
    `${target.url}/v2/bench/app/manifests/bench`,
    'PUT',
    {
      ...auth,
      'content-type': 'application/vnd.docker.distribution.manifest.v2+json',
      'content-length': manifest.length,
    },
    (req) => {
      req.write(manifest);
    },
  );
  if (put.status !== 201) throw new Error(`${target.name} manifest push: ${put.status} ${put.body}`);
}

/** Requests per second over SECONDS with CONNECTIONS concurrent keep-alive loops. */
async function rate(url: string, headers: Record<string, string>, expect = 200): Promise<number> {
  const deadline = performance.now() + SECONDS * 1000;
  let count = 0;
  let errors = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < deadline) {
        const response = await request(url, 'GET', headers, undefined, true);
        if (response.status === expect) count++;
        else errors++;
      }
    }),
  );
  if (errors > 0) console.error(`  (${errors} unexpected statuses from ${url})`);
  return count / SECONDS;
}

function sha256Bound(): number {
  const output = execFileSync('openssl', ['speed', '-evp', 'sha256', '-seconds', '2', '-bytes', '16384'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  }).toString();
  const kilobytes = Number(/sha256\s+([\d.]+)k/.exec(output)?.[1] ?? 0);
  return kilobytes * 1000;
}

/** The disk's speed varies by a factor of two between runs here: the median of three. */
function diskBound(dir: string): number {
  const file = path.join(dir, 'dd.bin');
  const speeds: number[] = [];
  for (let run = 0; run < 3; run++) {
    const started = performance.now();
    execFileSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', 'count=1024', 'conv=fdatasync'], {
      stdio: 'ignore',
    });
    speeds.push(GiB / ((performance.now() - started) / 1000));
    execFileSync('rm', ['-f', file]);
  }
  return median(speeds);
}

const mb = (bytesPerSecond: number) => `${(bytesPerSecond / 1e6).toFixed(0)} MB/s`;

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-bench-oci-'));
  const targets: Target[] = [];
  try {
    console.log(
      `OCI benchmark: ${BLOB_BYTES / GiB} GiB blob, median of ${RUNS} runs, ${CONNECTIONS} connections, ${SECONDS}s per rate`,
    );
    const sha = sha256Bound();
    const disk = diskBound(dir);
    const bound = Math.min(sha, disk);
    console.log(`bound: sha256 single core ${mb(sha)}, disk write+fdatasync ${mb(disk)} -> ${mb(bound)}`);
    const digest = patternDigest(BLOB_BYTES);
    const wharf = await startWharf(dir);
    targets.push(wharf);
    const distribution = await startDistribution(dir);
    targets.push(distribution);

    // Transfers are noisy on a shared machine: each runs RUNS times, the two registries taking
    // turns, and the median is reported.
    const results: Record<string, Record<string, number>> = {};
    const samples = new Map<Target, Record<string, number[]>>();
    const peakRss = new Map<string, number>();
    for (const target of [distribution, wharf]) {
      samples.set(target, { pushMonolithic: [], pushChunked: [], pull: [], pullCurl: [], rss: [], anon: [] });
    }
    for (let run = 0; run < RUNS; run++) {
      for (const target of [distribution, wharf]) {
        const s = samples.get(target) as Record<string, number[]>;
        const pid = target.child.pid as number;
        const operations: [string, () => Promise<number>][] = [
          ['pushMonolithic', () => pushMonolithic(target, digest)],
          ['pushChunked', () => pushChunked(target, digest)],
          ['pull', () => pull(target, digest)],
          ['pullCurl', () => pullWithCurl(target, digest)],
        ];
        for (const [name, operation] of operations) {
          const measured = await withRss(pid, operation);
          s[name]!.push(measured.result);
          s.rss!.push(measured.maxRss);
          s.anon!.push(measured.maxAnon);
          peakRss.set(
            `${target.name} ${name}`,
            Math.max(peakRss.get(`${target.name} ${name}`) ?? 0, measured.maxRss),
          );
        }
      }
    }
    for (const target of [distribution, wharf]) {
      const s = samples.get(target) as Record<string, number[]>;
      const r: Record<string, number> = {
        pushMonolithic: median(s.pushMonolithic!),
        pushChunked: median(s.pushChunked!),
        pull: median(s.pull!),
        pullCurl: median(s.pullCurl!),
        rssMax: Math.max(...s.rss!),
        anonMax: Math.max(...s.anon!),
      };
      await pushManifest(target);
      const headers = {
        ...(await target.auth()),
        accept: 'application/vnd.docker.distribution.manifest.v2+json',
      };
      r.manifestGet = await rate(`${target.url}/v2/bench/app/manifests/bench`, headers);
      results[target.name] = r;
      const all = (values: number[]) => values.map((value) => (value / 1e6).toFixed(0)).join('/');
      console.log(
        `${target.name}: push mono ${all(s.pushMonolithic!)} MB/s, push chunked ${all(s.pushChunked!)} MB/s, pull ${all(s.pull!)} MB/s, pull (curl) ${all(s.pullCurl!)} MB/s, manifest GET ${r.manifestGet.toFixed(0)}/s, max RSS ${((r.rssMax as number) / 1e6).toFixed(0)} MB`,
      );
    }
    console.log(
      `wharf peak RSS by operation: ${['pushMonolithic', 'pushChunked', 'pull', 'pullCurl']
        .map((name) => `${name} ${((peakRss.get(`wharf ${name}`) ?? 0) / 1e6).toFixed(0)} MB`)
        .join(', ')}`,
    );
    const basic = `Basic ${Buffer.from('bench:bench-password').toString('base64')}`;
    const tokens = await rate(`${wharf.url}/v2/auth?service=wharf&scope=repository:bench/app:pull`, {
      authorization: basic,
    });

    const w = results.wharf as Record<string, number>;
    const d = results['distribution 2.8'] as Record<string, number>;
    const line = (label: string, ours: string, theirs: string, ratio: number, target: string) =>
      console.log(
        `${label.padEnd(26)} ${ours.padStart(12)} ${theirs.padStart(12)} ${(Number.isNaN(ratio) ? '-' : `${ratio.toFixed(2)}x`).padStart(8)}   ${target}`,
      );
    console.log('');
    console.log(
      `${'metric'.padEnd(26)} ${'wharf'.padStart(12)} ${'dist 2.8'.padStart(12)} ${'ratio'.padStart(8)}   target`,
    );
    line(
      'push 1 GiB monolithic',
      mb(w.pushMonolithic as number),
      mb(d.pushMonolithic as number),
      (w.pushMonolithic as number) / (d.pushMonolithic as number),
      `>= 2x; bound share ${(((w.pushMonolithic as number) / bound) * 100).toFixed(0)}% (>= 60%)`,
    );
    line(
      'push 1 GiB chunked (16M)',
      mb(w.pushChunked as number),
      mb(d.pushChunked as number),
      (w.pushChunked as number) / (d.pushChunked as number),
      `>= 2x; bound share ${(((w.pushChunked as number) / bound) * 100).toFixed(0)}%`,
    );
    line(
      'pull 1 GiB (node client)',
      mb(w.pull as number),
      mb(d.pull as number),
      (w.pull as number) / (d.pull as number),
      '>= 1.0x',
    );
    line(
      'pull 1 GiB (curl)',
      mb(w.pullCurl as number),
      mb(d.pullCurl as number),
      (w.pullCurl as number) / (d.pullCurl as number),
      '>= 1.0x (curl needs less CPU than the node client: closer to the server limit)',
    );
    line(
      'manifest GET req/s',
      (w.manifestGet as number).toFixed(0),
      (d.manifestGet as number).toFixed(0),
      (w.manifestGet as number) / (d.manifestGet as number),
      '>= 1.5x (wharf with bearer token, dist without auth)',
    );
    line('token issuance req/s', tokens.toFixed(0), '-', Number.NaN, 'distribution has no token server');
    line(
      'max RSS during 1 GiB',
      `${((w.rssMax as number) / 1e6).toFixed(0)} MB`,
      `${((d.rssMax as number) / 1e6).toFixed(0)} MB`,
      (w.rssMax as number) / (d.rssMax as number),
      '< 150 MB',
    );
    line(
      '  of which anonymous',
      `${((w.anonMax as number) / 1e6).toFixed(0)} MB`,
      `${((d.anonMax as number) / 1e6).toFixed(0)} MB`,
      (w.anonMax as number) / (d.anonMax as number),
      'RSS without file-backed pages (the node binary)',
    );
    await writeFile(
      path.join(ROOT, 'bench', 'results', 'oci.json'),
      JSON.stringify({ bound: { sha, disk }, results, tokens }, null, 2),
    ).catch(() => {});
  } finally {
    for (const target of targets) target.child.kill('SIGTERM');
    agent.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
