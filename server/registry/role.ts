import type { IdentityClient } from '../identity/principal.ts';
import type { Role, RoleContext } from '../roles.ts';
import { cargoRegistry } from './cargo/plugin.ts';
import { createOci } from './oci/plugin.ts';

/** The Registry: the Cargo and OCI data planes and their authorization. */
export async function createRegistryRole(context: RoleContext & { identity: IdentityClient }): Promise<Role> {
  const oci = context.config.registry.protocols.includes('oci') ? await createOci(context) : null;
  return {
    register: async (app) => {
      if (context.config.registry.protocols.includes('cargo')) await app.register(cargoRegistry, context);
      if (oci) await oci.register(app);
    },
    close: async () => {
      await oci?.close();
    },
  };
}
