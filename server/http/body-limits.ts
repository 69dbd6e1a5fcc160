import type { FastifyInstance } from 'fastify';

/**
 * Body limit of requests that carry a credential: logins, sign-ups, password changes and checks,
 * token requests. A username (≤ 64 characters), a password (≤ 256), a refresh token (~1 KB) or a
 * handful of scopes fit many times over; nothing bigger is parsed before the credential is checked.
 */
export const CREDENTIAL_BODY_LIMIT = 16 * 1024;

/** Fastify refused a body over its route's limit (413), before buffering more than the limit. */
export function isBodyTooLarge(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'FST_ERR_CTP_BODY_TOO_LARGE';
}

/** Gives every route of a plugin this body limit unless the route sets its own. */
export function defaultBodyLimit(app: FastifyInstance, limit: number): void {
  app.addHook('onRoute', (route) => {
    route.bodyLimit ??= limit;
  });
}

/**
 * An error answered before the request body was read to its end closes the connection. Otherwise
 * Node would read (and discard) the rest to keep the connection alive, however long or endless it is.
 */
export function closeOnUnreadBody(app: FastifyInstance): void {
  app.addHook('onSend', async (request, reply) => {
    if (reply.statusCode >= 400 && !request.raw.complete) reply.header('connection', 'close');
  });
}
