import type { IdentityClient } from '../identity/principal.ts';
import type { Role, RoleContext } from '../roles.ts';
import { createOci } from './oci/plugin.ts';

/** The Registry: the Cargo and OCI data planes and their authorization. */
export async function createRegistryRole(context: RoleContext & { identity: IdentityClient }): Promise<Role> {
  const parts: Role[] = [];
  if (context.config.registry.protocols.includes('oci')) parts.push(await createOci(context));
  return {
    register: async (app) => {
      for (const part of parts) await part.register(app);
    },
    close: async () => {
      for (const part of parts) await part.close?.();
    },
  };
}
