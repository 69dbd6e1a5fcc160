import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { AccessPolicy } from '../access/policy.ts';
import type { AuthConfig } from '../config/types.ts';
import { parseAuthorization } from '../http/authorization.ts';
import { CREDENTIAL_BODY_LIMIT, defaultBodyLimit } from '../http/body-limits.ts';
import { clientAddress } from '../http/proxies.ts';
import { requestErrorStatus } from '../http/request-errors.ts';
import type { Authenticator } from '../identity/authenticator.ts';
import type { CredentialResolver } from '../identity/credential-resolver.ts';
import { IdentityError } from '../identity/directory.ts';
import { isAcceptablePassword } from '../identity/names.ts';
import { PasswordQueueFullError } from '../identity/password-pool.ts';
import type { Principal } from '../identity/principal.ts';
import { sendThrottled } from './credentials.ts';

export interface KtraOptions {
  authenticator: Authenticator;
  resolver: CredentialResolver;
  policy: AccessPolicy;
  signup: AuthConfig['signup'];
}

const nameParams = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } as const;
const passwordBody = {
  type: 'object',
  properties: { password: { type: 'string' } },
  required: ['password'],
} as const;
const changeBody = {
  type: 'object',
  properties: { old_password: { type: 'string' }, new_password: { type: 'string' } },
  required: ['old_password', 'new_password'],
} as const;

const tokenReply = {
  200: { type: 'object', properties: { token: { type: 'string' } }, required: ['token'] },
} as const;

/** Ktra's error body: `{"errors":[{"detail":"…"}]}` (what cargo prints). */
export function ktraError(reply: FastifyReply, status: number, detail: string): FastifyReply {
  return reply.code(status).send({ errors: [{ detail }] });
}

/**
 * Ktra's user endpoints (`/ktra/api/v1/new_user|login|change_password/{name}`), exactly as Ktra's
 * web API documents them: JSON in, `{token}` out. Each answer carries a fresh token and revokes
 * the user's previous Ktra token (one per user).
 */
export async function ktraRoutes(app: FastifyInstance, options: KtraOptions): Promise<void> {
  const { authenticator, resolver, policy, signup } = options;
  const directory = authenticator.directory;
  const badCredentials = 'invalid username or password';
  defaultBodyLimit(app, CREDENTIAL_BODY_LIMIT);

  app.setErrorHandler((error: FastifyError, _request, reply) => {
    if (error instanceof PasswordQueueFullError) {
      reply.header('retry-after', String(error.retryAfterSeconds));
      return ktraError(reply, 503, error.message);
    }
    const status = requestErrorStatus(error);
    if (status !== null) return ktraError(reply, status, error.message);
    app.log.error({ err: error }, 'ktra endpoint failed');
    return ktraError(reply, 500, 'internal error');
  });

  app.post<{ Params: { name: string }; Body: { password: string } }>(
    '/new_user/:name',
    { schema: { params: nameParams, body: passwordBody, response: tokenReply } },
    async (request, reply) => {
      if (signup === 'disabled') return ktraError(reply, 403, 'signup is disabled');
      if (signup === 'admin') {
        let caller: Principal | null;
        try {
          caller = await resolver.fromCredentials(
            parseAuthorization(request.headers.authorization),
            clientAddress(request),
          );
        } catch (error) {
          return sendThrottled(error, reply, { errors: [{ detail: 'too many failed attempts' }] });
        }
        if (!caller) {
          reply.header('www-authenticate', 'Basic realm="wharf"');
          return ktraError(reply, 401, 'only an administrator may create users: authenticate as one');
        }
        if (!policy.decide(caller, { operation: 'account.admin' }).allowed)
          return ktraError(reply, 403, 'only an administrator may create users');
      }
      try {
        const user = await directory.createUser(request.params.name, request.body.password);
        const issued = await directory.issueToken(user.name, { kind: 'ktra' });
        if (!issued) return ktraError(reply, 404, 'user vanished while being created');
        return { token: issued.token };
      } catch (error) {
        if (!(error instanceof IdentityError)) throw error;
        return ktraError(reply, error.reason === 'exists' ? 409 : 400, error.message);
      }
    },
  );

  app.post<{ Params: { name: string }; Body: { password: string } }>(
    '/login/:name',
    { schema: { params: nameParams, body: passwordBody, response: tokenReply } },
    async (request, reply) => {
      try {
        const user = await authenticator.checkPassword(
          request.params.name,
          request.body.password,
          clientAddress(request),
        );
        if (!user) return ktraError(reply, 403, badCredentials);
        const issued = await directory.issueToken(user.name, { kind: 'ktra' });
        if (!issued) return ktraError(reply, 403, badCredentials);
        return { token: issued.token };
      } catch (error) {
        return sendThrottled(error, reply, { errors: [{ detail: 'too many failed attempts' }] });
      }
    },
  );

  app.post<{ Params: { name: string }; Body: { old_password: string; new_password: string } }>(
    '/change_password/:name',
    { schema: { params: nameParams, body: changeBody, response: tokenReply } },
    async (request, reply) => {
      try {
        const user = await authenticator.checkPassword(
          request.params.name,
          request.body.old_password,
          clientAddress(request),
        );
        if (!user) return ktraError(reply, 403, badCredentials);
        if (!isAcceptablePassword(request.body.new_password))
          return ktraError(reply, 400, 'password must be 8 to 256 characters');
        await directory.setPassword(user.name, request.body.new_password);
        const issued = await directory.issueToken(user.name, { kind: 'ktra' });
        if (!issued) return ktraError(reply, 403, badCredentials);
        return { token: issued.token };
      } catch (error) {
        return sendThrottled(error, reply, { errors: [{ detail: 'too many failed attempts' }] });
      }
    },
  );
}
