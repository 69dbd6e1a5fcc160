import type { Logger } from 'pino';
import { updateJson } from '../../store/json-doc.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import { canonicalName } from './names.ts';
import { ParsedDocs, parseJson } from './parsed-docs.ts';
import { storeKeys } from './paths.ts';

/**
 * One crate's download counts: all-time per version, and per version per day for the last
 * {@link KEEP_DAYS} days (what crates.io's downloads endpoints show).
 */
export interface CrateDownloads {
  versions: Record<string, number>;
  /** `YYYY-MM-DD` (UTC) → version → downloads that day. */
  days: Record<string, Record<string, number>>;
}

export const KEEP_DAYS = 90;

const EMPTY: CrateDownloads = { versions: {}, days: {} };

/** Counts not yet written: crate (canonical) → `day\nversion` → count. */
type Pending = Map<string, Map<string, number>>;

/**
 * Downloads counted off the request path: `record` adds to an in-memory counter, and a background
 * flush merges the counters into each crate's document with conditional writes (updateJson), so
 * replicas sharing a store add their counts instead of overwriting each other's. A failed write
 * keeps its counts for the next flush; `stop` flushes what is left (shutdown).
 */
export class DownloadCounter {
  private readonly store: ObjectStore;
  private readonly logger: Logger;
  private readonly flushIntervalMs: number;
  private pending: Pending = new Map();
  /** Counts being written right now: still shown by `read` until the write has landed. */
  private readonly inFlight: Pending = new Map();
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly docs: ParsedDocs;

  constructor(store: ObjectStore, logger: Logger, { flushIntervalMs = 10_000 } = {}) {
    this.store = store;
    this.logger = logger;
    this.flushIntervalMs = flushIntervalMs;
    this.docs = new ParsedDocs(store, { maxBytes: 16 * 1024 * 1024 });
  }

  /** One download of `name@version` now: a map update, never a store write. */
  record(name: string, version: string, at = Date.now()): void {
    const crate = canonicalName(name);
    let counts = this.pending.get(crate);
    if (!counts) {
      counts = new Map();
      this.pending.set(crate, counts);
      // Many distinct crates between two flushes are written early rather than held in memory.
      if (this.pending.size >= 10_000) void this.flush();
    }
    const id = `${day(at)}\n${version}`;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }

  /** The stored counts of a crate plus this replica's unwritten ones. */
  async read(name: string): Promise<CrateDownloads> {
    const crate = canonicalName(name);
    const stored = (await this.docs.read<CrateDownloads>(storeKeys.downloads(crate), parseJson)) ?? EMPTY;
    let result = stored;
    for (const local of [this.inFlight.get(crate), this.pending.get(crate)])
      if (local) result = merge(result, local, null);
    return result;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.flushIntervalMs);
    this.timer.unref();
  }

  /** Writes every pending count (one conditional write per crate that was downloaded). */
  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flushing;
    await this.flush();
  }

  private async write(): Promise<void> {
    const batch = [...this.pending.entries()];
    this.pending = new Map();
    const oldest = day(Date.now() - KEEP_DAYS * 86_400_000);
    let failed = 0;
    let lastError: unknown;
    const next = async () => {
      for (let entry = batch.pop(); entry; entry = batch.pop()) {
        const [crate, counts] = entry;
        this.inFlight.set(crate, counts);
        try {
          await updateJson<CrateDownloads>(this.store, storeKeys.downloads(crate), (current) =>
            merge(current ?? EMPTY, counts, oldest),
          );
          this.inFlight.delete(crate);
        } catch (error) {
          this.inFlight.delete(crate);
          // Kept for the next flush: counts must not vanish because the store hiccuped.
          const again = this.pending.get(crate) ?? new Map<string, number>();
          for (const [id, n] of counts) again.set(id, (again.get(id) ?? 0) + n);
          this.pending.set(crate, again);
          failed++;
          lastError = error;
        }
      }
    };
    await Promise.all(Array.from({ length: 4 }, next));
    if (failed > 0)
      this.logger.warn({ err: lastError, crates: failed }, 'could not write download counts; retrying later');
  }
}

/** `current` plus the counts; days before `oldest` (when given) are dropped. Pure: updateJson reruns it. */
function merge(current: CrateDownloads, counts: Map<string, number>, oldest: string | null): CrateDownloads {
  const versions = { ...current.versions };
  const days: CrateDownloads['days'] = {};
  for (const [date, perVersion] of Object.entries(current.days))
    if (oldest === null || date >= oldest) days[date] = { ...perVersion };
  for (const [id, n] of counts) {
    const [date = '', version = ''] = id.split('\n');
    versions[version] = (versions[version] ?? 0) + n;
    const perVersion = days[date] ?? {};
    perVersion[version] = (perVersion[version] ?? 0) + n;
    days[date] = perVersion;
  }
  return { versions, days };
}

/** The UTC date of a time, as crates.io writes it. */
export function day(at: number): string {
  return new Date(at).toISOString().slice(0, 10);
}
