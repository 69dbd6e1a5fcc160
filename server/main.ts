import type { FastifyInstance } from 'fastify';
import { buildWharf } from './app.ts';
import { ConfigError, loadConfig } from './config/load.ts';
import { createLogger } from './observability/logger.ts';
import { openStore } from './store/open.ts';

/** The program: configuration, store, server, and a shutdown that lets in-flight requests finish. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`wharf: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);
  let wharf: Awaited<ReturnType<typeof buildWharf>>;
  try {
    const store = await openStore(config.store, logger);
    wharf = await buildWharf(config, store, logger);
    // The main port first: its "Server listening" line is how scripts and tests learn the port.
    await listen(wharf.app, config.host, config.port, '"port" (PORT)');
    await listen(wharf.metricsApp, config.host, config.metricsPort, '"metricsPort" (WHARF_METRICS_PORT)');
  } catch (error) {
    if (error instanceof ConfigError) {
      logger.fatal(error.message);
      process.stderr.write(`wharf: ${error.message}\n`);
      process.exit(2);
    }
    logger.fatal({ err: error }, 'start-up failed');
    process.exit(1);
  }
  logger.info(
    {
      roles: config.roles,
      port: portOf(wharf.app),
      metricsPort: portOf(wharf.metricsApp),
      store: config.store.driver,
    },
    'wharf is ready',
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    const timer = setTimeout(() => {
      logger.error('shutdown grace period over, exiting with requests still open');
      process.exit(1);
    }, config.shutdownGraceSeconds * 1000);
    timer.unref();
    wharf.close().then(
      () => {
        logger.info('shut down cleanly');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** Listens, turning "address in use" into a message that names the setting to change. */
async function listen(app: FastifyInstance, host: string, port: number, setting: string): Promise<void> {
  try {
    await app.listen({ host, port });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE')
      throw new ConfigError(`configuration setting ${setting}: ${host}:${port} is already in use`);
    throw error;
  }
}

function portOf(app: FastifyInstance): number | undefined {
  const address = app.server.address();
  return typeof address === 'object' && address ? address.port : undefined;
}

await main();
