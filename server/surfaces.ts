import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ktraError } from './auth/ktra.ts';
import { RESTAUTH_PREFIX } from './auth/restauth.ts';
import { requestErrorStatus } from './http/request-errors.ts';
import { sendError as sendApiError } from './registry/oci/api-v1/caller.ts';
import { OciError, sendOciError } from './registry/oci/errors.ts';

/**
 * Answers given outside every API's plugin, and so outside their error handlers: no route matched
 * (404, and the 415 or 413 of parsing that request's body), a path that is not valid
 * percent-encoding (400), a path parameter over `maxParamLength` (414). Each goes out in the error
 * format of the API the path belongs to, so a client of one API (cargo, docker, a RestAuth service,
 * a Quay script) only ever reads the format it understands.
 */
export function sendRootError(
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  message: string,
  restAuthPrefix: string = RESTAUTH_PREFIX,
): FastifyReply {
  // As the router sees it: duplicate slashes and a trailing slash do not change the route.
  const path = (request.url.split('?')[0] ?? '').replace(/\/{2,}/g, '/').replace(/(.)\/$/, '$1');
  if (path === '/v2' || path.startsWith('/v2/')) {
    const code =
      status === 404 ? 'NAME_UNKNOWN' : status === 400 || status === 414 ? 'NAME_INVALID' : 'UNSUPPORTED';
    reply.header('Docker-Distribution-Api-Version', 'registry/2.0');
    return sendOciError(reply, new OciError(code, message, { status }));
  }
  if (isRestAuthPath(path, restAuthPrefix)) return reply.code(status).send({ error: message });
  // The Quay-style API v1 shares `/api/v1/` with cargo's Web API, which owns `/api/v1/crates`.
  const cargoApi = path === '/api/v1/crates' || path.startsWith('/api/v1/crates/');
  if ((path.startsWith('/api/v1/') && !cargoApi) || path === '/csrf_token')
    return sendApiError(reply, status, status === 404 ? 'not_found' : 'invalid_request', message);
  // Cargo (index, Web API, mirror), Ktra, /auth/api/v1 and everything else: `{"errors":[{"detail"}]}`.
  return ktraError(reply, status, message);
}

/** RestAuth's resources under its prefix; at the root (`""`), its own top-level paths. */
function isRestAuthPath(path: string, prefix: string): boolean {
  if (prefix !== '') return path === prefix || path.startsWith(`${prefix}/`);
  return ['/users', '/groups', '/test', '/verify'].some((top) => path === top || path.startsWith(`${top}/`));
}

/**
 * The root's answers for one server: its not-found handler, Fastify's `frameworkErrors` option (a
 * bad URL or an over-long parameter) and its error handler (Fastify's refusals keep their status,
 * anything else is a 500), each in the format of the API the path belongs to.
 */
export function rootSurfaces(restAuthPrefix: string) {
  const send = (request: FastifyRequest, reply: FastifyReply, status: number, message: string) =>
    sendRootError(request, reply, status, message, restAuthPrefix);
  return {
    notFound: (request: FastifyRequest, reply: FastifyReply) =>
      send(request, reply, 404, `no route for ${request.method} ${request.url.split('?')[0]}`),
    frameworkErrors(
      error: { statusCode?: number; message: string },
      request: FastifyRequest,
      reply: FastifyReply,
    ) {
      const status = error.statusCode ?? 400;
      const message =
        status === 414 ? 'a path segment is too long' : 'the URL path is not valid percent-encoding';
      send(request, reply, status, message);
    },
    errorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
      const status = requestErrorStatus(error);
      if (status === null) request.log.error({ err: error }, 'request failed');
      return send(request, reply, status ?? 500, status === null ? 'internal error' : error.message);
    },
  };
}
