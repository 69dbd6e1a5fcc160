import type { FastifyInstance } from 'fastify';
import type { ObjectStore } from '../store/object-store.ts';

/**
 * `/healthz` (the process answers) and `/readyz` (it can reach its store), on the main port: the
 * probes test the port that serves traffic. `/metrics` has its own listener (metrics-listener.ts).
 */
export async function healthRoutes(
  app: FastifyInstance,
  { store, ready }: { store: ObjectStore; ready: () => boolean },
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
}
