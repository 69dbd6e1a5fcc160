/**
 * One controller per kind: a rate-limited work queue fed by informer events and a periodic resync,
 * drained by a few workers that call `reconcile(key)`. A failed reconcile is retried with backoff;
 * a result with `requeueAfterMs` comes back after that delay.
 */
import type { Logger } from 'pino';
import type { ReconcileResult } from '../reconcile/context.ts';
import type { OperatorMetrics } from './metrics.ts';
import { WorkQueue } from './queue.ts';

export interface ControllerOptions {
  kind: string;
  reconcile: (key: string) => Promise<ReconcileResult>;
  metrics: OperatorMetrics;
  log: Logger;
  workers?: number;
}

export class Controller {
  readonly kind: string;
  readonly queue = new WorkQueue();
  private readonly options: ControllerOptions;
  private running: Promise<void>[] = [];

  constructor(options: ControllerOptions) {
    this.kind = options.kind;
    this.options = options;
  }

  enqueue(key: string): void {
    this.queue.add(key);
    this.options.metrics.queueDepth.set({ kind: this.kind }, this.queue.depth);
  }

  start(): void {
    const workers = this.options.workers ?? 4;
    for (let i = 0; i < workers; i++) this.running.push(this.work());
  }

  /** Stops taking keys and waits for reconciles in progress to finish. */
  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.running);
    this.running = [];
  }

  private async work(): Promise<void> {
    const { metrics, log, reconcile } = this.options;
    for (;;) {
      const key = await this.queue.get();
      metrics.queueDepth.set({ kind: this.kind }, this.queue.depth);
      if (key === undefined) return;
      const end = metrics.durations.startTimer({ kind: this.kind });
      try {
        const result = await reconcile(key);
        this.queue.forget(key);
        if (result.requeueAfterMs) {
          this.queue.addAfter(key, result.requeueAfterMs);
          metrics.reconciles.inc({ kind: this.kind, result: 'requeue' });
        } else metrics.reconciles.inc({ kind: this.kind, result: 'success' });
      } catch (error) {
        metrics.reconciles.inc({ kind: this.kind, result: 'error' });
        metrics.errors.inc({ kind: this.kind });
        log.warn(
          { err: error, kind: this.kind, key, retries: this.queue.limiter.retries(key) },
          'reconcile failed',
        );
        this.queue.addRateLimited(key);
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }
}
