import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** One metrics registry per server instance, so tests can run several servers in one process. */
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly authentications: Counter<'method' | 'result'>;
  readonly passwordQueueLength: Gauge;
  readonly passwordWorkersBusy: Gauge;
  readonly passwordWorkers: Gauge;
  readonly passwordThreads: Gauge;
  readonly passwordRefused: Counter;
  readonly gcRuns: Counter<'registry' | 'result'>;
  readonly gcDuration: Histogram<'registry' | 'result'>;
  readonly gcLastSuccess: Gauge<'registry'>;
  readonly gcDeletedObjects: Counter<'registry' | 'kind'>;
  readonly gcFreedBytes: Counter<'registry'>;
  readonly bodyTimeouts: Counter<'reason'>;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.httpRequests = new Counter({
      name: 'wharf_http_requests_total',
      help: 'HTTP requests by route template, method and status code',
      labelNames: ['method', 'route', 'status'],
      registers: [this.registry],
    });
    this.httpDuration = new Histogram({
      name: 'wharf_http_request_duration_seconds',
      help: 'HTTP request duration by route template, method and status code',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [this.registry],
    });
    this.authentications = new Counter({
      name: 'wharf_authentications_total',
      help: 'Credential checks, each counted once where it is made (cache hits are not checks), by method (password, token, robot, refresh_token, service, openid) and result (success, failure, throttled)',
      labelNames: ['method', 'result'],
      registers: [this.registry],
    });
    this.passwordQueueLength = new Gauge({
      name: 'wharf_password_queue_length',
      help: 'Password hash and check jobs waiting for a bcrypt thread',
      registers: [this.registry],
    });
    this.passwordWorkersBusy = new Gauge({
      name: 'wharf_password_workers_busy',
      help: 'bcrypt threads running a job (with 0 threads: 1 while the event loop runs one)',
      registers: [this.registry],
    });
    this.passwordWorkers = new Gauge({
      name: 'wharf_password_workers',
      help: 'bcrypt threads in the pool (0: bcrypt runs on the event loop)',
      registers: [this.registry],
    });
    this.passwordThreads = new Gauge({
      name: 'wharf_password_threads',
      help: 'bcrypt threads running now: idle ones stop after a minute and start again on demand',
      registers: [this.registry],
    });
    this.passwordRefused = new Counter({
      name: 'wharf_password_queue_refused_total',
      help: 'Password jobs refused because the queue was full (answered 503 with Retry-After)',
      registers: [this.registry],
    });
    this.gcRuns = new Counter({
      name: 'wharf_gc_runs_total',
      help: 'Garbage collection runs by registry (oci, cargo) and result (completed, dry_run, skipped: another process held the lease, failed)',
      labelNames: ['registry', 'result'],
      registers: [this.registry],
    });
    this.gcDuration = new Histogram({
      name: 'wharf_gc_duration_seconds',
      help: 'Duration of garbage collection runs by registry and result',
      labelNames: ['registry', 'result'],
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
      registers: [this.registry],
    });
    this.gcLastSuccess = new Gauge({
      name: 'wharf_gc_last_success_timestamp_seconds',
      help: 'When this process last completed a garbage collection run (one process per store runs it: take the max)',
      labelNames: ['registry'],
      registers: [this.registry],
    });
    this.gcDeletedObjects = new Counter({
      name: 'wharf_gc_deleted_objects_total',
      help: 'Objects deleted by garbage collection, by registry and kind (upload, tag (proxy caches), manifest, link, blob, data, crate, crate_metadata)',
      labelNames: ['registry', 'kind'],
      registers: [this.registry],
    });
    this.gcFreedBytes = new Counter({
      name: 'wharf_gc_freed_bytes_total',
      help: 'Bytes of objects deleted by garbage collection, by registry',
      labelNames: ['registry'],
      registers: [this.registry],
    });
    this.bodyTimeouts = new Counter({
      name: 'wharf_http_body_timeouts_total',
      help: 'Connections closed because a request body stalled (idle) or missed its deadline (deadline)',
      labelNames: ['reason'],
      registers: [this.registry],
    });
  }

  gcRun(
    registry: 'oci' | 'cargo',
    result: 'completed' | 'dry_run' | 'skipped' | 'failed',
    seconds: number,
  ): void {
    this.gcRuns.inc({ registry, result });
    this.gcDuration.observe({ registry, result }, seconds);
    if (result === 'completed') this.gcLastSuccess.set({ registry }, Date.now() / 1000);
  }

  gcDeleted(registry: 'oci' | 'cargo', kind: string, count = 1): void {
    this.gcDeletedObjects.inc({ registry, kind }, count);
  }

  gcFreed(registry: 'oci' | 'cargo', bytes: number): void {
    if (bytes > 0) this.gcFreedBytes.inc({ registry }, bytes);
  }

  authentication(method: string, ok: boolean): void {
    this.authentications.inc({ method, result: ok ? 'success' : 'failure' });
  }

  /** Records every request under its route template (not the raw URL, which would explode cardinality). */
  instrument(app: FastifyInstance): void {
    app.addHook('onResponse', async (request, reply) => {
      const labels = {
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        status: String(reply.statusCode),
      };
      this.httpRequests.inc(labels);
      this.httpDuration.observe(labels, reply.elapsedTime / 1000);
    });
  }
}
