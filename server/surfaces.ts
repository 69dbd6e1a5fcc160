import type { FastifyReply, FastifyRequest } from 'fastify';
import { ktraError } from './auth/ktra.ts';
import { RESTAUTH_PREFIX } from './auth/restauth.ts';
import { sendError as sendApiError } from './registry/oci/api-v1/caller.ts';
import { OciError, sendOciError } from './registry/oci/errors.ts';

/**
 * Answers Fastify gives before any plugin's own error handler can: no route matched (404), a path
 * that is not valid percent-encoding (400), a path parameter over `maxParamLength` (414). Each goes
 * out in the error format of the API the path belongs to, so a client of one API (cargo, docker, a
 * RestAuth service, a Quay script) only ever reads the format it understands.
 */
export function sendUnroutedError(
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  message: string,
): FastifyReply {
  const path = (request.url.split('?')[0] ?? '').replace(/\/{2,}/g, '/');
  if (path === '/v2' || path.startsWith('/v2/')) {
    const code =
      status === 404 ? 'NAME_UNKNOWN' : status === 400 || status === 414 ? 'NAME_INVALID' : 'UNSUPPORTED';
    reply.header('Docker-Distribution-Api-Version', 'registry/2.0');
    return sendOciError(reply, new OciError(code, message, { status }));
  }
  if (path === RESTAUTH_PREFIX || path.startsWith(`${RESTAUTH_PREFIX}/`))
    return reply.code(status).send({ error: message });
  // The Quay-style API v1 shares `/api/v1/` with cargo's Web API, which owns `/api/v1/crates`.
  const cargoApi = path === '/api/v1/crates' || path.startsWith('/api/v1/crates/');
  if ((path.startsWith('/api/v1/') && !cargoApi) || path === '/csrf_token')
    return sendApiError(reply, status, status === 404 ? 'not_found' : 'invalid_request', message);
  // Cargo (index, Web API, mirror), Ktra, /auth/api/v1 and everything else: `{"errors":[{"detail"}]}`.
  return ktraError(reply, status, message);
}

/** Fastify's `frameworkErrors` option: a bad URL or an over-long parameter, answered as above. */
export function frameworkErrors(
  error: { statusCode?: number; message: string },
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  const status = error.statusCode ?? 400;
  const message =
    status === 414 ? 'a path segment is too long' : 'the URL path is not valid percent-encoding';
  sendUnroutedError(request, reply, status, message);
}
