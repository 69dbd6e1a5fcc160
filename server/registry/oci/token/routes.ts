import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { parseAuthorization } from '../../../http/authorization.ts';
import { CREDENTIAL_BODY_LIMIT, isBodyTooLarge } from '../../../http/body-limits.ts';
import { clientAddress } from '../../../http/proxies.ts';
import { requestErrorStatus } from '../../../http/request-errors.ts';
import { PasswordQueueFullError } from '../../../identity/password-pool.ts';
import { ANONYMOUS, type Principal } from '../../../identity/principal.ts';
import { TooManyAttemptsError } from '../../../identity/rate-limit.ts';
import { OciError, sendOciError } from '../errors.ts';
import { isRepositoryName } from '../names.ts';
import type { OciServices } from '../services.ts';
import { parseScopes, type Scope } from './scope.ts';
import type { Access } from './tokens.ts';

export const TOKEN_PATH = '/v2/auth';

interface TokenQuery {
  service?: string;
  scope?: string | string[];
  offline_token?: string;
  client_id?: string;
  account?: string;
}

interface TokenForm {
  grant_type?: string;
  service?: string;
  client_id?: string;
  access_type?: string;
  scope?: string;
  username?: string;
  password?: string;
  refresh_token?: string;
}

/**
 * The Docker token endpoint (GET with Basic credentials, POST with OAuth2 grants) and the JWKS
 * registries and tools use to verify its tokens. Granted actions are the requested ones the caller
 * may perform; a partial grant is not an error (the registry refuses later).
 */
export async function tokenRoutes(
  app: FastifyInstance,
  { services }: { services: OciServices },
): Promise<void> {
  const { tokens, resolver } = services;

  // A token request is a credential and a few scopes: refused past CREDENTIAL_BODY_LIMIT, in OAuth's
  // form. Fastify's other refusals (an unparseable form, a wrong grant type) keep their status:
  // OAuth2's error body for the POST grants, the registry's error format for the GET.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (isBodyTooLarge(error))
      return reply.code(413).send({ error: 'invalid_request', error_description: 'request body too large' });
    const status = requestErrorStatus(error);
    if (status === null) request.log.error({ err: error }, 'token request failed');
    if (request.method === 'POST')
      return oauthError(reply, status ?? 500, status === null ? 'server_error' : 'invalid_request');
    return sendOciError(
      reply,
      status === null
        ? new OciError('UNKNOWN', 'the registry failed to handle the request')
        : new OciError('UNSUPPORTED', error.message, { status }),
    );
  });

  app.get<{ Querystring: TokenQuery }>(
    TOKEN_PATH,
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            service: { type: 'string' },
            scope: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
            offline_token: { type: 'string' },
            client_id: { type: 'string' },
            account: { type: 'string' },
          },
        },
      },
    },
    async (request, reply) => {
      let principal: Principal = ANONYMOUS;
      const credentials = parseAuthorization(request.headers.authorization);
      if (credentials.type === 'token' || credentials.type === 'malformed')
        return unauthorized(reply, 'unsupported credentials: use HTTP Basic');
      if (credentials.type === 'basic') {
        let checked: Principal | null;
        try {
          checked = await resolver.basic(credentials.username, credentials.password, clientAddress(request));
        } catch (error) {
          return throttled(reply, error);
        }
        if (!checked) return unauthorized(reply, 'invalid username or password');
        principal = checked;
      }
      const access = await grant(services, principal, parseScopes(request.query.scope));
      const issued = await tokens.issue(principal, access);
      const body: Record<string, unknown> = {
        token: issued.token,
        access_token: issued.token,
        expires_in: issued.expiresIn,
        issued_at: issued.issuedAt.toISOString(),
      };
      if (request.query.offline_token === 'true' && principal.kind !== 'anonymous') {
        body.refresh_token = await tokens.issueRefresh(principal);
      }
      return reply.header('cache-control', 'no-store').send(body);
    },
  );

  app.post<{ Body: TokenForm }>(
    TOKEN_PATH,
    {
      bodyLimit: CREDENTIAL_BODY_LIMIT,
      schema: {
        body: {
          type: 'object',
          properties: {
            grant_type: { enum: ['password', 'refresh_token', 'authorization_code'] },
            service: { type: 'string' },
            client_id: { type: 'string' },
            access_type: { type: 'string' },
            scope: { type: 'string' },
            username: { type: 'string' },
            password: { type: 'string' },
            refresh_token: { type: 'string' },
          },
          required: ['grant_type'],
        },
      },
    },
    async (request, reply) => {
      const form = request.body;
      let principal: Principal | null = null;
      if (form.grant_type === 'password') {
        if (!form.username || form.password === undefined) return oauthError(reply, 400, 'invalid_request');
        try {
          principal = await resolver.basic(form.username, form.password, clientAddress(request));
        } catch (error) {
          return throttled(reply, error);
        }
      } else if (form.grant_type === 'refresh_token') {
        if (!form.refresh_token) return oauthError(reply, 400, 'invalid_request');
        // A refresh token lives for days: it holds only while the credential it came from does.
        const refreshed = await tokens.verifyRefresh(form.refresh_token);
        principal = refreshed ? await resolver.current(refreshed) : null;
        services.metrics.authentication('refresh_token', principal !== null);
      } else {
        return oauthError(reply, 400, 'unsupported_grant_type');
      }
      if (!principal) return oauthError(reply, 401, 'invalid_grant');
      const access = await grant(services, principal, parseScopes(form.scope));
      const issued = await tokens.issue(principal, access);
      const body: Record<string, unknown> = {
        access_token: issued.token,
        token: issued.token,
        scope: access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`).join(' '),
        expires_in: issued.expiresIn,
        issued_at: issued.issuedAt.toISOString(),
      };
      if (form.access_type === 'offline') body.refresh_token = await tokens.issueRefresh(principal);
      else if (form.grant_type === 'refresh_token') body.refresh_token = form.refresh_token;
      return reply.header('cache-control', 'no-store').send(body);
    },
  );

  app.get(`${TOKEN_PATH}/jwks`, async (_request: FastifyRequest, reply: FastifyReply) =>
    reply.header('cache-control', 'public, max-age=60').send(services.keys.jwks()),
  );
}

/**
 * Requested ∩ permitted, per scope, as the access policy decides for this principal (its account's
 * roles and its token's scopes). Granting creates nothing: a repository appears when something is
 * pushed into it. `*` is granted when pull, push and delete all are.
 */
export async function grant(services: OciServices, principal: Principal, scopes: Scope[]): Promise<Access[]> {
  const merged = new Map<string, Access>();
  for (const scope of scopes) {
    let actions: string[] = [];
    if (scope.type === 'registry' && scope.name === 'catalog') {
      const catalog = services.policy.decide(principal, { operation: 'oci.catalog' }).allowed;
      actions = catalog && scope.actions.includes('*') ? ['*'] : [];
    } else if (scope.type === 'repository' && isRepositoryName(scope.name)) {
      const record = await services.repositories.get(scope.name);
      const allows = (action: RepositoryAction) =>
        services.policy.decide(principal, { operation: `oci.${action}`, repository: scope.name, record })
          .allowed;
      const requested = scope.actions.includes('*') ? [...REPOSITORY_ACTIONS] : scope.actions;
      actions = requested.filter(
        (action): action is RepositoryAction => isRepositoryAction(action) && allows(action),
      );
      if (scope.actions.includes('*') && REPOSITORY_ACTIONS.every(allows)) actions = ['*', ...actions];
    }
    const key = `${scope.type}:${scope.name}`;
    const entry = merged.get(key) ?? { type: scope.type, name: scope.name, actions: [] };
    entry.actions = [...new Set([...entry.actions, ...actions])];
    merged.set(key, entry);
  }
  return [...merged.values()];
}

const REPOSITORY_ACTIONS = ['pull', 'push', 'delete'] as const;
type RepositoryAction = (typeof REPOSITORY_ACTIONS)[number];

function isRepositoryAction(action: string): action is RepositoryAction {
  return (REPOSITORY_ACTIONS as readonly string[]).includes(action);
}

function unauthorized(reply: FastifyReply, message: string): FastifyReply {
  return reply
    .code(401)
    .header('www-authenticate', 'Basic realm="wharf"')
    .send({ errors: [{ code: 'UNAUTHORIZED', message, detail: null }] });
}

/**
 * The AuthService refused the password check, in the registry's error format: its rate limit (429)
 * or its full password queue (503, distribution's UNAVAILABLE).
 */
function throttled(reply: FastifyReply, error: unknown): FastifyReply {
  if (error instanceof PasswordQueueFullError) {
    return reply
      .code(503)
      .header('retry-after', String(error.retryAfterSeconds))
      .send({
        errors: [
          {
            code: 'UNAVAILABLE',
            message: 'password checks are busy, retry later',
            detail: { retryAfterSeconds: error.retryAfterSeconds },
          },
        ],
      });
  }
  if (!(error instanceof TooManyAttemptsError)) throw error;
  return reply
    .code(429)
    .header('retry-after', String(error.retryAfterSeconds))
    .send({
      errors: [
        {
          code: 'TOOMANYREQUESTS',
          message: 'too many failed login attempts',
          detail: { retryAfterSeconds: error.retryAfterSeconds },
        },
      ],
    });
}

function oauthError(reply: FastifyReply, status: number, error: string): FastifyReply {
  return reply.code(status).send({ error });
}
