import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.ts';

/**
 * The second listener (`metricsPort`): `/metrics` and nothing else. It is a separate server, not a
 * route of the main one, so an Ingress (which routes the main port) can never expose it, and a
 * scrape never shows up in the main port's request metrics.
 */
export async function createMetricsListener(metrics: Metrics, logger: Logger): Promise<FastifyInstance> {
  // Fastify announces every listener as "Server listening at", the line that tells scripts and
  // tests the main port: this one logs from warn up, and announces itself under its own words.
  const quiet = logger.child(
    { listener: 'metrics' },
    { level: logger.levelVal >= 40 ? logger.level : 'warn' },
  );
  const app = Fastify({ loggerInstance: quiet as FastifyBaseLogger, forceCloseConnections: 'idle' });
  app.addHook('onListen', async () => {
    for (const bound of app.addresses()) {
      if (typeof bound === 'string') continue; // a Unix socket: nothing to scrape over TCP
      const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
      logger.info(`Metrics listening at http://${host}:${bound.port}`);
    }
  });
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  await app.ready();
  return app;
}
