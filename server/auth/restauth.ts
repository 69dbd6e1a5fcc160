import type { FastifyError, FastifyInstance } from 'fastify';
import { parseAuthorization } from '../http/authorization.ts';
import { CREDENTIAL_BODY_LIMIT } from '../http/body-limits.ts';
import { relayedClientAddress } from '../http/proxies.ts';
import { requestErrorStatus } from '../http/request-errors.ts';
import type { Authenticator } from '../identity/authenticator.ts';
import type { CredentialRef } from '../identity/principal.ts';
import type { Permission, ServiceRegistry } from '../identity/services.ts';
import { permits } from '../identity/services.ts';
import type { Metrics } from '../observability/metrics.ts';
import { stringField } from './credentials.ts';
import { type Outcome, RESTAUTH_PROTOCOLS } from './restauth/answers.ts';
import {
  anyBody,
  callerOf,
  malformed,
  notFound,
  outcomeOfError,
  type RestAuthKit,
} from './restauth/common.ts';
import { groupRoutes } from './restauth/groups.ts';
import { negotiate, registerBodyParsers } from './restauth/negotiation.ts';
import { propertyRoutes } from './restauth/properties.ts';
import { userRoutes } from './restauth/users.ts';

export interface RestAuthOptions {
  authenticator: Authenticator;
  services: ServiceRegistry;
  metrics: Metrics;
}

const REALM = 'Basic realm="wharf RestAuth", charset="UTF-8"';

/** Where the RestAuth API is mounted unless `auth.restauth.pathPrefix` says otherwise. */
export const RESTAUTH_PREFIX = '/restauth';

/**
 * The RestAuth API: services authenticate with HTTP Basic and need a permission per operation.
 * Each service speaks one revision of the protocol (`protocol`: the reference document's, or the
 * released 0.6 server's); the handlers find outcomes and the caller's revision answers them
 * (restauth/answers.ts). Mounted at `auth.restauth.pathPrefix`.
 */
export async function restAuthRoutes(app: FastifyInstance, options: RestAuthOptions): Promise<void> {
  const { authenticator, services, metrics } = options;
  app.decorateRequest('restauthCall', null);
  registerBodyParsers(app);

  // Fastify's own refusals (a body over the limit, malformed JSON, 415, schema) in the caller's
  // revision; the handlers' refusals are outcomes already (restAuthRoute).
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const call = request.restauthCall;
    const protocol = call?.protocol ?? RESTAUTH_PROTOCOLS.reference;
    const status = requestErrorStatus(error);
    if (status !== null) return protocol.error(reply, status, error.message);
    let outcome: Outcome;
    try {
      outcome = outcomeOfError(error);
    } catch {
      request.log.error({ err: error }, 'RestAuth request failed');
      return protocol.error(reply, 500, 'internal error');
    }
    return protocol.answer(reply, outcome, call?.format ?? 'json');
  });

  // Who calls, and so which revision answers: resolved once, kept on the request.
  app.addHook('onRequest', async (request, reply) => {
    const credentials = parseAuthorization(request.headers.authorization);
    const service =
      credentials.type === 'basic'
        ? await services.authenticate(credentials.username, credentials.password)
        : null;
    metrics.authentication('service', service !== null);
    if (!service) {
      reply.header('www-authenticate', REALM);
      return RESTAUTH_PROTOCOLS.reference.error(reply, 401, 'service authentication required');
    }
    const protocol = RESTAUTH_PROTOCOLS[service.protocol];
    const format = protocol.negotiates ? negotiate(request.headers.accept) : 'json';
    if (format === null) {
      request.restauthCall = { service, protocol, format: 'json' };
      return protocol.error(
        reply,
        406,
        'acceptable formats: application/json, application/x-www-form-urlencoded',
      );
    }
    request.restauthCall = { service, protocol, format };
  });

  // Authorization, declared by each route's config: its revisions, then its permission.
  app.addHook('preHandler', async (request, reply) => {
    const { service, protocol, format } = callerOf(request);
    const config = request.routeOptions.config;
    if (config.restauthProtocols && !config.restauthProtocols.includes(service.protocol))
      return protocol.error(reply, 404, `not part of the ${service.protocol} protocol`);
    const permission = config.restauthPermission;
    if (permission && !permits(service.permissions, permission))
      return protocol.answer(
        reply,
        { kind: 'forbidden', message: `service ${service.name} lacks permission ${permission}` },
        format,
      );
  });

  const kit: RestAuthKit = {
    authenticator,
    directory: authenticator.directory,
    origin(request) {
      const { service } = callerOf(request);
      // X-Forwarded-For from any other service is ignored: its users are told apart by name only.
      const address = service.forwardsClientAddress ? relayedClientAddress(request) : undefined;
      return { service: service.name, ...(address ? { address } : {}) };
    },
  };

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
    '/test/users': ['POST'],
    '/test/groups': ['POST'],
    '/test/users/:name/props': ['POST'],
    '/verify': ['POST'],
  };
  for (const [url, methods] of Object.entries(supported)) {
    const others = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'].filter((method) => !methods.includes(method));
    app.route({
      method: others,
      url,
      handler: async (request, reply) =>
        callerOf(request).protocol.error(
          reply.header('allow', methods.join(', ')),
          405,
          'method not allowed',
        ),
    });
  }

  // ---- token check for registries ---------------------------------------------------------------

  /**
   * Who a credential is: `{token}`, or `{username, password}` where the password may be one of the
   * user's API tokens, or `{credential, scopes}` (a reference from an earlier answer: is it still
   * good, and who is the user now?). 200 with the principal, 404 when the credential is wrong,
   * revoked or its user gone or disabled (one answer for all). A wharf extension: JSON in every
   * revision; its permission depends on the body, so it is checked here.
   */
  app.post(
    '/verify',
    { schema: { body: anyBody }, bodyLimit: CREDENTIAL_BODY_LIMIT },
    async (request, reply) => {
      const { protocol, format, service } = callerOf(request);
      const denied = (permission: Permission): Outcome | null =>
        permits(service.permissions, permission)
          ? null
          : { kind: 'forbidden', message: `service ${service.name} lacks permission ${permission}` };
      let outcome: Outcome;
      try {
        outcome = await verify(request.body, denied, kit.origin(request));
      } catch (error) {
        outcome = outcomeOfError(error);
      }
      return protocol.answer(reply, outcome, format);
    },
  );
  async function verify(
    body: unknown,
    denied: (permission: Permission) => Outcome | null,
    from: ReturnType<RestAuthKit['origin']>,
  ): Promise<Outcome> {
    const credential = credentialRefOf(body);
    if (credential !== undefined) {
      const refused = denied('token_verify');
      if (refused) return refused;
      if (credential === null) return malformed('credential is not a credential reference');
      const scopes = (body as { scopes?: unknown }).scopes;
      const principal = await authenticator.revalidate(
        credential,
        Array.isArray(scopes) && scopes.every((s) => typeof s === 'string') ? scopes : null,
      );
      return principal ? { kind: 'json', value: principal } : notFound('user', 'for this credential');
    }
    const token = stringField(body, 'token');
    const username = stringField(body, 'username');
    const password = stringField(body, 'password');
    if (token !== undefined) {
      const refused = denied('token_verify');
      if (refused) return refused;
      const principal = await authenticator.verifyToken(token);
      return principal ? { kind: 'json', value: principal } : notFound('user', 'for this token');
    }
    if (username === undefined || password === undefined)
      return malformed('token, or username and password, are required');
    const refused = denied('user_verify_password');
    if (refused) return refused;
    const principal = await authenticator.verifyPassword(username, password, from);
    return principal ? { kind: 'json', value: principal } : notFound('user', username);
  }
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
