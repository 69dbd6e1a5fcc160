import formbody from '@fastify/formbody';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { createAuthRole } from './auth/role.ts';
import type { WharfConfig } from './config/types.ts';
import { closeOnUnreadBody } from './http/body-limits.ts';
import { healthRoutes } from './http/health.ts';
import { createMetricsListener } from './http/metrics-listener.ts';
import { isLoopbackHost, trustProxyOption } from './http/proxies.ts';
import { serverTimeouts, watchBodies } from './http/timeouts.ts';
import type { IdentityClient } from './identity/principal.ts';
import { Metrics } from './observability/metrics.ts';
import { createRemoteIdentityClient } from './registry/remote-identity.ts';
import { createRegistryRole } from './registry/role.ts';
import type { Role } from './roles.ts';
import { InstrumentedStore, StoreMetrics } from './store/instrumented-store.ts';
import type { ObjectStore } from './store/object-store.ts';
import { rootSurfaces } from './surfaces.ts';

export interface RouteSummary {
  method: string;
  url: string;
}

export interface Wharf {
  app: FastifyInstance;
  /** The `metricsPort` listener: `/metrics` only. The caller listens on both. */
  metricsApp: FastifyInstance;
  /** Every route the app serves (method and URL pattern), in registration order. */
  routes: readonly RouteSummary[];
  metrics: Metrics;
  /** Stops taking requests, lets in-flight ones finish, then releases the roles and the store. */
  close(): Promise<void>;
}

/** Assembles one server from its configuration: the roles it runs decide which plugins it mounts. */
export async function buildWharf(config: WharfConfig, driver: ObjectStore, logger: Logger): Promise<Wharf> {
  const metrics = new Metrics();
  const store = new InstrumentedStore(driver, new StoreMetrics(metrics.registry));
  let accepting = true;
  const surfaces = rootSurfaces(config.auth.restauth.pathPrefix);
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // JSON and forms; credential requests, cargo publish and manifests set their own limits.
    bodyLimit: config.bodyLimitBytes,
    ...serverTimeouts(config.http),
    trustProxy: trustProxyOption(config.trustedProxies),
    // Ingresses and clients (cargo, skopeo) may put a trailing slash on any route.
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, maxParamLength: 500 },
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    frameworkErrors: surfaces.frameworkErrors,
  });
  // Every route, as registered: tests derive from it what they must cover.
  const routes: RouteSummary[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url });
  });
  app.setNotFoundHandler(surfaces.notFound);
  app.setErrorHandler(surfaces.errorHandler);
  metrics.instrument(app);
  watchBodies(app, config.http, metrics);
  closeOnUnreadBody(app);
  // A keep-alive connection busy when shutdown starts would otherwise stay open after its response
  // and hold the process until the grace period ends.
  app.addHook('onSend', async (_request, reply) => {
    if (!accepting) reply.header('connection', 'close');
  });
  await app.register(formbody);
  await app.register(healthRoutes, { store, ready: () => accepting });
  const metricsApp = await createMetricsListener(metrics, logger);

  if (!config.publicUrl && !isLoopbackHost(config.host))
    logger.warn(
      { host: config.host, trustedProxies: config.trustedProxies },
      "publicUrl is not set: links (config.json, the token realm, /me) follow each request's Host header; set publicUrl (WHARF_PUBLIC_URL) to the URL clients use",
    );
  const context = { config, store, metrics, logger };
  const roles: Role[] = [];
  try {
    let identity: IdentityClient | undefined;
    if (config.roles.includes('auth')) {
      const auth = await createAuthRole(context);
      identity = auth.identity;
      roles.push(auth);
    }
    if (config.roles.includes('registry')) {
      identity ??= createRemoteIdentityClient(config.registry);
      roles.push(await createRegistryRole({ ...context, identity }));
    }
    for (const role of roles) await role.register(app);
  } catch (error) {
    // A role that failed to start must not leave the others' threads and timers behind.
    for (const role of roles.reverse()) await role.close?.().catch(() => undefined);
    await metricsApp.close();
    throw error;
  }

  return {
    app,
    metricsApp,
    routes,
    metrics,
    async close() {
      accepting = false;
      await app.close();
      for (const role of roles.reverse()) await role.close?.();
      // Last, so the drain itself can still be scraped.
      await metricsApp.close();
      await store.close();
    },
  };
}
