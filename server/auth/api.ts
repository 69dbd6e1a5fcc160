import { randomBytes } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccessPolicy } from '../access/policy.ts';
import { routeDecision } from '../access/route-access.ts';
import { parseAuthorization } from '../http/authorization.ts';
import { CREDENTIAL_BODY_LIMIT, defaultBodyLimit } from '../http/body-limits.ts';
import { clientAddress } from '../http/proxies.ts';
import { requestErrorStatus } from '../http/request-errors.ts';
import type { Authenticator } from '../identity/authenticator.ts';
import type { CredentialResolver } from '../identity/credential-resolver.ts';
import { IdentityError, type TokenEntry, type UserRecord } from '../identity/directory.ts';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH_FLOOR } from '../identity/names.ts';
import { PasswordQueueFullError } from '../identity/password-pool.ts';
import { ANONYMOUS, type Principal } from '../identity/principal.ts';
import { ScopeError, TOKEN_SCOPES, tokenScopes } from '../identity/scopes.ts';
import {
  isValidPermission,
  isValidServiceName,
  PROTOCOLS,
  profileOf,
  type ServiceProfile,
  type ServiceRegistry,
} from '../identity/services.ts';
import { readCookie, type SessionStore, sessionCaller } from '../registry/oci/api-v1/sessions.ts';
import { groupAdminRoutes } from './api-groups.ts';
import { browserSessionRoutes } from './browser-session.ts';
import { sendThrottled } from './credentials.ts';
import { ktraError } from './ktra.ts';
import { openIdLoginPath } from './openid/session-client.ts';

export interface AdminApiOptions {
  authenticator: Authenticator;
  /** The AuthService's own browser sessions (browser-session.ts): the web UI's account pages. */
  sessions: SessionStore;
  /** `publicUrl`: whether the session cookie is Secure (else the request's own scheme). */
  publicUrl: string | undefined;
  /** The OpenID providers configured here: the registry's sign-in page offers them. */
  openIdProviders: string[];
  resolver: CredentialResolver;
  policy: AccessPolicy;
  services: ServiceRegistry;
}

const idParams = { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } as const;
const nameParams = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } as const;

const newTokenBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 64 },
    scopes: { type: 'array', items: { enum: [...TOKEN_SCOPES] }, uniqueItems: true, maxItems: 32 },
    /** crates.io's crate scopes: crate names or prefixes ending in `*` (`serde*`). */
    crateScopes: { type: 'array', items: { type: 'string', maxLength: 65 }, uniqueItems: true, maxItems: 64 },
    expiresAt: { type: 'string', format: 'date-time' },
    /** At most ten years. */
    expiresInSeconds: { type: 'integer', minimum: 1, maximum: 315_360_000 },
  },
  required: ['name'],
} as const;

const newUserBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    username: { type: 'string' },
    password: { type: 'string' },
    admin: { type: 'boolean' },
  },
  required: ['username'],
} as const;

const patchUserBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    password: { type: ['string', 'null'] },
    disabled: { type: 'boolean' },
    admin: { type: 'boolean' },
  },
} as const;

const serviceBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    password: { type: 'string', minLength: 12 },
    permissions: { type: 'array', items: { type: 'string' } },
    forwardsClientAddress: { type: 'boolean' },
    protocol: { enum: [...PROTOCOLS] },
    userNames: { enum: ['registry', 'restauth'] },
    passwordMinLength: { type: 'integer', minimum: PASSWORD_MIN_LENGTH_FLOOR, maximum: PASSWORD_MAX_LENGTH },
    groups: { enum: ['shared', 'own'] },
  },
  required: ['permissions'],
} as const;
type ServiceBody = {
  password?: string;
  permissions: string[];
  forwardsClientAddress?: boolean;
} & Partial<ServiceProfile>;

/** A token as its owner sees it: never the secret, never the hash. */
function describeToken(token: TokenEntry) {
  return {
    id: token.id,
    name: token.name,
    kind: token.kind,
    scopes: token.scopes,
    expiresAt: token.expiresAt,
    createdAt: token.createdAt,
  };
}

function describeUser(user: UserRecord) {
  return {
    username: user.name,
    admin: user.admin,
    disabled: user.disabled,
    robot: user.robot,
    hasPassword: user.passwordHash !== null,
    createdAt: user.createdAt,
    properties: user.properties,
    tokens: user.tokens.map(describeToken),
  };
}

/**
 * wharf's own API under `/auth/api/v1`: a user's named tokens, and for administrators users and
 * RestAuth services. Authenticated by `Authorization: <token>`, `Bearer <token>` or Basic.
 * Errors use the cargo/Ktra shape `{"errors":[{"detail":"…"}]}`.
 */
export async function adminApiRoutes(app: FastifyInstance, options: AdminApiOptions): Promise<void> {
  const { authenticator, services, resolver, policy, sessions, publicUrl } = options;
  const directory = authenticator.directory;
  // Tokens, users and services: small JSON, and most of it carries a password.
  defaultBodyLimit(app, CREDENTIAL_BODY_LIMIT);

  app.setErrorHandler((error: FastifyError, _request, reply) => {
    if (error instanceof PasswordQueueFullError) {
      reply.header('retry-after', String(error.retryAfterSeconds));
      return ktraError(reply, 503, error.message);
    }
    const status = requestErrorStatus(error);
    if (status !== null) return ktraError(reply, status, error.message);
    app.log.error({ err: error }, 'auth API request failed');
    return ktraError(reply, 500, 'internal error');
  });

  // Every route needs a credential: refused before the body is read.
  // Set by the onRequest hook below before any handler runs (Fastify wants null here, not an object).
  app.decorateRequest('principal', null as unknown as Principal);
  app.decorateRequest('authSession', null);
  app.addHook('onRequest', async (request, reply) => {
    // Signing in (browser-session.ts) is the one thing done without a credential.
    if (request.routeOptions.config?.access === 'public') {
      request.principal = ANONYMOUS;
      return;
    }
    let principal: Principal | null;
    const credentials = parseAuthorization(request.headers.authorization);
    // A browser signed in to the web UI: its AuthService session (cookie + CSRF token), checked as
    // API v1 checks its own sessions.
    const browser =
      credentials.type === 'none' && readCookie(request.headers.cookie, sessions.cookie) !== undefined;
    try {
      if (browser) {
        const caller = await sessionCaller(request, sessions, resolver);
        if (caller === 'csrf-failure') return ktraError(reply, 403, 'CSRF token was invalid or missing');
        request.authSession = caller;
        principal = caller.principal.kind === 'anonymous' ? null : caller.principal;
      } else {
        principal = await resolver.fromCredentials(credentials, clientAddress(request));
      }
    } catch (error) {
      return sendThrottled(error, reply, { errors: [{ detail: 'too many failed attempts' }] });
    }
    if (!principal) {
      // Not to a browser (a session cookie, or Sec-Fetch-Site, which browsers put on every request and
      // no page can set; cargo, curl and Node's fetch do not send it): the challenge would open a
      // password dialog instead of the UI's sign-in page.
      const fromBrowser = browser || request.headers['sec-fetch-site'] !== undefined;
      if (!fromBrowser) reply.header('www-authenticate', 'Basic realm="wharf"');
      return ktraError(reply, 401, 'authentication required: a token or a username and password');
    }
    request.principal = principal;
  });
  // The one authorization check: what the route declared in `config.access`, asked of the policy.
  app.addHook('preHandler', async (request, reply) => {
    const decision = await routeDecision(policy, request.principal, request);
    if (decision && !decision.allowed) return ktraError(reply, 403, decision.message);
  });

  const caller = (request: FastifyRequest) => request.principal;
  const whoami = { access: { operation: 'account.read' } } as const;
  /** Creating and revoking credentials needs a password or an unrestricted token, never a scoped one. */
  const credentials = { access: { operation: 'account.credentials' } } as const;
  const adminOnly = { access: { operation: 'account.admin' } } as const;
  const refused = (reply: FastifyReply, error: unknown) => {
    if (!(error instanceof IdentityError)) throw error;
    const status = { invalid: 400, exists: 409, 'not-found': 404, forbidden: 403 }[error.reason];
    return ktraError(reply, status, error.message);
  };

  await app.register(browserSessionRoutes, { sessions, resolver, publicUrl });

  // Public: which providers people may sign in with (a registry in another process asks here).
  app.get('/openid/providers', { config: { access: 'public' } }, async () => ({
    providers: options.openIdProviders.map((name) => ({ name, login: openIdLoginPath(name) })),
  }));

  app.get('/me', { config: whoami }, async (request) => caller(request));

  // ---- named tokens ------------------------------------------------------------------------------

  app.get('/tokens', { config: whoami }, async (request) => {
    const tokens = (await directory.listTokens(caller(request).name)) ?? [];
    return { tokens: tokens.map(describeToken) };
  });

  app.post<{
    Body: {
      name: string;
      scopes?: string[];
      crateScopes?: string[];
      expiresAt?: string;
      expiresInSeconds?: number;
    };
  }>('/tokens', { schema: { body: newTokenBody }, config: credentials }, async (request, reply) => {
    const { name, scopes, crateScopes, expiresAt, expiresInSeconds } = request.body;
    const expiry =
      expiresInSeconds !== undefined
        ? new Date(Date.now() + expiresInSeconds * 1000).toISOString()
        : expiresAt;
    try {
      const issued = await directory.issueToken(caller(request).name, {
        kind: 'named',
        name,
        scopes: tokenScopes(scopes ?? null, crateScopes ?? []),
        expiresAt: expiry ?? null,
      });
      if (!issued) return ktraError(reply, 404, 'user not found');
      // The only time the token is shown: it is stored as a hash.
      return reply.code(201).send({ ...describeToken(issued.entry), token: issued.token });
    } catch (error) {
      if (error instanceof ScopeError) return ktraError(reply, 400, error.message);
      return refused(reply, error);
    }
  });

  app.delete<{ Params: { id: string } }>(
    '/tokens/:id',
    { schema: { params: idParams }, config: credentials },
    async (request, reply) => {
      if (!(await directory.revokeToken(caller(request).name, request.params.id)))
        return ktraError(reply, 404, 'no such token');
      return reply.code(204).send();
    },
  );

  // ---- users (administrators) ----------------------------------------------------------------------

  app.get('/users', { config: adminOnly }, async () => {
    return { users: await directory.listUsers() };
  });

  app.post<{ Body: { username: string; password?: string; admin?: boolean } }>(
    '/users',
    { schema: { body: newUserBody }, config: adminOnly },
    async (request, reply) => {
      try {
        const { username, password, admin } = request.body;
        const user = await directory.createUser(username, password ?? null, { admin: admin ?? false });
        return reply.code(201).send(describeUser(user));
      } catch (error) {
        return refused(reply, error);
      }
    },
  );

  app.get<{ Params: { name: string } }>(
    '/users/:name',
    { schema: { params: nameParams }, config: adminOnly },
    async (request, reply) => {
      const user = await directory.getUser(request.params.name);
      return user ? describeUser(user) : ktraError(reply, 404, 'user not found');
    },
  );

  app.patch<{
    Params: { name: string };
    Body: { password?: string | null; disabled?: boolean; admin?: boolean };
  }>(
    '/users/:name',
    { schema: { params: nameParams, body: patchUserBody }, config: adminOnly },
    async (request, reply) => {
      const { password, disabled, admin } = request.body;
      try {
        if (password !== undefined && !(await directory.setPassword(request.params.name, password)))
          return ktraError(reply, 404, 'user not found');
        const user = await directory.setFlags(request.params.name, {
          ...(disabled !== undefined ? { disabled } : {}),
          ...(admin !== undefined ? { admin } : {}),
        });
        return user ? describeUser(user) : ktraError(reply, 404, 'user not found');
      } catch (error) {
        return refused(reply, error);
      }
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/users/:name',
    { schema: { params: nameParams }, config: adminOnly },
    async (request, reply) => {
      if (!(await directory.deleteUser(request.params.name))) return ktraError(reply, 404, 'user not found');
      return reply.code(204).send();
    },
  );

  /** Revokes someone else's token, e.g. one leaked in a CI log. */
  app.delete<{ Params: { name: string; id: string } }>(
    '/users/:name/tokens/:id',
    {
      schema: {
        params: {
          type: 'object',
          properties: { name: { type: 'string' }, id: { type: 'string' } },
          required: ['name', 'id'],
        },
      },
      config: adminOnly,
    },
    async (request, reply) => {
      if (!(await directory.revokeToken(request.params.name, request.params.id)))
        return ktraError(reply, 404, 'no such token');
      return reply.code(204).send();
    },
  );

  groupAdminRoutes(app, { directory, access: adminOnly, refused });

  // ---- RestAuth services (administrators) ------------------------------------------------------------

  app.get('/services', { config: adminOnly }, async () => {
    return { services: await services.list() };
  });

  /** Creates or replaces a stored service; without a password one is generated and shown once. */
  app.put<{ Params: { name: string }; Body: ServiceBody }>(
    '/services/:name',
    { schema: { params: nameParams, body: serviceBody }, config: adminOnly },
    async (request, reply) => {
      const { name } = request.params;
      if (!isValidServiceName(name)) return ktraError(reply, 400, 'invalid service name');
      if (services.isConfigured(name))
        return ktraError(reply, 409, 'this service is declared in the configuration');
      const invalid = request.body.permissions.find((permission) => !isValidPermission(permission));
      if (invalid) return ktraError(reply, 400, `unknown permission ${JSON.stringify(invalid)}`);
      const password = request.body.password ?? randomBytes(24).toString('base64url');
      const { permissions, forwardsClientAddress = false } = request.body;
      const profile = profileOf(request.body);
      const created = await services.put(name, password, permissions, { forwardsClientAddress, ...profile });
      request.log.info(
        {
          audit: 'service.saved',
          service: name,
          permissions,
          forwardsClientAddress,
          ...profile,
          by: caller(request).name,
        },
        'service.saved',
      );
      return reply.code(created ? 201 : 200).send({
        name,
        permissions,
        forwardsClientAddress,
        ...profile,
        ...(request.body.password ? {} : { password }),
      });
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/services/:name',
    { schema: { params: nameParams }, config: adminOnly },
    async (request, reply) => {
      if (services.isConfigured(request.params.name))
        return ktraError(reply, 409, 'this service is declared in the configuration');
      if (!(await services.delete(request.params.name))) return ktraError(reply, 404, 'no such service');
      request.log.info(
        { audit: 'service.deleted', service: request.params.name, by: caller(request).name },
        'service.deleted',
      );
      return reply.code(204).send();
    },
  );
}
