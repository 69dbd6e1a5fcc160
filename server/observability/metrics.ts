import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/** One metrics registry per server instance, so tests can run several servers in one process. */
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly authentications: Counter<'method' | 'result'>;
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
    this.bodyTimeouts = new Counter({
      name: 'wharf_http_body_timeouts_total',
      help: 'Connections closed because a request body stalled (idle) or missed its deadline (deadline)',
      labelNames: ['reason'],
      registers: [this.registry],
    });
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
