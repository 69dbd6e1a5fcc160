import type { Logger } from 'pino';
import { createJson, readJson, updateJson } from '../../../store/json-doc.ts';
import type { ObjectStore } from '../../../store/object-store.ts';
import { type Digest, keys } from '../names.ts';

/**
 * What GC's retention needs to know about a manifest besides when it was pushed (its object's
 * mtime): when a tag last moved away from it, and when it was last pulled by digest. One small
 * document per manifest that has either, so concurrent writers of different manifests never meet.
 */
export interface ManifestActivity {
  /** The last time a tag that pointed at this manifest moved elsewhere or was deleted. */
  untaggedAt?: string;
  /** The last recorded pull by digest (recorded at most once per {@link PULL_RESOLUTION_MS}). */
  pulledAt?: string;
}

/** Pulls of one manifest closer together than this are recorded once: GC adds it to its window. */
export const PULL_RESOLUTION_MS = 3_600_000;

export class ActivityLog {
  private readonly store: ObjectStore;
  constructor(store: ObjectStore) {
    this.store = store;
  }

  async read(repository: string, digest: Digest): Promise<ManifestActivity | null> {
    return (await readJson<ManifestActivity>(this.store, keys.activity(repository, digest)))?.value ?? null;
  }

  /** A tag stopped pointing at `digest` at `at` (written before the tag changes). */
  async markUntagged(repository: string, digest: Digest, at = new Date()): Promise<void> {
    await updateJson<ManifestActivity>(this.store, keys.activity(repository, digest), (current) =>
      current?.untaggedAt && Date.parse(current.untaggedAt) >= at.getTime()
        ? undefined
        : { ...current, untaggedAt: at.toISOString() },
    );
  }

  /**
   * Records a pull at `at` unless one within {@link PULL_RESOLUTION_MS} is already recorded (by any
   * replica). Returns the pull time now on record.
   */
  async recordPull(repository: string, digest: Digest, at: number): Promise<number> {
    const written = await updateJson<ManifestActivity>(
      this.store,
      keys.activity(repository, digest),
      (current) =>
        current?.pulledAt && at - Date.parse(current.pulledAt) < PULL_RESOLUTION_MS
          ? undefined
          : { ...current, pulledAt: new Date(at).toISOString() },
    );
    return written?.pulledAt ? Date.parse(written.pulledAt) : at;
  }

  async forget(repository: string, digest: Digest): Promise<void> {
    await this.store.delete(keys.activity(repository, digest));
  }

  /** Since when pulls are recorded in this store: the first start of a version that records them. */
  async pullsRecordedSince(now = Date.now()): Promise<number> {
    const existing = await readJson<{ since: string }>(this.store, keys.pullsRecordedSince);
    if (existing) return Date.parse(existing.value.since);
    await createJson(this.store, keys.pullsRecordedSince, { since: new Date(now).toISOString() });
    const created = await readJson<{ since: string }>(this.store, keys.pullsRecordedSince);
    return created ? Date.parse(created.value.since) : now;
  }
}

/**
 * Pulls by digest, recorded off the request path: `record` is a map lookup, and a background flush
 * writes at most one document per manifest per {@link PULL_RESOLUTION_MS} (per replica: a replica
 * that finds a recent enough pull already on record from another one writes nothing).
 */
export class PullRecorder {
  private readonly log: ActivityLog;
  private readonly logger: Logger;
  private readonly flushIntervalMs: number;
  /** Pulls not yet written, by `repository@digest`. */
  private pending = new Map<string, { repository: string; digest: Digest; at: number }>();
  /** The pull time on record per manifest, as far as this replica knows. */
  private readonly recorded = new Map<string, number>();
  private flushing: Promise<void> | null = null;
  private marking: Promise<void> | undefined;
  private timer: NodeJS.Timeout | null = null;

  constructor(log: ActivityLog, logger: Logger, { flushIntervalMs = 60_000 } = {}) {
    this.log = log;
    this.logger = logger;
    this.flushIntervalMs = flushIntervalMs;
  }

  /** A pull by digest now. Never waits, never throws. */
  record(repository: string, digest: Digest, at = Date.now()): void {
    const id = `${repository}@${digest.text}`;
    const known = this.recorded.get(id);
    if (known !== undefined && at - known < PULL_RESOLUTION_MS) return;
    const pending = this.pending.get(id);
    if (pending) {
      pending.at = Math.max(pending.at, at);
      return;
    }
    this.pending.set(id, { repository, digest, at });
    // A burst of distinct manifests is written early rather than held in memory.
    if (this.pending.size >= 10_000) void this.flush();
  }

  /**
   * Starts the flush timer and marks when this store started recording pulls (once; GC does it too
   * if this fails). The returned promise is that mark: the server awaits it before it listens, so no
   * startup write lands after it is up (stop() awaits it too, so none lands after it has closed).
   */
  start(): Promise<void> {
    this.timer ??= setInterval(() => void this.flush(), this.flushIntervalMs);
    this.timer.unref();
    this.marking = this.log.pullsRecordedSince().then(
      () => undefined,
      (error: unknown) => this.logger.warn({ err: error }, 'could not mark the start of pull records'),
    );
    return this.marking;
  }

  /** Writes what is pending (GC calls it first, so its own replica's pulls count at once). */
  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.marking;
    await this.flushing;
    await this.flush();
  }

  private async write(): Promise<void> {
    const batch = [...this.pending.entries()];
    this.pending = new Map();
    if (this.recorded.size > 100_000) this.recorded.clear();
    let failed = 0;
    let lastError: unknown;
    const next = async () => {
      for (let entry = batch.pop(); entry; entry = batch.pop()) {
        const [id, pull] = entry;
        try {
          this.recorded.set(id, await this.log.recordPull(pull.repository, pull.digest, pull.at));
        } catch (error) {
          // Kept for the next flush: a pull must not be forgotten because the store hiccuped.
          const again = this.pending.get(id);
          this.pending.set(id, again ? { ...again, at: Math.max(again.at, pull.at) } : pull);
          failed++;
          lastError = error;
        }
      }
    };
    await Promise.all(Array.from({ length: 4 }, next));
    if (failed > 0) this.logger.warn({ err: lastError, failed }, 'could not record pulls; retrying later');
  }
}
