/**
 * OCI benchmark: wharf against the distribution registry v3.1.2 (CNCF distribution, built by
 * hack/distribution-v3.sh) on the same store, in one run. Prints each figure, the ratio, the bound,
 * the peak memory of each server (VmHWM, reset before each transfer) and, for every hot operation,
 * the number of store requests it made (wharf: its own store metric; distribution: MinIO's per-bucket
 * request counter).
 *
 *   npx node bench/oci.ts                  # fs store; BENCH_GIB=1 BENCH_SECONDS=5 BENCH_RUNS=3
 *   npx node bench/oci.ts --store s3       # both on one MinIO (a bucket each), + wharf with presigned
 *                                          # redirects and + wharf with a local blob cache (pulls only)
 *   BENCH_PEERS=v3,v2 ...                  # also distribution 2.8 (Debian docker-registry)
 *   BENCH_CHUNK_MIB=16                     # chunk size of the chunked push
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { type MinioServer, startMinio } from '../test/support/minio.ts';
import { freePort, spawnDeployedWharf, waitFor } from './support.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const GiB = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;
const BLOB_BYTES = Math.round(Number(process.env.BENCH_GIB ?? 1) * GiB);
const CHUNK_BYTES = Number(process.env.BENCH_CHUNK_MIB ?? 16) * MiB;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = 32;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PEERS = (process.env.BENCH_PEERS ?? 'v3').split(',');
/** Transfers to measure (all by default); the first round pushes monolithically anyway, for the pulls. */
const OPS = (process.env.BENCH_OPS ?? 'pushMonolithic,pushChunked,pull,pullCurl').split(',');
/** BENCH_RATE=0 skips the manifest GET rates and the request counts. */
const RATES = process.env.BENCH_RATE !== '0';
const { values: flags } = parseArgs({ options: { store: { type: 'string', default: 'fs' } } });
const STORE = flags.store === 's3' ? 's3' : 'fs';
const execFileAsync = promisify(execFile);
const PATTERN = randomBytes(16 * 1024 * 1024);
const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
/** One sealing key for every wharf process on the bucket: they share the signing keys. */
const SEALING_KEY = randomBytes(32).toString('base64');

interface Target {
  name: string;
  url: string;
  child: ChildProcess;
  auth: () => Promise<Record<string, string>>;
  /** Store requests so far by operation (wharf's metric, or MinIO's count for the target's bucket). */
  storeRequests?: () => Promise<Record<string, number>>;
  /** Seconds to wait before storeRequests() shows the last requests (MinIO refreshes its metrics lazily). */
  countLag: number;
  /** Only downloads are measured (another wharf on the same bucket: presigned redirects, or a blob cache). */
  pullOnly?: boolean;
  /** Run once before its first measured pull, unmeasured (fills wharf's local blob cache). */
  warm?: (digest: string) => Promise<void>;
  /** The metrics text (wharf). */
  metrics?: () => Promise<string>;
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

/**
 * Peak resident memory of a process during `work`: the kernel's high-water mark (VmHWM), reset
 * first (clear_refs 5), so nothing is missed between samples; RssAnon is sampled beside it.
 */
async function withPeakRss<T>(
  pid: number,
  work: () => Promise<T>,
): Promise<{ result: T; peak: number; anon: number; cpu: number }> {
  const field = (status: string, name: string) =>
    Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  const status = () => {
    try {
      return readFileSync(`/proc/${pid}/status`, 'utf8');
    } catch {
      return '';
    }
  };
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {}
  let anon = 0;
  const cpuBefore = cpuSeconds(pid);
  const timer = setInterval(() => {
    anon = Math.max(anon, field(status(), 'RssAnon'));
  }, 50);
  try {
    const result = await work();
    const now = status();
    return {
      result,
      peak: field(now, 'VmHWM'),
      anon: Math.max(anon, field(now, 'RssAnon')),
      cpu: cpuSeconds(pid) - cpuBefore,
    };
  } finally {
    clearInterval(timer);
  }
}

/**
 * CPU time (user + system) a process has used: what a transfer costs the server whatever else runs
 * on the machine, so it compares across rounds where throughput alone depends on the load.
 */
function cpuSeconds(pid: number): number {
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

function compileWharf(): void {
  // As deployed (Dockerfile, `npm start`): compiled JavaScript and the same GC flags (docs/oci.md).
  execFileSync(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], { cwd: ROOT });
}

async function startWharf(name: string, dir: string, storeEnv: Record<string, string>): Promise<Target> {
  const port = await freePort();
  const metricsPort = await freePort();
  const child = spawnDeployedWharf(ROOT, port, {
    WHARF_METRICS_PORT: String(metricsPort),
    WHARF_DATA_DIR: path.join(dir, 'wharf'),
    WHARF_SIGNUP: 'open',
    WHARF_LOG_LEVEL: 'warn',
    WHARF_OCI_GC_ENABLED: 'false',
    WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY: SEALING_KEY,
    // glibc malloc tuning, passed through to try deployment settings (docs/performance.md).
    ...Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('MALLOC_'))),
    ...storeEnv,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/healthz`);
  const signup = await fetch(`${url}/ktra/api/v1/new_user/bench`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ password: 'bench-password' }),
  });
  // A second wharf on the same bucket finds the user already there.
  if (signup.status !== 200 && signup.status !== 409 && signup.status !== 400)
    throw new Error(`signup failed: ${signup.status}`);
  const basic = `Basic ${Buffer.from('bench:bench-password').toString('base64')}`;
  let cached: Record<string, string> | null = null;
  return {
    name,
    url,
    child,
    countLag: 0,
    auth: async () => {
      if (cached) return cached;
      const response = await fetch(
        `${url}/v2/auth?service=wharf&scope=repository:bench/app:pull,push&scope=repository:bench/chunked:pull,push`,
        { headers: { authorization: basic } },
      );
      if (response.status !== 200) throw new Error(`${name} token: ${response.status}`);
      cached = { authorization: `Bearer ${((await response.json()) as { token: string }).token}` };
      return cached;
    },
    metrics: async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(),
    storeRequests: async () => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const counts: Record<string, number> = {};
      for (const match of text.matchAll(
        /^wharf_store_operation_duration_seconds_count\{operation="([^"]+)",result="[^"]+"\} (\d+)/gm,
      )) {
        counts[match[1] as string] = (counts[match[1] as string] ?? 0) + Number(match[2]);
      }
      return counts;
    },
  };
}

function buildDistribution(script: string): string {
  return execFileSync('bash', [path.join(ROOT, 'hack', script)], { stdio: ['ignore', 'pipe', 'ignore'] })
    .toString()
    .trim()
    .split('\n')
    .at(-1) as string;
}

async function startDistribution(
  name: string,
  binary: string,
  dir: string,
  storage: string,
  storeRequests?: () => Promise<Record<string, number>>,
): Promise<Target> {
  const port = await freePort();
  const config = path.join(dir, `${name.replace(/\W+/g, '-')}.yml`);
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: error, accesslog: { disabled: true } }',
      // distribution's own example configuration caches blob descriptors in memory: so does this.
      `storage: { ${storage}, cache: { blobdescriptor: inmemory }, delete: { enabled: true }, redirect: { disable: true }, maintenance: { uploadpurging: { enabled: false } } }`,
      `http: { addr: 127.0.0.1:${port} }`,
      '',
    ].join('\n'),
  );
  const child = spawn(binary, ['serve', config], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/v2/`);
  return {
    name,
    url,
    child,
    auth: async () => ({}),
    countLag: storeRequests ? 11 : 0,
    ...(storeRequests ? { storeRequests } : {}),
  };
}

/** MinIO's request counter for one bucket, by S3 API (refreshed by MinIO every few seconds). */
function minioBucketRequests(minio: MinioServer, bucket: string): () => Promise<Record<string, number>> {
  return async () => {
    const text = await (await fetch(`${minio.endpoint}/minio/v2/metrics/bucket`)).text();
    const counts: Record<string, number> = {};
    for (const match of text.matchAll(
      /^minio_bucket_requests_total\{api="([^"]+)",bucket="([^"]+)"[^}]*\} (\d+)/gm,
    )) {
      if (match[2] === bucket) counts[match[1] as string] = Number(match[3]);
    }
    return counts;
  };
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

async function pushChunked(target: Target, digest: string, chunk = CHUNK_BYTES): Promise<number> {
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
  let response = await request(`${target.url}/v2/bench/app/blobs/${digest}`, 'GET', auth, undefined, true);
  // Presigned downloads: the bytes come from the bucket (the signature is in the URL, no credentials).
  if (response.status === 307)
    response = await request(String(response.headers.location), 'GET', {}, undefined, true);
  if (response.status !== 200 || response.bytes !== BLOB_BYTES)
    throw new Error(`${target.name} pull: ${response.status}`);
  return BLOB_BYTES / ((performance.now() - started) / 1000);
}

/** The same download with curl, which leaves more of the machine's two cores to the server. */
async function pullWithCurl(target: Target, digest: string): Promise<number> {
  const auth = await target.auth();
  const headers = Object.entries(auth).flatMap(([name, value]) => ['-H', `${name}: ${value}`]);
  const { stdout } = await execFileAsync('curl', [
    '-sfL',
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
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

async function pushManifest(target: Target): Promise<{ manifest: string; config: string }> {
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
  return { manifest: String(put.headers['docker-content-digest']), config: configDigest };
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
const load = () => loadavg()[0]?.toFixed(2) ?? '?';

/** A small blob pushed monolithically (POST, then PUT with the digest): what a layer push costs in requests. */
async function pushSmallBlob(target: Target): Promise<void> {
  const auth = await target.auth();
  const data = randomBytes(1024);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const post = await request(`${target.url}/v2/bench/app/blobs/uploads/`, 'POST', {
    ...auth,
    'content-length': 0,
  });
  const location = new URL(String(post.headers.location), target.url);
  location.searchParams.set('digest', digest);
  const put = await request(
    location.toString(),
    'PUT',
    { ...auth, 'content-type': 'application/octet-stream', 'content-length': data.length },
    (req) => {
      req.write(data);
    },
  );
  if (put.status !== 201) throw new Error(`${target.name} small push: ${put.status}`);
}

const MANIFEST_ACCEPT = 'application/vnd.docker.distribution.manifest.v2+json';

/** The hot operations whose store requests are counted, each repeated COUNTED times. */
function countedOperations(pushed: {
  manifest: string;
  config: string;
}): [string, (target: Target) => Promise<void>][] {
  const expect = (what: string, status: number, wanted = 200) => {
    if (status !== wanted) throw new Error(`${what}: ${status}`);
  };
  const get = async (target: Target, path: string, method = 'GET') => {
    const response = await request(
      `${target.url}/v2/bench/app/${path}`,
      method,
      { ...(await target.auth()), accept: MANIFEST_ACCEPT },
      undefined,
      true,
    );
    expect(`${target.name} ${method} ${path}`, response.status);
  };
  return [
    ['manifest GET by tag', (target) => get(target, 'manifests/bench')],
    ['manifest GET by digest', (target) => get(target, `manifests/${pushed.manifest}`)],
    ['manifest HEAD by tag', (target) => get(target, 'manifests/bench', 'HEAD')],
    ['blob HEAD', (target) => get(target, `blobs/${pushed.config}`, 'HEAD')],
    ['blob GET (small)', (target) => get(target, `blobs/${pushed.config}`)],
    ['blob push (POST+PUT, 1 KiB)', pushSmallBlob],
    ['image push (config blob + manifest PUT)', async (target) => void (await pushManifest(target))],
  ];
}
const COUNTED = 20;

/** Store requests per operation: the counter's growth over COUNTED back-to-back calls, by S3/driver call. */
async function countRequests(
  target: Target,
  operation: (target: Target) => Promise<void>,
): Promise<{ perCall: number; by: Record<string, number> }> {
  const read = target.storeRequests as () => Promise<Record<string, number>>;
  const settle = () => new Promise((resolve) => setTimeout(resolve, target.countLag * 1000));
  await operation(target); // warm: what is measured is the steady state of a busy replica
  await settle();
  const before = await read();
  for (let i = 0; i < COUNTED; i++) await operation(target);
  await settle();
  const after = await read();
  const by: Record<string, number> = {};
  let total = 0;
  for (const [name, value] of Object.entries(after)) {
    // Presigning signs a URL locally: no request.
    const delta = name === 'presign_get' ? 0 : value - (before[name] ?? 0);
    if (delta > 0) {
      by[name] = delta / COUNTED;
      total += delta;
    }
  }
  return { perCall: total / COUNTED, by };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-bench-oci-'));
  const targets: Target[] = [];
  let minio: MinioServer | null = null;
  try {
    console.log(
      `OCI benchmark on ${STORE}: ${(BLOB_BYTES / GiB).toFixed(2)} GiB blob, ${CHUNK_BYTES / MiB} MiB chunks, median of ${RUNS} alternating rounds, ${CONNECTIONS} connections, ${SECONDS}s per rate; load ${loadavg()
        .map((value) => value.toFixed(2))
        .join(' ')}`,
    );
    const sha = sha256Bound();
    const disk = STORE === 'fs' ? diskBound(dir) : Number.POSITIVE_INFINITY;
    const bound = Math.min(sha, disk);
    console.log(
      `bound: sha256 single core ${mb(sha)}${STORE === 'fs' ? `, disk write+fdatasync ${mb(disk)}` : ''} -> ${mb(bound)}`,
    );
    const digest = patternDigest(BLOB_BYTES);
    compileWharf();
    const peers: Target[] = [];
    if (STORE === 's3') {
      minio = await startMinio();
      const wharfBucket = await minio.createBucket('wharf-bench');
      const env = minio.wharfEnv(wharfBucket);
      targets.push(await startWharf('wharf', dir, env));
      targets.push(await startWharf('wharf presigned', dir, { ...env, WHARF_S3_PRESIGN_DOWNLOADS: 'true' }));
      (targets[1] as Target).pullOnly = true;
      const cached = await startWharf('wharf cached', dir, {
        ...env,
        WHARF_OCI_BLOB_CACHE_DIR: path.join(dir, 'blob-cache'),
      });
      cached.pullOnly = true;
      cached.warm = async (digest) => {
        await pull(cached, digest);
        const copied = /^wharf_oci_blob_cache_copies_total\{result="stored"\} (\d+)/m;
        for (const deadline = Date.now() + 120_000; Date.now() < deadline; ) {
          if (Number(copied.exec((await cached.metrics?.()) ?? '')?.[1] ?? 0) > 0) return;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        throw new Error('wharf cached: the blob was not copied into the local cache');
      };
      targets.push(cached);
      const bucket = await minio.createBucket('distribution-bench');
      const storage = `s3: { accesskey: ${minio.accessKeyId}, secretkey: ${minio.secretAccessKey}, region: ${minio.region}, regionendpoint: "${minio.endpoint}", bucket: ${bucket}, forcepathstyle: true, secure: false, v4auth: true }`;
      peers.push(
        await startDistribution(
          'distribution v3',
          buildDistribution('distribution-v3.sh'),
          dir,
          storage,
          minioBucketRequests(minio, bucket),
        ),
      );
    } else {
      targets.push(await startWharf('wharf', dir, {}));
      if (PEERS.includes('v3'))
        peers.push(
          await startDistribution(
            'distribution v3',
            buildDistribution('distribution-v3.sh'),
            dir,
            `filesystem: { rootdirectory: ${path.join(dir, 'distribution-v3')} }`,
          ),
        );
      if (PEERS.includes('v2'))
        peers.push(
          await startDistribution(
            'distribution 2.8',
            buildDistribution('distribution.sh'),
            dir,
            `filesystem: { rootdirectory: ${path.join(dir, 'distribution-v2')} }`,
          ),
        );
    }
    targets.push(...peers);
    const wharf = targets[0] as Target;
    const order = [...peers, ...targets.filter((target) => !peers.includes(target))];

    // Transfers are noisy on a shared machine: each runs RUNS times, the registries taking turns,
    // and the median is reported.
    const names = ['pushMonolithic', 'pushChunked', 'pull', 'pullCurl'] as const;
    type Name = (typeof names)[number];
    const samples = new Map<Target, Record<Name | 'manifestGet', number[]>>();
    const peak = new Map<Target, Record<Name, number>>();
    const anon = new Map<Target, number>();
    /** Server CPU seconds per GiB moved, by operation. */
    const cpu = new Map<Target, Record<Name, number[]>>();
    for (const target of targets) {
      cpu.set(target, { pushMonolithic: [], pushChunked: [], pull: [], pullCurl: [] });
      samples.set(target, { pushMonolithic: [], pushChunked: [], pull: [], pullCurl: [], manifestGet: [] });
      peak.set(target, { pushMonolithic: 0, pushChunked: 0, pull: 0, pullCurl: 0 });
    }
    for (let run = 0; run < RUNS; run++) {
      for (const target of order) {
        const s = samples.get(target) as Record<Name, number[]>;
        const p = peak.get(target) as Record<Name, number>;
        const operations: [Name, () => Promise<number>][] = [
          ['pushMonolithic', () => pushMonolithic(target, digest)],
          ['pushChunked', () => pushChunked(target, digest)],
          ['pull', () => pull(target, digest)],
          ['pullCurl', () => pullWithCurl(target, digest)],
        ];
        const line: string[] = [];
        if (target.warm) {
          await target.warm(digest);
          target.warm = undefined;
        }
        for (const [name, operation] of operations) {
          if (target.pullOnly && name.startsWith('push')) continue;
          if (!OPS.includes(name) && !(run === 0 && name === 'pushMonolithic')) continue;
          const measured = await withPeakRss(target.child.pid as number, operation);
          s[name].push(measured.result);
          cpu.get(target)?.[name].push(measured.cpu / (BLOB_BYTES / GiB));
          p[name] = Math.max(p[name], measured.peak);
          anon.set(target, Math.max(anon.get(target) ?? 0, measured.anon));
          line.push(
            `${name} ${mb(measured.result)} (${(measured.peak / 1e6).toFixed(0)} MB, ${measured.cpu.toFixed(2)} s CPU, load ${load()})`,
          );
        }
        console.log(`round ${run + 1} ${target.name}: ${line.join(', ')}`);
      }
    }

    const pushed = new Map<Target, { manifest: string; config: string }>();
    for (const target of targets) if (!target.pullOnly) pushed.set(target, await pushManifest(target));
    for (let run = 0; run < (RATES ? RUNS : 0); run++) {
      for (const target of order) {
        if (target.pullOnly) continue;
        const headers = { ...(await target.auth()), accept: MANIFEST_ACCEPT };
        const perSecond = await rate(`${target.url}/v2/bench/app/manifests/bench`, headers);
        samples.get(target)?.manifestGet.push(perSecond);
        console.log(
          `round ${run + 1} ${target.name}: manifest GET ${perSecond.toFixed(0)}/s (load ${load()})`,
        );
      }
    }
    const basic = `Basic ${Buffer.from('bench:bench-password').toString('base64')}`;
    const tokens = RATES
      ? await rate(`${wharf.url}/v2/auth?service=wharf&scope=repository:bench/app:pull`, {
          authorization: basic,
        })
      : Number.NaN;

    // Round trips: store requests per operation, wharf by its own metric, distribution by MinIO's.
    const counts = new Map<Target, Map<string, { perCall: number; by: Record<string, number> }>>();
    for (const target of targets) {
      if (!RATES || target.pullOnly || !target.storeRequests) continue;
      const byOperation = new Map<string, { perCall: number; by: Record<string, number> }>();
      for (const [label, operation] of countedOperations(
        pushed.get(target) as { manifest: string; config: string },
      ))
        byOperation.set(label, await countRequests(target, operation));
      counts.set(target, byOperation);
    }

    const figure = (target: Target, name: Name | 'manifestGet') => {
      const values = samples.get(target)?.[name] ?? [];
      return values.length > 0 ? median(values) : Number.NaN;
    };
    const cell = (value: number, unit: 'mb' | 'rate') =>
      Number.isNaN(value) ? '-' : unit === 'mb' ? mb(value) : `${value.toFixed(0)}/s`;
    const rows: [string, Name | 'manifestGet', 'mb' | 'rate', string][] = [
      [`push ${(BLOB_BYTES / GiB).toFixed(2)} GiB monolithic`, 'pushMonolithic', 'mb', '>= 1.5x'],
      [`push chunked (${CHUNK_BYTES / MiB} MiB)`, 'pushChunked', 'mb', '>= 1.5x'],
      ['pull (node client)', 'pull', 'mb', STORE === 's3' ? '>= 1.2x' : '>= 1.0x'],
      ['pull (curl)', 'pullCurl', 'mb', STORE === 's3' ? '>= 1.2x' : '>= 1.0x'],
      ['manifest GET (bearer vs none)', 'manifestGet', 'rate', STORE === 's3' ? '>= 3x' : '>= 1.5x'],
    ];
    const presigned = targets.find((target) => target.name === 'wharf presigned');
    const cached = targets.find((target) => target.name === 'wharf cached');
    for (const peer of peers) {
      console.log('');
      console.log(
        `${'metric'.padEnd(32)} ${'wharf'.padStart(11)} ${(presigned ? 'presigned' : '').padStart(11)} ${peer.name.replace('distribution', 'dist').padStart(11)} ${'ratio'.padStart(7)}   target`,
      );
      for (const [label, name, unit, goal] of rows) {
        const ours = figure(wharf, name);
        const theirs = figure(peer, name);
        console.log(
          `${label.padEnd(32)} ${cell(ours, unit).padStart(11)} ${(presigned ? cell(figure(presigned, name), unit) : '').padStart(11)} ${cell(theirs, unit).padStart(11)} ${`${(ours / theirs).toFixed(2)}x`.padStart(7)}   ${goal}`,
        );
      }
      for (const name of names) {
        const ours = peak.get(wharf)?.[name] ?? 0;
        const theirs = peak.get(peer)?.[name] ?? 0;
        const mine = presigned ? (peak.get(presigned)?.[name] ?? 0) : 0;
        console.log(
          `${`peak RSS (VmHWM) ${name}`.padEnd(32)} ${`${(ours / 1e6).toFixed(0)} MB`.padStart(11)} ${(mine ? `${(mine / 1e6).toFixed(0)} MB` : '').padStart(11)} ${`${(theirs / 1e6).toFixed(0)} MB`.padStart(11)} ${''.padStart(7)}   wharf <= 150 MB`,
        );
      }
      for (const name of names) {
        const ours = median(cpu.get(wharf)?.[name] ?? []);
        const theirs = median(cpu.get(peer)?.[name] ?? []);
        if (Number.isNaN(ours) && Number.isNaN(theirs)) continue;
        const mine = presigned ? median(cpu.get(presigned)?.[name] ?? []) : Number.NaN;
        const seconds = (value: number) => (Number.isNaN(value) ? '-' : `${value.toFixed(2)} s`);
        console.log(
          `${`server CPU per GiB ${name}`.padEnd(32)} ${seconds(ours).padStart(11)} ${(presigned ? seconds(mine) : '').padStart(11)} ${seconds(theirs).padStart(11)} ${`${(ours / theirs).toFixed(2)}x`.padStart(7)}   lower is better`,
        );
      }
      console.log(
        `${'wharf max RssAnon'.padEnd(32)} ${`${((anon.get(wharf) ?? 0) / 1e6).toFixed(0)} MB`.padStart(11)}`,
      );
      if (cached) {
        // A third wharf on the same bucket with registry.oci.blobCache: pulls after the first one.
        console.log(
          `${'from the local blob cache (warm)'.padEnd(32)} ${'wharf'.padStart(11)} ${''.padStart(11)} ${peer.name.replace('distribution', 'dist').padStart(11)}`,
        );
        for (const [label, name] of [
          ['pull (node client)', 'pull'],
          ['pull (curl)', 'pullCurl'],
        ] as const) {
          const ours = figure(cached, name);
          const theirs = figure(peer, name);
          const cpuOurs = median(cpu.get(cached)?.[name] ?? []);
          console.log(
            `${label.padEnd(32)} ${cell(ours, 'mb').padStart(11)} ${''.padStart(11)} ${cell(theirs, 'mb').padStart(11)} ${`${(ours / theirs).toFixed(2)}x`.padStart(7)}   peak ${((peak.get(cached)?.[name] ?? 0) / 1e6).toFixed(0)} MB, ${cpuOurs.toFixed(2)} s CPU/GiB`,
          );
        }
      }
    }
    console.log(`${'token issuance req/s'.padEnd(32)} ${tokens.toFixed(0).padStart(11)}`);
    if (counts.size > 0) {
      console.log('');
      console.log(
        `store requests per operation (steady state: ${COUNTED} back-to-back calls after a warm-up)`,
      );
      const counted = [...counts.keys()];
      console.log(`${'operation'.padEnd(32)} ${counted.map((target) => target.name.padStart(34)).join(' ')}`);
      for (const label of counts.get(counted[0] as Target)?.keys() ?? []) {
        const cells = counted.map((target) => {
          const entry = counts.get(target)?.get(label);
          if (!entry) return '-'.padStart(34);
          const by = Object.entries(entry.by)
            .map(([name, value]) => `${name} ${Number(value.toFixed(2))}`)
            .join(', ');
          return `${entry.perCall.toFixed(2)}${by ? ` (${by})` : ''}`.padStart(34);
        });
        console.log(`${label.padEnd(32)} ${cells.join(' ')}`);
      }
    }
    console.log(
      `load at the end: ${loadavg()
        .map((value) => value.toFixed(2))
        .join(' ')}`,
    );
    await writeFile(
      path.join(ROOT, 'bench', 'results', `oci-${STORE}.json`),
      JSON.stringify(
        {
          store: STORE,
          bound: { sha, disk },
          samples: Object.fromEntries([...samples].map(([target, value]) => [target.name, value])),
          peakRss: Object.fromEntries([...peak].map(([target, value]) => [target.name, value])),
          storeRequests: Object.fromEntries(
            [...counts].map(([target, value]) => [target.name, Object.fromEntries(value)]),
          ),
          tokens,
        },
        null,
        2,
      ),
    ).catch(() => {});
  } finally {
    for (const target of targets) target.child.kill('SIGTERM');
    agent.destroy();
    await minio?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
