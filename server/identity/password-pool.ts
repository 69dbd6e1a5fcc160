import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import bcrypt from 'bcryptjs';
import type { Metrics } from '../observability/metrics.ts';
import type { PasswordAnswer, PasswordJob } from './password-worker.ts';
import { bcryptInput } from './secrets.ts';

/**
 * Runs bcrypt (≈65 ms of CPU a check at cost 10 on this project's machine) on a few worker threads,
 * so a burst of logins never holds the event loop that serves manifests, index reads and token
 * checks. Jobs wait in a bounded FIFO queue; when it is full the job is refused at once with
 * PasswordQueueFullError (HTTP 503 with Retry-After) instead of piling up requests, sockets and
 * memory behind a queue no client would wait out. With `workers: 0` bcrypt runs on the event loop,
 * one job at a time, behind the same queue: for whoever wants no threads, and the "before" of
 * bench/auth.ts (even on one CPU a thread does better: docs/identity.md).
 */
export interface PasswordPoolOptions {
  /** Worker threads; 0 runs bcrypt on the event loop. */
  workers: number;
  /** Jobs that may wait for a thread; the next one is refused. */
  queueLimit: number;
  /**
   * A thread idle this long is stopped, and started again by the next job (about 30 ms). Each thread
   * is a V8 isolate of 11-13 MB resident; a registry checks passwords in bursts (logins, token
   * requests) between long stretches of transfers that should not carry that. Default 60 s.
   */
  idleMillis?: number;
  metrics?: Metrics;
}

/** Thrown when the password queue is full; HTTP layers answer 503 with Retry-After. */
export class PasswordQueueFullError extends Error {
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number) {
    super(`password checks are busy, retry in ${retryAfterSeconds} s`);
    this.name = 'PasswordQueueFullError';
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * The default pool size: every CPU but the one the event loop needs, at least 1 and at most 4.
 * `availableParallelism()` follows the container's CPU limit (cgroup quota) on Linux.
 */
export function defaultPasswordWorkers(cpus = availableParallelism()): number {
  return Math.min(4, Math.max(1, cpus - 1));
}

type Job = { op: 'hash'; input: string; cost: number } | { op: 'verify'; input: string; hash: string };

interface Pending {
  job: Job;
  resolve(result: string | boolean): void;
  reject(error: Error): void;
}

/** A thread (or, with no threads, the event loop) and the job it runs. */
interface Slot {
  worker: Worker | null;
  /** The thread has loaded and takes jobs (always true on the event loop). */
  ready: boolean;
  running: (Pending & { id: number; startedAt: number }) | null;
  /** Stops the thread once it has been idle for `idleMillis`. */
  idleTimer: NodeJS.Timeout | null;
}

// The worker runs as TypeScript under `node server/main.ts` (type stripping) and as JavaScript
// from dist/ (npm start): it has this module's own extension.
const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './password-worker.ts' : './password-worker.js',
  import.meta.url,
);

export class PasswordPool {
  /** Worker threads; 0 means bcrypt runs on the event loop. */
  readonly workers: number;
  private readonly queueLimit: number;
  private readonly idleMillis: number;
  private readonly metrics: Metrics | undefined;
  private readonly slots: Slot[] = [];
  private readonly waiting: Pending[] = [];
  private nextId = 1;
  private closed = false;
  /** Moving average of a job's run time, for Retry-After. */
  private meanJobMs = 0;

  /** Starts the threads and waits until each has loaded bcrypt, so a broken build fails at start-up. */
  static async start(options: PasswordPoolOptions): Promise<PasswordPool> {
    const pool = new PasswordPool(options);
    try {
      await Promise.all(pool.slots.map((slot) => pool.spawn(slot)));
    } catch (error) {
      await pool.close();
      throw error;
    }
    return pool;
  }

  private constructor({ workers, queueLimit, idleMillis = 60_000, metrics }: PasswordPoolOptions) {
    this.workers = workers;
    this.queueLimit = queueLimit;
    this.idleMillis = idleMillis;
    this.metrics = metrics;
    for (let i = 0; i < Math.max(1, workers); i++)
      this.slots.push({ worker: null, ready: workers === 0, running: null, idleTimer: null });
    metrics?.passwordWorkers.set(workers);
    this.report();
  }

  hash(password: string, cost: number): Promise<string> {
    return this.submit({ op: 'hash', input: bcryptInput(password), cost }) as Promise<string>;
  }

  verify(password: string, hash: string): Promise<boolean> {
    return this.submit({ op: 'verify', input: bcryptInput(password), hash }) as Promise<boolean>;
  }

  /** Jobs waiting for a thread. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Threads (or the event loop) running a job. */
  get busy(): number {
    return this.slots.filter((slot) => slot.running).length;
  }

  /** Threads running now (stopped ones start again on demand). */
  get threads(): number {
    return this.slots.filter((slot) => slot.worker).length;
  }

  /** Stops the threads; jobs still waiting or running fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const slot of this.slots) if (slot.idleTimer) clearTimeout(slot.idleTimer);
    const stopped = new Error('password pool closed');
    for (const pending of this.waiting.splice(0)) pending.reject(stopped);
    await Promise.all(
      this.slots.map(async (slot) => {
        slot.running?.reject(stopped);
        slot.running = null;
        const worker = slot.worker;
        slot.worker = null;
        await worker?.terminate();
      }),
    );
    this.report();
  }

  private submit(job: Job): Promise<string | boolean> {
    if (this.closed) return Promise.reject(new Error('password pool closed'));
    const idle = this.slots.find((slot) => slot.ready && !slot.running);
    // A stopped or starting thread is a place too: its job waits the start (about 30 ms), not a turn.
    const notReady = this.workers > 0 ? this.slots.filter((slot) => !slot.ready).length : 0;
    if (!idle && this.waiting.length >= this.queueLimit + notReady) {
      this.metrics?.passwordRefused.inc();
      return Promise.reject(new PasswordQueueFullError(this.retryAfterSeconds()));
    }
    return new Promise((resolve, reject) => {
      const pending = { job, resolve, reject };
      if (idle) this.run(idle, pending);
      else {
        this.waiting.push(pending);
        this.wake();
      }
      this.report();
    });
  }

  /** Starts a stopped thread when the jobs waiting outnumber the threads already starting. */
  private wake(): void {
    const starting = this.slots.filter((slot) => slot.worker && !slot.ready).length;
    const stopped = this.slots.find((slot) => !slot.worker);
    if (this.workers === 0 || !stopped || this.waiting.length <= starting) return;
    // A thread that cannot start fails the jobs waiting for it rather than leaving them queued.
    this.spawn(stopped).catch((error: Error) => {
      stopped.worker = null;
      if (this.slots.some((slot) => slot.worker)) return;
      for (const pending of this.waiting.splice(0)) pending.reject(error);
      this.report();
    });
  }

  private run(slot: Slot, pending: Pending): void {
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    slot.idleTimer = null;
    const running = { ...pending, id: this.nextId++, startedAt: performance.now() };
    slot.running = running;
    if (this.workers > 0) {
      slot.worker?.postMessage({ id: running.id, ...pending.job } satisfies PasswordJob);
      return;
    }
    const { job } = pending;
    const done = job.op === 'hash' ? bcrypt.hash(job.input, job.cost) : bcrypt.compare(job.input, job.hash);
    done.then(
      (result) => this.finish(slot, running.id, { id: running.id, result }),
      (error: Error) => this.finish(slot, running.id, { id: running.id, error: error.message }),
    );
  }

  private finish(slot: Slot, id: number, answer: PasswordAnswer): void {
    const running = slot.running;
    if (!running || running.id !== id) return; // the pool was closed meanwhile
    slot.running = null;
    const took = performance.now() - running.startedAt;
    this.meanJobMs = this.meanJobMs === 0 ? took : 0.8 * this.meanJobMs + 0.2 * took;
    if ('error' in answer) running.reject(new Error(answer.error));
    else running.resolve(answer.result);
    this.dispatch(slot);
  }

  /** Gives an idle, ready slot the job that has waited longest. */
  private dispatch(slot: Slot): void {
    const next = slot.ready && !slot.running ? this.waiting.shift() : undefined;
    if (next) this.run(slot, next);
    else if (slot.worker && slot.ready && !slot.running && !this.closed) {
      if (slot.idleTimer) clearTimeout(slot.idleTimer);
      slot.idleTimer = setTimeout(() => this.retire(slot), this.idleMillis);
      slot.idleTimer.unref();
    }
    this.report();
  }

  /** Stops an idle thread; the next job that finds no ready thread starts it again (wake). */
  private retire(slot: Slot): void {
    slot.idleTimer = null;
    const worker = slot.worker;
    if (!worker || !slot.ready || slot.running || this.closed) return;
    slot.worker = null; // first: its exit is then not taken for a crash (see spawn)
    slot.ready = false;
    worker.terminate().catch(() => {});
    this.report();
  }

  /** Starts the slot's thread; resolves once it has loaded, rejects if it cannot start. */
  private spawn(slot: Slot): Promise<void> {
    if (this.workers === 0) return Promise.resolve();
    // No execArgv: the server's V8 and loader flags are not meant for (or valid in) the thread.
    const worker = new Worker(WORKER_URL, { execArgv: [], name: 'wharf-password' });
    slot.worker = worker;
    slot.ready = false;
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on('message', (message: PasswordAnswer | 'ready') => {
        if (message !== 'ready') return this.finish(slot, message.id, message);
        ready = true;
        slot.ready = true;
        resolve();
        this.dispatch(slot);
      });
      // Without a listener, an error in the thread would be thrown in the server.
      worker.on('error', (error) => {
        if (!ready) reject(error);
      });
      worker.on('exit', (code) => {
        if (!ready) return reject(new Error(`password worker exited with ${code} while starting`));
        if (!this.closed && slot.worker === worker) this.replace(slot, code);
      });
    });
  }

  /**
   * A thread that died after starting (out of memory, say): its job fails, and a new thread takes
   * over the slot and the queue behind it.
   */
  private replace(slot: Slot, code: number): void {
    slot.worker = null;
    slot.ready = false;
    const running = slot.running;
    slot.running = null;
    running?.reject(new Error(`password worker exited with ${code}`));
    this.report();
    const retry = () => {
      if (!this.closed) this.spawn(slot).catch(() => setTimeout(retry, 1000).unref());
    };
    retry();
  }

  /** Seconds until the queue in front of a new job has drained, at the recent pace; at least 1. */
  private retryAfterSeconds(): number {
    const jobs = this.waiting.length + this.busy;
    return Math.max(1, Math.ceil((jobs * this.meanJobMs) / Math.max(1, this.workers) / 1000));
  }

  private report(): void {
    this.metrics?.passwordQueueLength.set(this.waiting.length);
    this.metrics?.passwordWorkersBusy.set(this.busy);
    this.metrics?.passwordThreads.set(this.workers === 0 ? 0 : this.threads);
  }
}
