import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { routeDecision } from '../../../access/route-access.ts';
import { openIdLoginUrl, openIdSessionOf, SAFE_RETURN_PATH } from '../../../auth/openid/session-client.ts';
import { parseAuthorization } from '../../../http/authorization.ts';
import { CREDENTIAL_BODY_LIMIT } from '../../../http/body-limits.ts';
import { clientAddress } from '../../../http/proxies.ts';
import { requestErrorStatus } from '../../../http/request-errors.ts';
import { PasswordQueueFullError } from '../../../identity/password-pool.ts';
import { TooManyAttemptsError } from '../../../identity/rate-limit.ts';
import { isNamespaceName, isRepositoryName } from '../names.ts';
import type { Repository } from '../permissions.ts';
import { ROBOT_NAME, robotFullName } from '../robots.ts';
import type { OciServices } from '../services.ts';
import { type ApiCaller, ApiError, callerOf, invalid, notFound, refusal, sendError } from './caller.ts';
import { describeRepository, repositoryRoutes } from './repository-routes.ts';
import { SESSION_COOKIE, SessionStore, sessionCaller } from './sessions.ts';

const SESSION_SECONDS = 12 * 3600;
/** Quay's page size of /api/v1/find/repositories. */
const FIND_PAGE_SIZE = 10;

/**
 * The Quay-style API v1: sessions (cookie + CSRF token, stored so any replica serves them) or
 * bearer API tokens; HTTP Basic is refused. The caller is established before the body is read;
 * every route declares what it needs in `config.access`, and one preHandler asks the access policy.
 * A session stands on the credential it was opened with: it ends (anonymous) as soon as that
 * credential is revoked, the user disabled or deleted (within `registry.credentialCacheSeconds`).
 */
export async function apiV1Routes(
  app: FastifyInstance,
  { services, authUrl }: { services: OciServices; authUrl?: string | undefined },
): Promise<void> {
  const sessions = new SessionStore(services.store);
  const secure = services.publicUrl?.startsWith('https:') ?? false;
  const { repositories, robots, policy, resolver } = services;

  app.decorateRequest('apiCaller', null);

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof ApiError) return sendError(reply, error.status, error.type, error.message);
    if (error instanceof TooManyAttemptsError) {
      reply.header('retry-after', String(error.retryAfterSeconds));
      return sendError(reply, 429, 'too_many_requests', 'too many failed login attempts, retry later');
    }
    if (error instanceof PasswordQueueFullError) {
      reply.header('retry-after', String(error.retryAfterSeconds));
      return sendError(reply, 503, 'service_unavailable', 'password checks are busy, retry later');
    }
    // Fastify's own refusals (malformed JSON, body too large, unsupported content type, a schema,
    // a handler timeout) keep their status.
    const status = requestErrorStatus(error);
    if (status !== null)
      return sendError(reply, status, status === 503 ? 'timeout' : 'invalid_request', error.message);
    request.log.error({ err: error }, 'API v1 request failed');
    return sendError(reply, 500, 'internal_error', 'internal error');
  });

  /** Before the body is read: who is calling, and the CSRF check for sessions. */
  app.addHook('onRequest', async (request) => {
    request.apiCaller = await authenticate(request);
  });

  /** The one authorization check of API v1: what the route declared, asked of the access policy. */
  app.addHook('preHandler', async (request) => {
    const decision = await routeDecision(policy, callerOf(request).principal, request);
    if (decision && !decision.allowed) throw refusal(decision);
  });

  async function authenticate(request: FastifyRequest): Promise<ApiCaller> {
    const credentials = parseAuthorization(request.headers.authorization);
    if (credentials.type === 'basic' || credentials.type === 'malformed')
      throw new ApiError(
        401,
        'invalid_token',
        'HTTP Basic is not accepted on API v1: use a session or a bearer token',
      );
    if (credentials.type === 'token') {
      const principal = await resolver.token(credentials.token);
      if (!principal) throw new ApiError(401, 'invalid_token', 'invalid token');
      return { principal, session: null, sessionId: undefined };
    }
    const caller = await sessionCaller(request, sessions, resolver);
    if (caller === 'csrf-failure')
      throw new ApiError(403, 'csrf_failure', 'CSRF token was invalid or missing');
    return caller;
  }

  function setSessionCookie(reply: FastifyReply, id: string, maxAge: number): void {
    reply.header(
      'set-cookie',
      `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${secure ? '; Secure' : ''}`,
    );
  }

  app.get('/csrf_token', async (request, reply) => {
    const existing = callerOf(request).session;
    if (existing) return { csrf_token: existing.csrf };
    const { id, session } = await sessions.create(null);
    setSessionCookie(reply, id, SESSION_SECONDS);
    return { csrf_token: session.csrf };
  });

  app.post<{ Body: { username: string; password: string } }>(
    '/api/v1/signin',
    {
      bodyLimit: CREDENTIAL_BODY_LIMIT,
      schema: {
        body: {
          type: 'object',
          properties: {
            username: { type: 'string', minLength: 1, maxLength: 256 },
            password: { type: 'string', minLength: 1, maxLength: 4096 },
          },
          required: ['username', 'password'],
        },
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      if (!caller.session) throw new ApiError(403, 'csrf_failure', 'CSRF token was invalid or missing');
      const { username, password } = request.body;
      // Robots are for the registry protocol, not for people's sessions.
      const principal = username.includes('+')
        ? null
        : await resolver.basic(username, password, clientAddress(request));
      if (!principal) {
        return reply
          .code(403)
          .send({ success: false, invalidCredentials: true, message: 'Invalid username or password' });
      }
      // A new session id on sign-in (no fixation); the CSRF token carries over so the page keeps working.
      if (caller.sessionId) await sessions.delete(caller.sessionId);
      const { id } = await sessions.create({ ...principal, via: 'session' }, caller.session.csrf);
      setSessionCookie(reply, id, SESSION_SECONDS);
      return { success: true };
    },
  );

  // People who sign in through OpenID (docs/openid.md): the AuthService runs the redirect flow and
  // comes back here, where its session becomes an API v1 session with its own CSRF token. The web UI
  // names the provider and the page to return to (a path on this host, never another site).
  app.get<{ Querystring: { return_to?: string; provider?: string } }>(
    '/api/v1/signin/openid',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            return_to: { type: 'string', pattern: SAFE_RETURN_PATH.source, maxLength: 1024 },
            provider: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' },
          },
        },
      },
    },
    async (request, reply) => {
      const { return_to: returnTo, provider } = request.query;
      const signedIn = await openIdSessionOf(request.headers.cookie, { authUrl, app });
      if (!signedIn) {
        const back = returnTo
          ? `/api/v1/signin/openid?return_to=${encodeURIComponent(returnTo)}`
          : request.url;
        return reply.redirect(openIdLoginUrl(returnTo ? back : '/api/v1/signin/openid', provider));
      }
      const { session: previous, sessionId } = callerOf(request);
      if (sessionId) await sessions.delete(sessionId);
      const { id } = await sessions.create(signedIn.principal, previous?.csrf);
      setSessionCookie(reply, id, SESSION_SECONDS);
      return reply.redirect(returnTo ?? '/api/v1/user/');
    },
  );

  app.post('/api/v1/signout', async (request, reply) => {
    const { sessionId } = callerOf(request);
    if (sessionId) await sessions.delete(sessionId);
    setSessionCookie(reply, '', 0);
    return { success: true };
  });

  app.get('/api/v1/user/', { config: { access: { operation: 'account.read' } } }, async (request) => {
    const principal = callerOf(request).principal;
    return {
      anonymous: false,
      username: principal.name,
      kind: principal.kind,
      super_user: policy.isSuperuser(principal),
      organizations: principal.groups.map((name) => ({ name })),
    };
  });

  app.get<{ Querystring: { namespace?: string; public?: boolean } }>(
    '/api/v1/repository',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            namespace: { type: 'string', maxLength: 255 },
            public: { type: 'boolean' },
            starred: { type: 'boolean' },
          },
        },
      },
    },
    async (request) => {
      const { principal } = callerOf(request);
      const result = [];
      for (const name of await repositories.names()) {
        const record = await repositories.get(name);
        if (!record) continue;
        if (request.query.namespace && record.namespace !== request.query.namespace) continue;
        if (!policy.decide(principal, { operation: 'oci.pull', repository: name, record }).allowed) continue;
        if (
          request.query.public === false &&
          record.visibility === 'public' &&
          !explicitRole(principal, record)
        )
          continue;
        result.push(describeRepository(services, principal, record));
      }
      return { repositories: result };
    },
  );

  app.post<{
    Body: { namespace?: string; repository: string; visibility: 'public' | 'private'; description?: string };
  }>(
    '/api/v1/repository',
    {
      schema: {
        body: {
          type: 'object',
          properties: {
            namespace: { type: 'string', minLength: 1, maxLength: 255 },
            repository: { type: 'string', minLength: 1, maxLength: 255 },
            visibility: { enum: ['public', 'private'] },
            description: { type: 'string', maxLength: 4096 },
            repo_kind: { type: 'string' },
          },
          required: ['repository', 'visibility'],
        },
      },
      config: {
        access: (request) => {
          const body = request.body as { namespace?: string; repository: string };
          const namespace = body.namespace ?? callerOf(request).principal.name;
          const name = `${namespace}/${body.repository}`;
          if (!isNamespaceName(namespace) || !isRepositoryName(name))
            throw invalid('Invalid repository name');
          return { operation: 'oci.manage', repository: name, record: null, role: 'admin' };
        },
      },
    },
    async (request, reply) => {
      const namespace = request.body.namespace ?? callerOf(request).principal.name;
      const name = `${namespace}/${request.body.repository}`;
      if (await repositories.get(name)) throw invalid('Repository already exists');
      await repositories.ensure(name, {
        visibility: request.body.visibility,
        description: request.body.description ?? '',
      });
      return reply.code(201).send({ namespace, name: request.body.repository, kind: 'image' });
    },
  );

  // Quay's repository search: what the caller may pull whose name or description contains the query.
  app.get<{ Querystring: { query: string; page: number } }>(
    '/api/v1/find/repositories',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            query: { type: 'string', maxLength: 255, default: '' },
            page: { type: 'integer', minimum: 1, maximum: 100_000, default: 1 },
          },
        },
      },
    },
    async (request) => {
      const { principal } = callerOf(request);
      const needle = request.query.query.trim().toLowerCase();
      const pageSize = FIND_PAGE_SIZE;
      const found = [];
      for (const name of await repositories.names()) {
        const record = await repositories.get(name);
        if (!record) continue;
        const inName = name.includes(needle);
        if (!inName && !record.description.toLowerCase().includes(needle)) continue;
        if (!policy.decide(principal, { operation: 'oci.pull', repository: name, record }).allowed) continue;
        const short = name.slice(record.namespace.length + 1);
        // Quay's order: the best match first (the name itself, then names, then descriptions).
        const score = short === needle || name === needle ? 3 : inName ? 2 : 1;
        found.push({ record, short, score });
      }
      found.sort((a, b) => b.score - a.score || (a.record.name < b.record.name ? -1 : 1));
      const start = (request.query.page - 1) * pageSize;
      return {
        results: found.slice(start, start + pageSize).map(({ record, short, score }) => ({
          kind: 'repository',
          title: 'repo',
          name: short,
          namespace: { name: record.namespace, kind: 'user', title: record.namespace },
          description: record.description,
          is_public: record.visibility === 'public',
          score,
          href: `/repository/${record.name}`,
          stars: 0,
          popularity: 0,
        })),
        has_additional: found.length > start + pageSize,
        page: request.query.page,
        page_size: pageSize,
        start_index: start,
      };
    },
  );

  await app.register(repositoryRoutes, { services });

  // Robot accounts: the caller's own namespace (`/user/robots`) or a group namespace it belongs to.
  // Creating or reading them is managing credentials: a scoped token may not (policy table).
  const robotRoutes = (prefix: string, namespaceOf: (request: FastifyRequest) => string) => {
    const config = {
      access: (request: FastifyRequest) =>
        ({ operation: 'account.credentials', namespace: namespaceOf(request) }) as const,
    };
    const nameParam = (request: FastifyRequest) => {
      const name = (request.params as { name: string }).name;
      if (!ROBOT_NAME.test(name)) throw invalid('robot names are [a-z][a-z0-9_]{1,254}');
      return name;
    };
    app.get(`${prefix}/robots`, { config }, async (request) => {
      const namespace = namespaceOf(request);
      return {
        robots: (await robots.list(namespace)).map((robot) => ({
          name: robotFullName(namespace, robot.name),
          description: robot.description,
          created: robot.createdAt,
        })),
      };
    });
    app.put(`${prefix}/robots/:name`, { config }, async (request, reply) => {
      const namespace = namespaceOf(request);
      const name = nameParam(request);
      const description = (request.body as { description?: unknown } | undefined)?.description ?? '';
      if (typeof description !== 'string' || description.length > 1024)
        throw invalid('description must be a string of at most 1024 characters');
      const created = await robots.create(namespace, name, description);
      if (!created) throw invalid('robot already exists');
      return reply
        .code(201)
        .send({ name: robotFullName(namespace, name), description, token: created.token });
    });
    app.get(`${prefix}/robots/:name`, { config }, async (request) => {
      const namespace = namespaceOf(request);
      const robot = await robots.get(namespace, nameParam(request));
      if (!robot) throw notFound();
      return {
        name: robotFullName(namespace, robot.name),
        description: robot.description,
        created: robot.createdAt,
      };
    });
    app.post(`${prefix}/robots/:name/regenerate`, { config }, async (request) => {
      const namespace = namespaceOf(request);
      const name = nameParam(request);
      const robot = await robots.get(namespace, name);
      if (!robot) throw notFound();
      await robots.delete(namespace, name);
      const created = await robots.create(namespace, name, robot.description);
      if (!created) throw new ApiError(409, 'conflict', 'robot changed concurrently');
      return { name: robotFullName(namespace, name), token: created.token };
    });
    app.delete(`${prefix}/robots/:name`, { config }, async (request, reply) => {
      const namespace = namespaceOf(request);
      if (!(await robots.delete(namespace, nameParam(request)))) throw notFound();
      return reply.code(204).send();
    });
  };
  robotRoutes('/api/v1/user', (request) => {
    // A user named as RestAuth allows (`mati space`) has no namespace to keep robots in.
    const { name } = callerOf(request).principal;
    if (!isNamespaceName(name))
      throw invalid('this account has no namespace: its name is not a namespace name');
    return name;
  });
  robotRoutes('/api/v1/organization/:org', (request) => {
    const org = (request.params as { org: string }).org;
    if (!isNamespaceName(org)) throw invalid('invalid organization name');
    return org;
  });

  const superuser = { access: { operation: 'account.admin' } } as const;
  app.get('/api/v1/superuser/repositories/', { config: superuser }, async (request) => {
    const { principal } = callerOf(request);
    const result = [];
    for (const name of await repositories.names()) {
      const record = await repositories.get(name);
      if (record) result.push(describeRepository(services, principal, record));
    }
    return { repositories: result };
  });

  app.post(
    '/api/v1/superuser/gc',
    {
      schema: {
        querystring: { type: 'object', properties: { dry_run: { type: 'boolean', default: false } } },
      },
      config: superuser,
    },
    async (request) => {
      const { dry_run: dryRun } = request.query as { dry_run: boolean };
      return services.maintenance.runOnce(Date.now(), { dryRun });
    },
  );
}

/** Whether the principal holds a role on the repository of its own (not only through public visibility). */
function explicitRole(principal: ApiCaller['principal'], record: Repository): boolean {
  return (
    Object.hasOwn(record.users, principal.name) ||
    principal.groups.some((group) => Object.hasOwn(record.teams, group)) ||
    (principal.kind === 'user' &&
      (principal.name === record.namespace || principal.groups.includes(record.namespace)))
  );
}
