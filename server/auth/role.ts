import type { AuthRole, RoleContext } from '../roles.ts';
import { mePage } from './me-page.ts';

/** The AuthService: users, groups, tokens, RestAuth and Ktra endpoints. */
export async function createAuthRole(_context: RoleContext): Promise<AuthRole> {
  return {
    identity: {
      verifyToken: async () => null,
      verifyPassword: async () => null,
      userExists: async () => false,
      groupExists: async () => false,
    },
    register: async (app) => void (await app.register(mePage, { config: _context.config })),
  };
}
