import { readJson, updateJson } from '../store/json-doc.ts';
import { type ObjectStore, PreconditionFailedError } from '../store/object-store.ts';
import { THROTTLE_PREFIX, throttleKey } from './keys.ts';
import { sha256Hex } from './secrets.ts';

/** A counter's object: failures since its window opened, until `resetAt` (epoch ms). */
interface CounterDoc {
  resetAt: number;
  failures: number;
}

/** A counter as read before a password check, with the version needed to add to it without a re-read. */
export interface CounterReading {
  readonly key: string;
  /** Failures in the counter's open window (0 when it has none). */
  readonly failures: number;
  /** When the open window ends (epoch ms); meaningless when `failures` is 0. */
  readonly resetAt: number;
  /** The object as read (null: none), so that a failure writes with one conditional PUT. */
  readonly stored: { doc: CounterDoc; etag: string } | null;
}

/**
 * Failure counters kept in the store, so that every replica on the bucket sees every failure: a
 * limit does not reset by retrying on another replica. A counter's window opens at its first
 * failure and lasts `windowSeconds` (no clock-aligned boundary where every limit resets at once).
 * Reading costs one GET per counter; only a failure writes (one conditional PUT per counter,
 * re-read and retried when another replica wrote first), so successes never write.
 *
 * Counter names are hashed into the key: the bucket holds no username or address in clear.
 */
export class FailureCounters {
  private readonly store: ObjectStore;
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(store: ObjectStore, windowSeconds: number, now: () => number = Date.now) {
    this.store = store;
    this.windowMs = windowSeconds * 1000;
    this.now = now;
  }

  /** Whole seconds until `resetAt` (at least 1): the honest Retry-After. */
  secondsUntil(resetAt: number): number {
    return Math.max(1, Math.ceil((resetAt - this.now()) / 1000));
  }

  /** The open failures of each named counter, read in parallel. */
  async read(names: readonly string[]): Promise<CounterReading[]> {
    const now = this.now();
    return Promise.all(
      names.map(async (name) => {
        const key = throttleKey(sha256Hex(name));
        const found = await readJson<CounterDoc>(this.store, key);
        const stored = found ? { doc: found.value, etag: found.etag } : null;
        const open = stored !== null && stored.doc.resetAt > now;
        return {
          key,
          failures: open ? stored.doc.failures : 0,
          resetAt: open ? stored.doc.resetAt : 0,
          stored,
        };
      }),
    );
  }

  /** Adds one failure to each counter; resolves once every write is in the store. */
  async addFailure(readings: readonly CounterReading[]): Promise<void> {
    const now = this.now();
    const next = (doc: CounterDoc | null): CounterDoc =>
      doc && doc.resetAt > now
        ? { resetAt: doc.resetAt, failures: doc.failures + 1 }
        : { resetAt: now + this.windowMs, failures: 1 };
    await Promise.all(
      readings.map(async ({ key, stored }) => {
        try {
          // The version read before the check is usually still current: one PUT, no second GET.
          await this.store.put(key, JSON.stringify(next(stored?.doc ?? null)), {
            contentType: 'application/json',
            durable: false,
            ...(stored ? { ifMatch: stored.etag } : { ifNoneMatch: '*' }),
          });
        } catch (error) {
          if (!(error instanceof PreconditionFailedError)) throw error;
          await updateJson<CounterDoc>(this.store, key, next);
        }
      }),
    );
  }

  /**
   * Deletes counters whose window is over, judged by the listing alone (no reads): a window opens
   * at a write and lasts one window, so an object last written more than a window ago has expired;
   * waiting two absorbs the store's coarse and possibly skewed clock. Safe to run on every replica
   * at once. The store has no conditional delete, so a counter that takes a failure between the
   * listing and the delete loses that one failure.
   */
  async sweep(): Promise<number> {
    const before = this.now() - 2 * this.windowMs;
    let deleted = 0;
    let continuationToken: string | undefined;
    do {
      const page = await this.store.list({
        prefix: THROTTLE_PREFIX,
        ...(continuationToken ? { continuationToken } : {}),
      });
      for (const object of page.objects) {
        if (object.lastModified.getTime() >= before) continue;
        await this.store.delete(object.key);
        deleted++;
      }
      continuationToken = page.nextContinuationToken;
    } while (continuationToken);
    return deleted;
  }
}
