import type { FastifyInstance } from 'fastify';

const PASSWORD_ROUTES = new Set([
  '/ktra/api/v1/new_user/:name',
  '/ktra/api/v1/login/:name',
  '/ktra/api/v1/change_password/:name',
]);

/**
 * With OpenID on, people sign in through their provider, not with a password (as in Ktra): the
 * Ktra password endpoints answer 403, except `login` and `change_password` for the bootstrap
 * administrator. Matched on the route, not the raw URL, so `//ktra/…` or encoded names cannot
 * slip past. Call before the Ktra routes are registered, on the same (root) instance.
 */
export function closePasswordEndpointsForPeople(app: FastifyInstance): void {
  app.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.url;
    if (!route || !PASSWORD_ROUTES.has(route)) return;
    const name = String((request.params as { name?: string }).name ?? '').toLowerCase();
    if (name === 'admin' && !route.endsWith('/new_user/:name')) return;
    return reply.code(403).send({
      errors: [
        { detail: 'password accounts are off on this registry: sign in with your SSO at /me to get a token' },
      ],
    });
  });
}
