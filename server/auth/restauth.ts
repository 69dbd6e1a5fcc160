import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { parseAuthorization } from '../http/authorization.ts';
import { CREDENTIAL_BODY_LIMIT } from '../http/body-limits.ts';
import { relayedClientAddress } from '../http/proxies.ts';
import { requestErrorStatus } from '../http/request-errors.ts';
import type { Authenticator } from '../identity/authenticator.ts';
import { IdentityError } from '../identity/directory.ts';
import { PasswordQueueFullError } from '../identity/password-pool.ts';
import type { CredentialRef } from '../identity/principal.ts';
import type { AuthenticatedService, Permission, ServiceRegistry } from '../identity/services.ts';
import { permits } from '../identity/services.ts';
import type { Metrics } from '../observability/metrics.ts';
import { sendThrottled, stringField } from './credentials.ts';
import { anyBody, type RestAuthKit, TOO_MANY } from './restauth/common.ts';
import { groupRoutes } from './restauth/groups.ts';
import { propertyRoutes } from './restauth/properties.ts';
import { userRoutes } from './restauth/users.ts';

export interface RestAuthOptions {
  authenticator: Authenticator;
  services: ServiceRegistry;
  metrics: Metrics;
}

const REALM = 'Basic realm="wharf RestAuth", charset="UTF-8"';

/** Where the RestAuth API is mounted. */
export const RESTAUTH_PREFIX = '/restauth';

/**
 * The RestAuth API (protocol 0.6, status codes as the reference): services authenticate with HTTP
 * Basic and need a permission per operation. Mounted under `/restauth`.
 */
export async function restAuthRoutes(app: FastifyInstance, options: RestAuthOptions): Promise<void> {
  const { authenticator, services, metrics } = options;
  const callers = new WeakMap<FastifyRequest, AuthenticatedService>();

  // Refusals thrown by handlers, and Fastify's own (a body over the limit, malformed JSON, 415), in
  // RestAuth's status codes and `{error}` form. Every bcrypt here (the calling service's password, a
  // user's, a new hash) may find the password queue full: 503 with Retry-After, which a registry in
  // another process maps back to PasswordQueueFullError.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof PasswordQueueFullError)
      return reply
        .code(503)
        .header('retry-after', String(error.retryAfterSeconds))
        .send({ error: error.message });
    if (error instanceof IdentityError) return kit.refused(reply, error);
    const status = requestErrorStatus(error);
    if (status !== null) return reply.code(status).send({ error: error.message });
    request.log.error({ err: error }, 'RestAuth request failed');
    return reply.code(500).send({ error: 'internal error' });
  });

  app.addHook('onRequest', async (request, reply) => {
    const credentials = parseAuthorization(request.headers.authorization);
    const service =
      credentials.type === 'basic'
        ? await services.authenticate(credentials.username, credentials.password)
        : null;
    metrics.authentication('service', service !== null);
    if (!service) {
      return reply
        .code(401)
        .header('www-authenticate', REALM)
        .send({ error: 'service authentication required' });
    }
    callers.set(request, service);
  });

  const kit: RestAuthKit = {
    authenticator,
    directory: authenticator.directory,
    origin(request: FastifyRequest) {
      const service = callers.get(request);
      // X-Forwarded-For from any other service is ignored: its users are told apart by name only.
      const address = service?.forwardsClientAddress ? relayedClientAddress(request) : undefined;
      return { service: service?.name, ...(address ? { address } : {}) };
    },
    allowed(request: FastifyRequest, reply: FastifyReply, operation: Permission) {
      const service = callers.get(request);
      if (service && permits(service.permissions, operation)) return true;
      reply.code(403).send({ error: `service ${service?.name ?? '?'} lacks permission ${operation}` });
      return false;
    },
    notFound: (reply, type, name) =>
      reply
        .code(404)
        .header('resource-type', type)
        .send({ error: `${type} ${name} not found` }),
    refused(reply, error) {
      if (!(error instanceof IdentityError)) throw error;
      const status = { invalid: 400, exists: 409, 'not-found': 404, forbidden: 403 }[error.reason];
      return reply.code(status).send({ error: error.message });
    },
  };
  const { origin, allowed, notFound } = kit;

  userRoutes(app, kit);
  propertyRoutes(app, kit);
  groupRoutes(app, kit);

  // RestAuth: a method a resource does not support is 405 (Fastify alone would say 404).
  const supported: Record<string, string[]> = {
    '/users': ['GET', 'POST'],
    '/users/:name': ['GET', 'POST', 'PUT', 'DELETE'],
    '/users/:name/props': ['GET', 'POST', 'PUT'],
    '/users/:name/props/:prop': ['GET', 'PUT', 'DELETE'],
    '/groups': ['GET', 'POST'],
    '/groups/:group': ['GET', 'DELETE'],
    '/groups/:group/users': ['GET', 'POST'],
    '/groups/:group/users/:user': ['GET', 'DELETE'],
    '/groups/:group/groups': ['GET', 'POST'],
    '/groups/:group/groups/:sub': ['DELETE'],
    '/verify': ['POST'],
  };
  for (const [url, methods] of Object.entries(supported)) {
    const others = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'].filter((method) => !methods.includes(method));
    app.route({
      method: others,
      url,
      handler: async (_request, reply) =>
        reply.code(405).header('allow', methods.join(', ')).send({ error: 'method not allowed' }),
    });
  }

  // ---- token check for registries ---------------------------------------------------------------

  /**
   * Who a credential is: `{token}`, or `{username, password}` where the password may be one of the
   * user's API tokens, or `{credential, scopes}` (a reference from an earlier answer: is it still
   * good, and who is the user now?). 200 with the principal, 404 when the credential is wrong,
   * revoked or its user gone or disabled (one answer for all).
   */
  const credentialBody = { schema: { body: anyBody }, bodyLimit: CREDENTIAL_BODY_LIMIT };
  app.post('/verify', credentialBody, async (request, reply) => {
    const credential = credentialRefOf(request.body);
    if (credential !== undefined) {
      if (!allowed(request, reply, 'token_verify')) return reply;
      if (credential === null)
        return reply.code(400).send({ error: 'credential is not a credential reference' });
      const scopes = (request.body as { scopes?: unknown }).scopes;
      const principal = await authenticator.revalidate(
        credential,
        Array.isArray(scopes) && scopes.every((s) => typeof s === 'string') ? scopes : null,
      );
      return principal ? principal : notFound(reply, 'user', 'for this credential');
    }
    const token = stringField(request.body, 'token');
    const username = stringField(request.body, 'username');
    const password = stringField(request.body, 'password');
    if (token !== undefined) {
      if (!allowed(request, reply, 'token_verify')) return reply;
      const principal = await authenticator.verifyToken(token);
      return principal ? principal : notFound(reply, 'user', 'for this token');
    }
    if (username === undefined || password === undefined)
      return reply.code(400).send({ error: 'token, or username and password, are required' });
    if (!allowed(request, reply, 'user_verify_password')) return reply;
    try {
      const principal = await authenticator.verifyPassword(username, password, origin(request));
      return principal ? principal : notFound(reply, 'user', username);
    } catch (error) {
      return sendThrottled(error, reply, TOO_MANY);
    }
  });
}

/** The `credential` field of a verify request: undefined when absent, null when malformed. */
function credentialRefOf(body: unknown): CredentialRef | null | undefined {
  if (typeof body !== 'object' || body === null || !('credential' in body)) return undefined;
  const value = (body as { credential: unknown }).credential;
  if (typeof value !== 'object' || value === null) return null;
  const ref = value as Record<string, unknown>;
  const text = (key: string) => typeof ref[key] === 'string' && (ref[key] as string).length <= 256;
  switch (ref.type) {
    case 'password':
      return text('user') && (ref.passwordChangedAt === null || text('passwordChangedAt'))
        ? {
            type: 'password',
            user: ref.user as string,
            passwordChangedAt: ref.passwordChangedAt as string | null,
          }
        : null;
    case 'token':
      return text('user') && text('tokenId')
        ? { type: 'token', user: ref.user as string, tokenId: ref.tokenId as string }
        : null;
    case 'account':
      return text('user') ? { type: 'account', user: ref.user as string } : null;
    default:
      return null;
  }
}
