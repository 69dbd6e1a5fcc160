import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { buffer } from 'node:stream/consumers';
import type { Logger } from 'pino';
import type { CargoGcConfig } from '../../config/types.ts';
import type { Metrics } from '../../observability/metrics.ts';
import { type HeldLease, withLease } from '../../store/lease.ts';
import { listAllObjects, type ObjectStore } from '../../store/object-store.ts';
import { type IndexLine, readIndexFile } from './index-file.ts';
import { storeKeys } from './paths.ts';

export interface CargoGcReport {
  /** Set when another process held the lease: this run did nothing. */
  skipped?: { holder: string; until: string };
  deletedCrates: number;
  bytesFreed: number;
  /** Store keys of the `.crate` files deleted. */
  deletions: { crates: string[] };
}

export interface CargoMaintenance {
  runOnce(now?: number): Promise<CargoGcReport>;
  stop(): void;
}

const LEASE_MS = 2 * 60_000;
const LEASE_KEY = 'cargo/gc/lease.json';

/**
 * Collects what a publish leaves when it is killed between writing its `.crate` and appending its
 * index line (publish.ts removes it itself on every failure it survives): a `.crate` that no index
 * line names and that is older than `gc.graceHours`. One process per store at a time (a lease).
 */
export function startCargoMaintenance(options: {
  store: ObjectStore;
  settings: CargoGcConfig;
  metrics: Metrics;
  logger: Logger;
}): CargoMaintenance {
  const { store, settings, metrics, logger } = options;
  const holder = `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
  let running: Promise<CargoGcReport> | null = null;
  const runOnce = (now = Date.now()) => {
    running ??= (async () => {
      const started = performance.now();
      const seconds = () => (performance.now() - started) / 1000;
      try {
        const outcome = await withLease(store, LEASE_KEY, { holder, durationMs: LEASE_MS }, (lease) =>
          collectCrateLeftovers(store, { now, graceHours: settings.graceHours, lease, metrics }),
        );
        if (!outcome.ran) {
          const skipped = { holder: outcome.holder, until: outcome.expiresAt.toISOString() };
          metrics.gcRun('cargo', 'skipped', seconds());
          logger.info(
            { gc: { skipped } },
            'cargo garbage collection skipped: another process holds the lease',
          );
          return { skipped, deletedCrates: 0, bytesFreed: 0, deletions: { crates: [] } };
        }
        metrics.gcRun('cargo', 'completed', seconds());
        const { deletions, ...counts } = outcome.value;
        logger.info(
          { gc: { ...counts, seconds: seconds(), crates: deletions.crates.slice(0, 20) } },
          'cargo garbage collection done',
        );
        return outcome.value;
      } catch (error) {
        metrics.gcRun('cargo', 'failed', seconds());
        logger.error({ err: error }, 'cargo garbage collection failed');
        throw error;
      }
    })().finally(() => {
      running = null;
    });
    return running;
  };
  let timer: NodeJS.Timeout | null = null;
  if (settings.enabled) {
    timer = setInterval(() => runOnce().catch(() => undefined), settings.intervalMinutes * 60_000);
    timer.unref();
  }
  return {
    runOnce,
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}

/**
 * Deletes the `.crate` files no index line names once older than `graceHours`. Each is checked
 * again just before, and put back if a publish of the very same bytes (same key: it names the
 * checksum) reached the index meanwhile.
 */
export async function collectCrateLeftovers(
  store: ObjectStore,
  options: { now: number; graceHours: number; lease?: HeldLease; metrics?: Metrics },
): Promise<CargoGcReport> {
  const { now, lease, metrics } = options;
  const graceMs = options.graceHours * 3_600_000;
  const report: CargoGcReport = { deletedCrates: 0, bytesFreed: 0, deletions: { crates: [] } };
  const indexes = new Map<string, IndexLine[]>();
  const linesOf = async (name: string) => {
    let lines = indexes.get(name);
    if (!lines) {
      lines = (await readIndexFile(store, storeKeys.index(name))) ?? [];
      indexes.set(name, lines);
    }
    return lines;
  };
  for (const info of await listAllObjects(store, 'cargo/crates/')) {
    const crate = parseCrateKey(info.key);
    if (!crate || now - info.lastModified.getTime() <= graceMs) continue;
    if (names(await linesOf(crate.name), crate)) continue;
    lease?.check();
    // Fresh: the index may have changed since it was read for an earlier .crate of this crate.
    if (names((await readIndexFile(store, storeKeys.index(crate.name))) ?? [], crate)) continue;
    const object = await store.get(info.key);
    if (!object || object.etag !== info.etag) {
      object?.body.destroy();
      continue; // written again since the listing: a publish in progress
    }
    const bytes = await buffer(object.body);
    await store.delete(info.key);
    if (names((await readIndexFile(store, storeKeys.index(crate.name))) ?? [], crate)) {
      await store.put(info.key, bytes, { contentType: 'application/gzip', contentLength: bytes.length });
      continue;
    }
    report.deletedCrates++;
    report.bytesFreed += info.size;
    report.deletions.crates.push(info.key);
    metrics?.gcDeleted('cargo', 'crate');
    metrics?.gcFreed('cargo', info.size);
  }
  return report;
}

interface CrateFile {
  name: string;
  version: string;
  cksum: string;
}

/** `cargo/crates/<name lower-cased>/<version>/<sha256>.crate` (paths.ts). */
function parseCrateKey(key: string): CrateFile | null {
  const match = /^cargo\/crates\/([^/]+)\/([^/]+)\/([0-9a-f]{64})\.crate$/.exec(key);
  return match ? { name: match[1]!, version: match[2]!, cksum: match[3]! } : null;
}

function names(lines: IndexLine[], crate: CrateFile): boolean {
  return lines.some(
    (line) =>
      line.name.toLowerCase() === crate.name && line.vers === crate.version && line.cksum === crate.cksum,
  );
}
