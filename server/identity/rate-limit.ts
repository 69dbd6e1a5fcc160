/**
 * Throttles password guessing: failed password checks are counted per username and per client
 * address in fixed windows; once a key reaches its limit, further checks are refused (HTTP 429 with
 * Retry-After) until the window ends, even with the right password. Successful checks cost nothing,
 * so a busy service verifying many good passwords is never slowed down.
 *
 * Counters live in this process: with N replicas an attacker gets up to N times the limit.
 */
export class FailureCounter {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  private readonly limit: number;
  private readonly windowMs: number;

  constructor(limit: number, windowSeconds: number) {
    this.limit = limit;
    this.windowMs = windowSeconds * 1000;
  }

  /** Seconds until `key` may try again, or 0 when it may try now. */
  retryAfter(key: string, now = Date.now()): number {
    const window = this.windows.get(key);
    if (!window || window.resetAt <= now) return 0;
    return window.count >= this.limit ? Math.ceil((window.resetAt - now) / 1000) : 0;
  }

  recordFailure(key: string, now = Date.now()): void {
    const window = this.windows.get(key);
    if (!window || window.resetAt <= now) {
      this.windows.set(key, { count: 1, resetAt: now + this.windowMs });
      if (this.windows.size > 10_000) this.sweep(now);
    } else {
      window.count++;
    }
  }

  /** Forgets windows that are over, so memory stays bounded by the keys seen in one window. */
  private sweep(now: number): void {
    for (const [key, window] of this.windows) if (window.resetAt <= now) this.windows.delete(key);
  }
}

export class LoginThrottle {
  private readonly perUser: FailureCounter;
  private readonly perAddress: FailureCounter;

  constructor(limits: { perUser: number; perAddress: number; windowSeconds: number }) {
    this.perUser = new FailureCounter(limits.perUser, limits.windowSeconds);
    this.perAddress = new FailureCounter(limits.perAddress, limits.windowSeconds);
  }

  /** Seconds to wait before checking this user's password from this address again; 0 means go. */
  retryAfter(user: string, address: string): number {
    return Math.max(this.perUser.retryAfter(user), this.perAddress.retryAfter(address));
  }

  recordFailure(user: string, address: string): void {
    this.perUser.recordFailure(user);
    this.perAddress.recordFailure(address);
  }
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
