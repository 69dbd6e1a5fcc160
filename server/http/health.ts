import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../observability/metrics.ts';
import type { ObjectStore } from '../store/object-store.ts';

/** `/healthz` (the process answers), `/readyz` (it can reach its store) and `/metrics`. */
export async function healthRoutes(
  app: FastifyInstance,
  { store, metrics, ready }: { store: ObjectStore; metrics: Metrics; ready: () => boolean },
): Promise<void> {
  app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }));

  app.get('/readyz', { logLevel: 'warn' }, async (_request, reply) => {
    if (!ready()) return reply.code(503).send({ status: 'shutting down' });
    try {
      await store.ping();
      return { status: 'ok', store: store.kind };
    } catch (error) {
      app.log.warn({ err: error }, 'readiness check: store unreachable');
      return reply.code(503).send({ status: 'store unreachable', store: store.kind });
    }
  });

  app.get('/metrics', { logLevel: 'warn' }, async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}
