import { readJson } from './json-doc.ts';
import { type ObjectStore, PreconditionFailedError } from './object-store.ts';

/**
 * A lease in the store: at most one holder at a time among every process sharing the store, for
 * work that must not run twice at once (garbage collection of a bucket). Built on conditional
 * writes only, so it works on fs and S3 alike:
 * - taking a free or expired lease is a write conditional on what was read (`If-None-Match: *` when
 *   there is none, `If-Match` on the expired record's ETag otherwise), so of two takers one wins;
 * - the holder renews with `If-Match` on its own last write: if anyone took the lease meanwhile the
 *   renewal fails and the holder learns it has lost it;
 * - a holder that dies simply stops renewing, and the lease is free once `durationMs` has passed.
 *
 * Expiry compares the holder's clock (which wrote `expiresAt`) with the taker's: clocks must agree
 * to well within `durationMs` (NTP gives milliseconds; durations here are minutes). The holder stops
 * trusting its lease a quarter of a duration before it expires (see {@link HeldLease.check}).
 */
export interface LeaseOptions {
  /** Who takes it: written into the record, shown to whoever finds the lease taken. */
  holder: string;
  /** How long the lease lasts without renewal. */
  durationMs: number;
  /** Milliseconds since the epoch; tests move it instead of sleeping. Default `Date.now`. */
  clock?: () => number;
}

export interface LeaseRecord {
  holder: string;
  acquiredAt: string;
  renewedAt: string;
  /** After this instant anyone may take the lease. A released lease expires at once. */
  expiresAt: string;
}

/** The lease passed to someone else, or may have: the work it guarded must stop. */
export class LeaseLostError extends Error {
  constructor(key: string, reason: string) {
    super(`lease ${key} lost: ${reason}`);
    this.name = 'LeaseLostError';
  }
}

export interface HeldLease {
  readonly key: string;
  readonly holder: string;
  /** When the lease expires unless renewed (as of the last renewal). */
  readonly expiresAt: Date;
  /**
   * Throws {@link LeaseLostError} once a renewal failed or the lease is within a quarter of its
   * duration of expiring: call it before each step that must not run without the lease.
   */
  check(): void;
  /** Extends the lease by `durationMs` from now; throws {@link LeaseLostError} if it was taken. */
  renew(): Promise<void>;
  /** Ends the lease now (only if still ours), so the next taker need not wait for it to expire. */
  release(): Promise<void>;
}

export type LeaseAttempt =
  | { acquired: true; lease: HeldLease }
  | { acquired: false; holder: string; expiresAt: Date };

/** Takes the lease if nobody holds it, without waiting. */
export async function tryAcquireLease(
  store: ObjectStore,
  key: string,
  options: LeaseOptions,
): Promise<LeaseAttempt> {
  const clock = options.clock ?? Date.now;
  const current = await readJson<LeaseRecord>(store, key);
  if (current && Date.parse(current.value.expiresAt) >= clock()) {
    return { acquired: false, holder: current.value.holder, expiresAt: new Date(current.value.expiresAt) };
  }
  const now = clock();
  const record: LeaseRecord = {
    holder: options.holder,
    acquiredAt: new Date(now).toISOString(),
    renewedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + options.durationMs).toISOString(),
  };
  try {
    const { etag } = await store.put(key, JSON.stringify(record), {
      contentType: 'application/json',
      ...(current ? { ifMatch: current.etag } : { ifNoneMatch: '*' }),
    });
    return { acquired: true, lease: new Held(store, key, options, record, etag) };
  } catch (error) {
    if (!(error instanceof PreconditionFailedError)) throw error;
    // Someone else took it between our read and our write: tell who.
    const winner = await readJson<LeaseRecord>(store, key);
    return {
      acquired: false,
      holder: winner?.value.holder ?? 'unknown',
      expiresAt: new Date(winner?.value.expiresAt ?? now + options.durationMs),
    };
  }
}

/**
 * Runs `work` under the lease, renewing it every third of its duration while `work` runs and
 * releasing it afterwards; `{ran: false}` with the current holder when the lease is taken. `work`
 * gets the lease to {@link HeldLease.check} between steps: a lost lease throws there.
 */
export async function withLease<T>(
  store: ObjectStore,
  key: string,
  options: LeaseOptions,
  work: (lease: HeldLease) => Promise<T>,
): Promise<{ ran: true; value: T } | { ran: false; holder: string; expiresAt: Date }> {
  const attempt = await tryAcquireLease(store, key, options);
  if (!attempt.acquired) return { ran: false, holder: attempt.holder, expiresAt: attempt.expiresAt };
  const { lease } = attempt;
  let renewing: Promise<void> | null = null;
  const timer = setInterval(() => {
    // One renewal at a time (a second one would carry a stale ETag); a failed renewal marks the
    // lease lost, and work sees it at its next check().
    renewing ??= lease
      .renew()
      .catch(() => undefined)
      .finally(() => {
        renewing = null;
      });
  }, options.durationMs / 3);
  timer.unref();
  try {
    return { ran: true, value: await work(lease) };
  } finally {
    clearInterval(timer);
    await renewing;
    await lease.release();
  }
}

class Held implements HeldLease {
  readonly key: string;
  readonly holder: string;
  private readonly store: ObjectStore;
  private readonly durationMs: number;
  private readonly clock: () => number;
  private record: LeaseRecord;
  private etag: string;
  private lost: string | null = null;

  constructor(store: ObjectStore, key: string, options: LeaseOptions, record: LeaseRecord, etag: string) {
    this.store = store;
    this.key = key;
    this.holder = options.holder;
    this.durationMs = options.durationMs;
    this.clock = options.clock ?? Date.now;
    this.record = record;
    this.etag = etag;
  }

  get expiresAt(): Date {
    return new Date(this.record.expiresAt);
  }

  check(): void {
    if (this.lost) throw new LeaseLostError(this.key, this.lost);
    if (this.clock() >= Date.parse(this.record.expiresAt) - this.durationMs / 4) {
      throw new LeaseLostError(this.key, 'not renewed in time');
    }
  }

  async renew(): Promise<void> {
    if (this.lost) throw new LeaseLostError(this.key, this.lost);
    const now = this.clock();
    const next: LeaseRecord = {
      ...this.record,
      renewedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + this.durationMs).toISOString(),
    };
    try {
      const { etag } = await this.store.put(this.key, JSON.stringify(next), {
        contentType: 'application/json',
        ifMatch: this.etag,
      });
      this.record = next;
      this.etag = etag;
    } catch (error) {
      // Taken over (precondition), or the store did not answer: either way it can no longer be trusted
      // beyond the expiry already written, which check() enforces.
      if (error instanceof PreconditionFailedError) this.lost = 'taken over by another holder';
      throw error instanceof PreconditionFailedError ? new LeaseLostError(this.key, this.lost!) : error;
    }
  }

  async release(): Promise<void> {
    if (this.lost) return;
    this.lost = 'released';
    const released: LeaseRecord = { ...this.record, expiresAt: new Date(0).toISOString() };
    await this.store
      .put(this.key, JSON.stringify(released), { contentType: 'application/json', ifMatch: this.etag })
      .catch(() => undefined); // taken over meanwhile, or the store is down: it expires by itself
  }
}
