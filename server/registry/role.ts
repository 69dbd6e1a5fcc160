import type { IdentityClient } from '../identity/principal.ts';
import type { Role, RoleContext } from '../roles.ts';
import { cargoRegistry } from './cargo/plugin.ts';

/** The Registry: the Cargo and OCI data planes and their authorization. */
export async function createRegistryRole(context: RoleContext & { identity: IdentityClient }): Promise<Role> {
  return {
    register: async (app) => {
      if (context.config.registry.protocols.includes('cargo')) await app.register(cargoRegistry, context);
    },
  };
}
