import type { IdentityClient } from '../identity/principal.ts';
import type { Role, RoleContext } from '../roles.ts';
import { startCargoMaintenance } from './cargo/leftovers.ts';
import { cargoRegistry } from './cargo/plugin.ts';
import { createOci } from './oci/plugin.ts';

/** The Registry: the Cargo and OCI data planes and their authorization. */
export async function createRegistryRole(context: RoleContext & { identity: IdentityClient }): Promise<Role> {
  const oci = context.config.registry.protocols.includes('oci') ? await createOci(context) : null;
  const cargoMaintenance = context.config.registry.protocols.includes('cargo')
    ? startCargoMaintenance({
        store: context.store,
        settings: context.config.registry.cargo.gc,
        metrics: context.metrics,
        logger: context.logger.child({ component: 'cargo' }),
      })
    : null;
  return {
    register: async (app) => {
      if (context.config.registry.protocols.includes('cargo')) await app.register(cargoRegistry, context);
      if (oci) await oci.register(app);
    },
    close: async () => {
      cargoMaintenance?.stop();
      await oci?.close();
    },
  };
}
