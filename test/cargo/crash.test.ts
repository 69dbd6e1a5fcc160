import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../server/observability/metrics.ts';
import { startCargoMaintenance } from '../../server/registry/cargo/leftovers.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import { startWharfProcess, type WharfProcess } from '../support/spawn-wharf.ts';
import { metadata, publishBody, simpleCrate } from './crate-file.ts';

const HOUR = 3_600_000;
const PRELOAD = new URL('./die-on-index-write.ts', import.meta.url).pathname;

/** The real program on `dataDir`; with `dieOnIndexWrite`, it is killed in its first index update. */
function launch(dataDir: string, dieOnIndexWrite = false): Promise<WharfProcess> {
  return startWharfProcess({
    WHARF_DATA_DIR: dataDir,
    WHARF_SIGNUP: 'open',
    WHARF_LOG_LEVEL: 'info',
    WHARF_OCI_GC_ENABLED: 'false',
    WHARF_CARGO_GC_ENABLED: 'false',
    ...(dieOnIndexWrite ? { NODE_OPTIONS: `--import=${PRELOAD}` } : {}),
  });
}

function publish(
  url: string,
  token: string,
  crate: Buffer,
  name: string,
  version: string,
): Promise<Response> {
  return fetch(`${url}/api/v1/crates/new`, {
    method: 'PUT',
    headers: { authorization: token, 'content-type': 'application/octet-stream' },
    body: publishBody(metadata(name, version), crate),
  });
}

describe('cargo publish killed between its .crate and its index line (fs store)', () => {
  let dataDir: string;
  const running: WharfProcess[] = [];

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-cargo-crash-'));
  });
  afterAll(async () => {
    await Promise.all(running.map((process) => process.stop()));
    await rm(dataDir, { recursive: true, force: true });
  });

  it('frees the crate at once for the next publish, and GC collects the orphan .crate after the grace period', async () => {
    // 1. A publish dies holding the index lock, after its .crate was written.
    const doomed = await launch(dataDir, true);
    const signup = await fetch(`${doomed.url}/ktra/api/v1/new_user/alice`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'alice-password' }),
    });
    expect(signup.status).toBe(200);
    const token = ((await signup.json()) as { token: string }).token;
    const first = await simpleCrate('crashy', '1.0.0');
    const exited = new Promise((resolve) => doomed.child.once('exit', (_code, signal) => resolve(signal)));
    await expect(publish(doomed.url, token, first, 'crashy', '1.0.0')).rejects.toThrow();
    expect(await exited).toBe('SIGKILL');

    const store = await FsObjectStore.open(dataDir);
    const orphan = `cargo/crates/crashy/1.0.0/${createHash('sha256').update(first).digest('hex')}.crate`;
    expect((await store.list({ prefix: 'cargo/crates/' })).objects.map((o) => o.key)).toEqual([orphan]);
    expect(await store.head('cargo/index/cr/as/crashy')).toBeNull();
    // Its lock is still there, naming the dead process.
    const locks = await readdir(path.join(dataDir, 'locks'));
    const holders = await Promise.all(
      locks.map(async (lock) => JSON.parse(await readFile(path.join(dataDir, 'locks', lock), 'utf8'))),
    );
    expect(holders.map((holder) => holder.pid)).toContain(doomed.child.pid);

    // 2. After a restart, the next publish of that crate goes through at once (was: 30 s).
    const server = await launch(dataDir);
    running.push(server);
    const started = performance.now();
    const next = await publish(server.url, token, await simpleCrate('crashy', '1.0.1'), 'crashy', '1.0.1');
    const seconds = (performance.now() - started) / 1000;
    expect(next.status).toBe(200);
    expect(seconds).toBeLessThan(5);
    const index = await fetch(`${server.url}/index/cr/as/crashy`);
    expect(
      (await index.text())
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).vers),
    ).toEqual(['1.0.1']);

    // 3. GC (as another replica would run it, at a moved clock): nothing within the grace period...
    const lines: string[] = [];
    const logger = pino(
      new Writable({
        write(chunk, _encoding, done) {
          lines.push(chunk.toString());
          done();
        },
      }),
    );
    const metrics = new Metrics();
    const gc = startCargoMaintenance({
      store,
      settings: { enabled: false, intervalMinutes: 60, graceHours: 24 },
      metrics,
      logger,
    });
    expect((await gc.runOnce(Date.now())).deletions.crates).toEqual([]);
    // ...then the orphan only; the published version stays downloadable.
    const later = await gc.runOnce(Date.now() + 25 * HOUR);
    expect(later.deletions.crates).toEqual([orphan]);
    expect(later.bytesFreed).toBe(first.length);
    expect((await store.list({ prefix: 'cargo/crates/' })).objects.map((o) => o.key)).toEqual([
      expect.stringMatching(/^cargo\/crates\/crashy\/1\.0\.1\//),
    ]);
    const download = await fetch(`${server.url}/api/v1/crates/crashy/1.0.1/download`);
    expect(download.status).toBe(200);
    expect(await metrics.registry.getSingleMetricAsString('wharf_gc_deleted_objects_total')).toContain(
      'wharf_gc_deleted_objects_total{registry="cargo",kind="crate"} 1',
    );
    expect(lines.filter((line) => line.includes('cargo garbage collection done'))).toHaveLength(2);

    // 4. The version the crash never published is still free: the same bytes publish now.
    expect((await publish(server.url, token, first, 'crashy', '1.0.0')).status).toBe(200);
    const again = await fetch(`${server.url}/api/v1/crates/crashy/1.0.0/download`);
    expect(Buffer.from(await again.arrayBuffer()).equals(first)).toBe(true);
  }, 120_000);
});
