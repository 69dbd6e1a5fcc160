import { randomBytes } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authenticator } from '../identity/authenticator.ts';
import { IdentityError, TOKEN_SCOPES, type TokenEntry, type UserRecord } from '../identity/directory.ts';
import type { Principal } from '../identity/principal.ts';
import { isValidPermission, isValidServiceName, type ServiceRegistry } from '../identity/services.ts';
import { authenticateRequest, sendThrottled } from './credentials.ts';
import { ktraError } from './ktra.ts';

export interface AdminApiOptions {
  authenticator: Authenticator;
  services: ServiceRegistry;
}

const idParams = { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } as const;
const nameParams = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } as const;

const newTokenBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 64 },
    scopes: { type: 'array', items: { enum: [...TOKEN_SCOPES] }, uniqueItems: true },
    expiresAt: { type: 'string', format: 'date-time' },
    expiresInSeconds: { type: 'integer', minimum: 1 },
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
  },
  required: ['permissions'],
} as const;
type ServiceBody = { password?: string; permissions: string[]; forwardsClientAddress?: boolean };

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
  const { authenticator, services } = options;
  const directory = authenticator.directory;
  const principals = new WeakMap<FastifyRequest, Principal>();

  app.setErrorHandler((error: FastifyError, _request, reply) => {
    if (error.validation) return ktraError(reply, 400, error.message);
    if ((error.statusCode ?? 500) < 500) return ktraError(reply, error.statusCode ?? 400, error.message);
    app.log.error({ err: error }, 'auth API request failed');
    return ktraError(reply, 500, 'internal error');
  });

  app.addHook('onRequest', async (request, reply) => {
    let principal: Principal | null;
    try {
      principal = await authenticateRequest(authenticator, request);
    } catch (error) {
      return sendThrottled(error, reply, { errors: [{ detail: 'too many failed attempts' }] });
    }
    if (!principal) {
      reply.header('www-authenticate', 'Basic realm="wharf"');
      return ktraError(reply, 401, 'authentication required: a token or a username and password');
    }
    principals.set(request, principal);
  });

  const caller = (request: FastifyRequest) => principals.get(request)!;
  /** Managing credentials needs a password or an unrestricted token, never a scoped one. */
  const unrestricted = (request: FastifyRequest, reply: FastifyReply): boolean => {
    if (caller(request).scopes === null) return true;
    ktraError(reply, 403, 'a scoped token cannot manage credentials');
    return false;
  };
  const adminOnly = (request: FastifyRequest, reply: FastifyReply): boolean => {
    if (!unrestricted(request, reply)) return false;
    if (caller(request).admin) return true;
    ktraError(reply, 403, 'administrators only');
    return false;
  };
  const refused = (reply: FastifyReply, error: unknown) => {
    if (!(error instanceof IdentityError)) throw error;
    const status = { invalid: 400, exists: 409, 'not-found': 404, forbidden: 403 }[error.reason];
    return ktraError(reply, status, error.message);
  };

  app.get('/me', async (request) => caller(request));

  // ---- named tokens ------------------------------------------------------------------------------

  app.get('/tokens', async (request) => {
    const tokens = (await directory.listTokens(caller(request).name)) ?? [];
    return { tokens: tokens.map(describeToken) };
  });

  app.post<{ Body: { name: string; scopes?: string[]; expiresAt?: string; expiresInSeconds?: number } }>(
    '/tokens',
    { schema: { body: newTokenBody } },
    async (request, reply) => {
      if (!unrestricted(request, reply)) return reply;
      const { name, scopes, expiresAt, expiresInSeconds } = request.body;
      const expiry =
        expiresInSeconds !== undefined
          ? new Date(Date.now() + expiresInSeconds * 1000).toISOString()
          : expiresAt;
      try {
        const issued = await directory.issueToken(caller(request).name, {
          kind: 'named',
          name,
          scopes: scopes ?? null,
          expiresAt: expiry ?? null,
        });
        if (!issued) return ktraError(reply, 404, 'user not found');
        // The only time the token is shown: it is stored as a hash.
        return reply.code(201).send({ ...describeToken(issued.entry), token: issued.token });
      } catch (error) {
        return refused(reply, error);
      }
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/tokens/:id',
    { schema: { params: idParams } },
    async (request, reply) => {
      if (!unrestricted(request, reply)) return reply;
      if (!(await directory.revokeToken(caller(request).name, request.params.id)))
        return ktraError(reply, 404, 'no such token');
      return reply.code(204).send();
    },
  );

  // ---- users (administrators) ----------------------------------------------------------------------

  app.get('/users', async (request, reply) => {
    if (!adminOnly(request, reply)) return reply;
    return { users: await directory.listUsers() };
  });

  app.post<{ Body: { username: string; password?: string; admin?: boolean } }>(
    '/users',
    { schema: { body: newUserBody } },
    async (request, reply) => {
      if (!adminOnly(request, reply)) return reply;
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
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!adminOnly(request, reply)) return reply;
      const user = await directory.getUser(request.params.name);
      return user ? describeUser(user) : ktraError(reply, 404, 'user not found');
    },
  );

  app.patch<{
    Params: { name: string };
    Body: { password?: string | null; disabled?: boolean; admin?: boolean };
  }>('/users/:name', { schema: { params: nameParams, body: patchUserBody } }, async (request, reply) => {
    if (!adminOnly(request, reply)) return reply;
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
  });

  app.delete<{ Params: { name: string } }>(
    '/users/:name',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!adminOnly(request, reply)) return reply;
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
    },
    async (request, reply) => {
      if (!adminOnly(request, reply)) return reply;
      if (!(await directory.revokeToken(request.params.name, request.params.id)))
        return ktraError(reply, 404, 'no such token');
      return reply.code(204).send();
    },
  );

  // ---- RestAuth services (administrators) ------------------------------------------------------------

  app.get('/services', async (request, reply) => {
    if (!adminOnly(request, reply)) return reply;
    return { services: await services.list() };
  });

  /** Creates or replaces a stored service; without a password one is generated and shown once. */
  app.put<{ Params: { name: string }; Body: ServiceBody }>(
    '/services/:name',
    { schema: { params: nameParams, body: serviceBody } },
    async (request, reply) => {
      if (!adminOnly(request, reply)) return reply;
      const { name } = request.params;
      if (!isValidServiceName(name)) return ktraError(reply, 400, 'invalid service name');
      if (services.isConfigured(name))
        return ktraError(reply, 409, 'this service is declared in the configuration');
      const invalid = request.body.permissions.find((permission) => !isValidPermission(permission));
      if (invalid) return ktraError(reply, 400, `unknown permission ${JSON.stringify(invalid)}`);
      const password = request.body.password ?? randomBytes(24).toString('base64url');
      const { permissions, forwardsClientAddress = false } = request.body;
      const created = await services.put(name, password, permissions, { forwardsClientAddress });
      request.log.info(
        {
          audit: 'service.saved',
          service: name,
          permissions,
          forwardsClientAddress,
          by: caller(request).name,
        },
        'service.saved',
      );
      return reply.code(created ? 201 : 200).send({
        name,
        permissions,
        forwardsClientAddress,
        ...(request.body.password ? {} : { password }),
      });
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/services/:name',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!adminOnly(request, reply)) return reply;
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
