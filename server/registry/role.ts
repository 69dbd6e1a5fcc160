import type { IdentityClient } from '../identity/principal.ts';
import type { Role, RoleContext } from '../roles.ts';

/** The Registry: the Cargo and OCI data planes and their authorization. */
export async function createRegistryRole(
  _context: RoleContext & { identity: IdentityClient },
): Promise<Role> {
  return { register: async () => {} };
}
