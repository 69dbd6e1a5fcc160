import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AccessPolicy } from '../../access/policy.ts';
import type { WharfConfig } from '../../config/types.ts';
import type { CredentialResolver } from '../../identity/credential-resolver.ts';
import type { IdentityClient } from '../../identity/principal.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import { apiV1Routes } from './api-v1/routes.ts';
import { distributionRoutes } from './distribution/routes.ts';
import { startMaintenance } from './gc.ts';
import type { RobotStore } from './robots.ts';
import { createOciServices, type OciServices } from './services.ts';
import { ociSettings } from './settings.ts';
import { tokenRoutes } from './token/routes.ts';

/** The OCI half of the registry: /v2/, its token endpoint, API v1, and background maintenance. */
export async function createOci(options: {
  config: WharfConfig;
  store: ObjectStore;
  metrics: Metrics;
  logger: Logger;
  identity: IdentityClient;
  resolver: CredentialResolver;
  policy: AccessPolicy;
  robots: RobotStore;
}): Promise<{
  services: OciServices;
  register(app: FastifyInstance): Promise<void>;
  close(): Promise<void>;
}> {
  const { config } = options;
  const services = await createOciServices({
    settings: ociSettings(config.registry.oci),
    publicUrl: config.publicUrl,
    store: options.store,
    identity: options.identity,
    resolver: options.resolver,
    policy: options.policy,
    robots: options.robots,
    metrics: options.metrics,
    logger: options.logger.child({ component: 'oci' }),
  });
  await services.pulls.start();
  const maintenance = startMaintenance(services);
  services.maintenance = maintenance;
  return {
    services,
    async register(app) {
      await app.register(tokenRoutes, { services });
      await app.register(distributionRoutes, { services });
      await app.register(apiV1Routes, { services, authUrl: config.registry.authUrl });
    },
    async close() {
      maintenance.stop();
      await services.pulls.stop();
      await services.proxies.close();
    },
  };
}
