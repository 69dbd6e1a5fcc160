import { isIP } from 'node:net';
import type { ObjectStore } from '../store/object-store.ts';
import { type CounterReading, FailureCounters } from './failure-counters.ts';

/**
 * Throttles password guessing without letting anyone lock a user out (threat model and figures in
 * docs/identity.md, "Rate limits"). Failed password checks are counted in the store, each counter
 * in a window that opens at its first failure and lasts `windowSeconds`, under three keys:
 *
 * - (account, source): a source that failed `perAccountAndAddress` times for an account waits for
 *   its window to end. It stops one guesser, and it is the only limit an attacker can trip for an
 *   account from their own addresses.
 * - account, from every source: past `perAccount`, a source that has already failed for the
 *   account this window is refused, while one that has not is still checked. Guessing from many
 *   addresses is slowed to one guess per address per window, and the user, from an address the
 *   attacker does not share, still signs in at once.
 * - address, across accounts: `perAddress` failures, then that address waits (credential stuffing).
 *   Only a real end-user address has this counter, never a RestAuth service that does not relay one.
 *
 * A source is the end user's address (IPv6 by /64, which one subscriber usually has whole), or,
 * when a RestAuth service calls without an address it is trusted to relay, that service.
 * Successful checks only read the counters: they never cost a store write.
 */
export interface RateLimits {
  perAccountAndAddress: number;
  perAccount: number;
  perAddress: number;
  windowSeconds: number;
}

/** Where a password check comes from, as far as this server can tell. */
export interface LoginOrigin {
  /**
   * The end user's address: the peer, the address a trusted proxy saw, or the one a RestAuth service
   * trusted to relay addresses sent (`forwardsClientAddress`).
   */
  address?: string | undefined;
  /** The RestAuth service that asked on the user's behalf, if any. */
  service?: string | undefined;
}

/** Which limit refused a check (audit lines say it). */
export type LimitName = 'account-and-address' | 'account' | 'address';

export type Admission =
  | { allowed: false; retryAfterSeconds: number; limit: LimitName }
  | {
      allowed: true;
      /** Records the check as failed, in every counter; resolves once the store has it. */
      failed(): Promise<void>;
      /** The check is over (right or wrong): releases its in-flight reservation. */
      end(): void;
    };

/** The address as a rate-limit key: IPv4 as it is (also when IPv4-mapped), IPv6 as its /64. */
export function addressBucket(address: string): string {
  if (isIP(address) !== 6) return address;
  const groups = ipv6Groups(address);
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff)
    return [groups[6]! >> 8, groups[6]! & 255, groups[7]! >> 8, groups[7]! & 255].join('.');
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, an IPv4 tail converted). */
function ipv6Groups(address: string): number[] {
  let text = address.split('%')[0]!.toLowerCase();
  const ipv4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (ipv4) {
    const [a, b, c, d] = ipv4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, ipv4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [left = '', right] = text.split('::');
  const head = left ? left.split(':') : [];
  const tail = right ? right.split(':') : [];
  const groups =
    right === undefined ? head : [...head, ...Array(8 - head.length - tail.length).fill('0'), ...tail];
  return groups.map((group) => Number.parseInt(group, 16));
}

export class LoginThrottle {
  private readonly limits: RateLimits;
  private readonly counters: FailureCounters;
  /**
   * Checks running in this process, per counter, counted as if they will fail: without it a burst
   * of parallel guesses would all read the counters before the first failure is written.
   */
  private readonly inFlight = new Map<string, number>();
  /**
   * Refusals this process has decided, until they end: counters only grow until their window ends,
   * so a refusal holds until then, and a client hammering a refused check costs no store reads.
   * Keyed by the pair (account and address limits) or the address; other replicas read the store.
   */
  private readonly refused = new Map<string, { until: number; limit: LimitName }>();
  private readonly now: () => number;

  constructor(store: ObjectStore, limits: RateLimits, now: () => number = Date.now) {
    this.limits = limits;
    this.now = now;
    this.counters = new FailureCounters(store, limits.windowSeconds, now);
  }

  /** Decides whether a password check for `account` from `origin` may run now. */
  async admit(account: string, origin: LoginOrigin): Promise<Admission> {
    const address = origin.address ? addressBucket(origin.address) : undefined;
    const source = address ? `address ${address}` : origin.service ? `service ${origin.service}` : 'unknown';
    const names = [`pair\0${account}\0${source}`, `account\0${account}`];
    if (address) names.push(`address\0${address}`);
    const remembered = this.remembered(names[0]!) ?? (address ? this.remembered(names[2]!) : undefined);
    if (remembered) return remembered;
    const readings = await this.counters.read(names);
    const [pair, total, fromAddress] = readings.map((reading, i) => ({
      ...reading,
      withInFlight: reading.failures + (this.inFlight.get(names[i]!) ?? 0),
    })) as [Count, Count, Count | undefined];
    const { perAccountAndAddress, perAccount, perAddress } = this.limits;
    const refusal = (
      which: 'failures' | 'withInFlight',
    ): { limit: LimitName; resetAt: number } | undefined => {
      if (pair[which] >= perAccountAndAddress) return { limit: 'account-and-address', resetAt: pair.resetAt };
      if (fromAddress && fromAddress[which] >= perAddress)
        return { limit: 'address', resetAt: fromAddress.resetAt };
      // Lifted when either window ends: the account's, or this source's failures for it.
      if (total[which] >= perAccount && pair[which] > 0)
        return { limit: 'account', resetAt: Math.min(total.resetAt, pair.resetAt) };
      return undefined;
    };
    const refused = refusal('failures');
    if (refused) {
      this.remember(refused.limit === 'address' ? names[2]! : names[0]!, refused);
      const retryAfterSeconds = this.counters.secondsUntil(refused.resetAt);
      return { allowed: false, retryAfterSeconds, limit: refused.limit };
    }
    // Refused only because of checks still running here: one of them may succeed, so ask again soon.
    const busy = refusal('withInFlight');
    if (busy) return { allowed: false, retryAfterSeconds: 1, limit: busy.limit };
    return this.reserve(names, readings);
  }

  private remembered(name: string): Admission | undefined {
    const entry = this.refused.get(name);
    if (!entry) return undefined;
    if (entry.until <= this.now()) {
      this.refused.delete(name);
      return undefined;
    }
    return { allowed: false, retryAfterSeconds: this.counters.secondsUntil(entry.until), limit: entry.limit };
  }

  private remember(name: string, { limit, resetAt }: { limit: LimitName; resetAt: number }): void {
    if (this.refused.size >= 10_000) {
      const now = this.now();
      for (const [key, entry] of this.refused) if (entry.until <= now) this.refused.delete(key);
      if (this.refused.size >= 10_000) this.refused.clear(); // only a cache: the store decides again
    }
    this.refused.set(name, { until: resetAt, limit });
  }

  /** Deletes expired counters from the store (run periodically; see FailureCounters.sweep). */
  sweep(): Promise<number> {
    return this.counters.sweep();
  }

  private reserve(names: string[], readings: CounterReading[]): Admission {
    for (const name of names) this.inFlight.set(name, (this.inFlight.get(name) ?? 0) + 1);
    let ended = false;
    return {
      allowed: true,
      failed: () => this.counters.addFailure(readings),
      end: () => {
        if (ended) return;
        ended = true;
        for (const name of names) {
          const left = (this.inFlight.get(name) ?? 1) - 1;
          if (left > 0) this.inFlight.set(name, left);
          else this.inFlight.delete(name);
        }
      },
    };
  }
}

interface Count extends CounterReading {
  withInFlight: number;
}

/** Thrown by credential checks that the throttle refused; HTTP layers answer 429. */
export class TooManyAttemptsError extends Error {
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number) {
    super(`too many failed attempts, retry in ${retryAfterSeconds} s`);
    this.name = 'TooManyAttemptsError';
    this.retryAfterSeconds = retryAfterSeconds;
  }
}
