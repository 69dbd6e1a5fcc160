/** The operator's Prometheus metrics, on its own registry (served at /metrics). */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'wharf_operator_' });
  return {
    registry,
    reconciles: new Counter({
      name: 'wharf_operator_reconcile_total',
      help: 'Reconciles by kind and result (success, error, requeue).',
      labelNames: ['kind', 'result'] as const,
      registers: [registry],
    }),
    errors: new Counter({
      name: 'wharf_operator_reconcile_errors_total',
      help: 'Reconciles that failed, by kind.',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    durations: new Histogram({
      name: 'wharf_operator_reconcile_duration_seconds',
      help: 'Time spent in one reconcile, by kind.',
      labelNames: ['kind'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'wharf_operator_workqueue_depth',
      help: 'Keys waiting in the work queue, by kind.',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    leader: new Gauge({
      name: 'wharf_operator_leader',
      help: '1 while this replica holds the leader Lease.',
      registers: [registry],
    }),
    apiRequests: new Counter({
      name: 'wharf_operator_api_requests_total',
      help: 'Requests to the Kubernetes API, by verb and HTTP status (0: no answer).',
      labelNames: ['verb', 'code'] as const,
      registers: [registry],
    }),
  };
}

export type OperatorMetrics = ReturnType<typeof createMetrics>;
