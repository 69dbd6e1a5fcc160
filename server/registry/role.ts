import { AccessPolicy } from '../access/policy.ts';
import { CredentialResolver } from '../identity/credential-resolver.ts';
import type { IdentityClient } from '../identity/principal.ts';
import type { Role, RoleContext } from '../roles.ts';
import { webUi } from '../web/plugin.ts';
import { DownloadCounter } from './cargo/downloads.ts';
import { startCargoMaintenance } from './cargo/leftovers.ts';
import { cargoRegistry } from './cargo/plugin.ts';
import { createOci } from './oci/plugin.ts';
import { RobotStore } from './oci/robots.ts';

/**
 * The Registry: the Cargo and OCI data planes and their authorization. Both protocols share one
 * CredentialResolver (one cache of credential answers, bounded by `registry.credentialCacheSeconds`)
 * and one AccessPolicy.
 */
export async function createRegistryRole(context: RoleContext & { identity: IdentityClient }): Promise<Role> {
  const { config, store, metrics } = context;
  const robots = new RobotStore(store);
  const resolver = new CredentialResolver(context.identity, {
    cacheSeconds: config.registry.credentialCacheSeconds,
    metrics,
    robots,
  });
  const policy = new AccessPolicy({
    superusers: config.registry.superusers,
    anonymousPull: config.registry.oci.anonymousPull,
    cargoAuthRequired: config.registry.cargo.authRequired,
    proxies: config.registry.oci.proxies,
  });
  const oci = config.registry.protocols.includes('oci')
    ? await createOci({ ...context, resolver, policy, robots })
    : null;
  const cargoDownloads = config.registry.protocols.includes('cargo')
    ? new DownloadCounter(store, context.logger.child({ component: 'cargo' }), {
        flushIntervalMs: config.registry.cargo.downloadsFlushSeconds * 1000,
      })
    : null;
  cargoDownloads?.start();
  const cargoMaintenance = config.registry.protocols.includes('cargo')
    ? startCargoMaintenance({
        store,
        settings: config.registry.cargo.gc,
        metrics,
        logger: context.logger.child({ component: 'cargo' }),
      })
    : null;
  return {
    register: async (app) => {
      if (cargoDownloads)
        await app.register(cargoRegistry, { ...context, resolver, policy, downloads: cargoDownloads });
      if (oci) await oci.register(app);
      await app.register(webUi, { config });
    },
    close: async () => {
      cargoMaintenance?.stop();
      await cargoDownloads?.stop();
      await oci?.close();
    },
  };
}
