/**
 * What recording pulls by digest (for GC's retention) costs on the manifest GET path: this working
 * tree against a base revision (default `main`, extracted with `git archive`), both as the real
 * program on the fs store, in one run, taking turns. Prints req/s by digest and by tag, the ratios,
 * and how many pull records this tree wrote to the store for all those GETs.
 *
 *   npx node bench/pulls.ts          # BASE_REF=main BENCH_SECONDS=5 BENCH_RUNS=3
 */
import { type ChildProcess, execSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FsObjectStore } from '../server/store/fs-store.ts';
import { readJson } from '../server/store/json-doc.ts';
import { freePort } from './support.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const BASE_REF = process.env.BASE_REF ?? 'main';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const CONNECTIONS = 32;
const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
const IMAGE = 'application/vnd.oci.image.manifest.v1+json';

interface Target {
  name: string;
  url: string;
  dataDir: string;
  child: ChildProcess;
  headers: Record<string, string>;
  digest: string;
}

function get(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function rate(url: string, headers: Record<string, string>): Promise<number> {
  const deadline = performance.now() + SECONDS * 1000;
  let count = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < deadline) {
        const status = await get(url, headers);
        if (status !== 200) throw new Error(`${url}: ${status}`);
        count++;
      }
    }),
  );
  return count / SECONDS;
}

async function start(name: string, cwd: string, work: string): Promise<Target> {
  const port = await freePort();
  const dataDir = path.join(work, `data-${name}`);
  const child = spawn(process.execPath, ['server/main.ts'], {
    cwd,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOST: '127.0.0.1',
      PORT: String(port),
      WHARF_DATA_DIR: dataDir,
      WHARF_SIGNUP: 'open',
      WHARF_LOG_LEVEL: 'warn',
      WHARF_OCI_GC_ENABLED: 'false',
    },
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {}
    if (i > 300) throw new Error(`${name} did not start`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const json = { 'content-type': 'application/json' };
  await fetch(`${url}/ktra/api/v1/new_user/bench`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ password: 'bench-password' }),
  });
  const token = await fetch(`${url}/v2/auth?service=wharf&scope=repository:bench/app:pull,push`, {
    headers: { authorization: `Basic ${Buffer.from('bench:bench-password').toString('base64')}` },
  });
  const auth = { authorization: `Bearer ${((await token.json()) as { token: string }).token}` };
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  await fetch(`${url}/v2/bench/app/blobs/uploads/?digest=${configDigest}`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/octet-stream' },
    body: config,
  });
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: IMAGE,
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: configDigest,
      size: config.length,
    },
    layers: [],
  });
  const put = await fetch(`${url}/v2/bench/app/manifests/v1`, {
    method: 'PUT',
    headers: { ...auth, 'content-type': IMAGE },
    body: manifest,
  });
  if (put.status !== 201) throw new Error(`${name}: manifest push ${put.status}`);
  return {
    name,
    url,
    dataDir,
    child,
    headers: { ...auth, accept: IMAGE },
    digest: String(put.headers.get('docker-content-digest')),
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(tmpdir(), 'wharf-bench-pulls-'));
  const baseDir = path.join(work, 'base');
  await mkdir(baseDir);
  execSync(`git archive ${BASE_REF} | tar -x -C ${baseDir}`, { cwd: ROOT, shell: '/bin/bash' });
  await symlink(path.join(ROOT, 'node_modules'), path.join(baseDir, 'node_modules'));
  const targets: Target[] = [];
  try {
    targets.push(await start('this tree', ROOT, work), await start(BASE_REF, baseDir, work));
    const [self, base] = targets as [Target, Target];
    const samples = new Map<string, number[]>();
    const sample = (key: string, value: number) => samples.set(key, [...(samples.get(key) ?? []), value]);
    let gets = 0;
    for (let run = 0; run < RUNS; run++) {
      // Taking turns, so that load from elsewhere on the machine falls on both.
      for (const target of run % 2 === 0 ? [self, base] : [base, self]) {
        const byDigest = await rate(`${target.url}/v2/bench/app/manifests/${target.digest}`, target.headers);
        const byTag = await rate(`${target.url}/v2/bench/app/manifests/v1`, target.headers);
        sample(`${target.name} digest`, byDigest);
        sample(`${target.name} tag`, byTag);
        if (target === self) gets += byDigest * SECONDS;
        console.log(`${target.name}: by digest ${byDigest.toFixed(0)}/s, by tag ${byTag.toFixed(0)}/s`);
      }
    }
    // Stopping flushes what is pending: then count what this tree wrote for all those GETs.
    self.child.kill('SIGTERM');
    await new Promise((resolve) => self.child.once('exit', resolve));
    const store = await FsObjectStore.open(self.dataDir);
    const activity = await store.list({ prefix: 'oci/repos/bench%2Fapp/activity/' });
    const record = activity.objects[0] ? await readJson(store, activity.objects[0].key) : null;

    const row = (label: string, mine: number, theirs: number) =>
      console.log(
        `| ${label} | ${mine.toFixed(0)} | ${theirs.toFixed(0)} | ${(mine / theirs).toFixed(2)}x |`,
      );
    console.log(
      `\n| manifest GET, ${CONNECTIONS} connections, median of ${RUNS} | this tree | ${BASE_REF} | ratio |`,
    );
    console.log('| --- | --- | --- | --- |');
    row(
      'by digest (pull recorded) req/s',
      median(samples.get(`${self.name} digest`)!),
      median(samples.get(`${base.name} digest`)!),
    );
    row(
      'by tag (not recorded) req/s',
      median(samples.get(`${self.name} tag`)!),
      median(samples.get(`${base.name} tag`)!),
    );
    console.log(
      `\npull records in the store after ${gets.toFixed(0)} GETs by digest: ${activity.objects.length} object(s), ${JSON.stringify(record?.value ?? null)}`,
    );
  } finally {
    for (const target of targets) if (target.child.exitCode === null) target.child.kill('SIGTERM');
    agent.destroy();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
