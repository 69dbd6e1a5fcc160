import type { FastifyInstance } from 'fastify';
import type { WharfConfig } from '../config/types.ts';
import { publicBaseUrl } from '../http/proxies.ts';

/**
 * GET /me: the page `cargo login` points at (and RFC 3139's `login_url`). For password users it says
 * how to get an API token with curl and hand it to cargo. Registered only when no OIDC provider is
 * configured: then /me belongs to the OIDC flow.
 */
export async function mePage(app: FastifyInstance, { config }: { config: WharfConfig }): Promise<void> {
  // With OpenID Connect providers, /me is the OIDC token flow (server/auth/openid/), not this page.
  if (config.openid.providers.length > 0) return;
  app.get('/me', async (request, reply) => {
    const base = publicBaseUrl(config.publicUrl, request);
    const host = new URL(base).host;
    reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store');
    return `Getting a token for this registry (${base})

1. Ask the registry for a token with your user name and password
   (this replaces your previous token):

     curl -s -X POST ${base}/ktra/api/v1/login/YOUR_NAME \\
       -H 'content-type: application/json' \\
       -d '{"password": "YOUR_PASSWORD"}'

   The answer is {"token": "..."}. No account yet? Ask an administrator, or
   (when sign-up is open) use ${base}/ktra/api/v1/new_user/YOUR_NAME the same way.

2. Give the token to cargo:

     cargo login --registry NAME        (NAME as in .cargo/config.toml, see below)

   or set CARGO_REGISTRIES_NAME_TOKEN in the environment (CI).

3. .cargo/config.toml:

     [registries.NAME]
     index = "sparse+${base}/index/"

     [registry]
     global-credential-providers = ["cargo:token"]

   (registry host: ${host})
`;
  });
}
