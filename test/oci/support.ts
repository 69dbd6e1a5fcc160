import type { ObjectStore } from '../../server/store/object-store.ts';
import { startServer, type TestServer } from '../support/wharf.ts';

export { toolPath } from '../support/tools.ts';

/**
 * A whole wharf (auth + registry roles, real AuthService) on a random port with a fs store. Users
 * are created the way people create them: `POST /ktra/api/v1/new_user/{name}` with open signup.
 */
export async function startOci(
  raw: Record<string, unknown> = {},
  options: { listen?: boolean; store?: ObjectStore } = {},
): Promise<TestServer> {
  const registry = (raw.registry ?? {}) as Record<string, unknown>;
  return startServer(
    {
      logLevel: process.env.OCI_TEST_LOG ?? 'warn',
      ...raw,
      auth: { signup: 'open', bcryptCost: 10, ...(raw.auth as object) },
      registry: { ...registry, oci: { ...(registry.oci as object) } },
    },
    options,
  );
}

/** Signs a user up through the Ktra endpoint (works with `listen: false` too, through inject). */
export async function createUser(server: TestServer, name: string, password: string): Promise<void> {
  const response = await server.wharf.app.inject({
    method: 'POST',
    url: `/ktra/api/v1/new_user/${name}`,
    payload: { password },
  });
  if (response.statusCode !== 200)
    throw new Error(`new_user ${name}: ${response.statusCode} ${response.body}`);
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
