import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { openIdLoginUrl, openIdSessionOf } from '../../../auth/openid/session-client.ts';
import { ANONYMOUS, type Principal } from '../../../identity/principal.ts';
import { TooManyAttemptsError } from '../../../identity/rate-limit.ts';
import { isRepositoryName, parseDigest } from '../names.ts';
import {
  isSuperuser,
  ownsNamespace,
  type Repository,
  type RepositoryRole,
  roleAllows,
  roleOn,
} from '../permissions.ts';
import { ROBOT_NAME, robotFullName } from '../robots.ts';
import type { OciServices } from '../services.ts';
import { csrfMatches, readCookie, SESSION_COOKIE, type Session, SessionStore } from './sessions.ts';

/** What a guard establishes about a request before its handler runs. */
interface ApiCaller {
  principal: Principal;
  session: Session | null;
  sessionId: string | undefined;
}

class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(status: number, type: string, message: string) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

const denied = () => new ApiError(403, 'insufficient_scope', 'Unauthorized');
const notFound = () => new ApiError(404, 'not_found', 'Not Found');

/** Guards, as in Quay's decorators: the minimum a caller needs for a route. */
type Guard = 'anyone' | 'user' | 'superuser' | RepositoryRole;

interface RepositoryRoute {
  method: string;
  pattern: RegExp;
  guard: Guard;
  handler: (context: RepositoryContext) => Promise<unknown>;
}

interface RepositoryContext {
  request: FastifyRequest;
  reply: FastifyReply;
  caller: ApiCaller;
  name: string;
  repository: Repository;
  match: RegExpExecArray;
}

const ROLES = ['read', 'write', 'admin'] as const;

/**
 * The Quay-style API v1: sessions (cookie + CSRF token, stored so any replica serves them) or
 * bearer API tokens; HTTP Basic is refused. Every route declares its guard; the guard runs first.
 */
export async function apiV1Routes(
  app: FastifyInstance,
  { services, authUrl }: { services: OciServices; authUrl?: string | undefined },
): Promise<void> {
  const sessions = new SessionStore(services.store);
  const secure = services.publicUrl?.startsWith('https:') ?? false;
  const { repositories, robots, policy } = services;

  app.setErrorHandler((error: Error & { statusCode?: number; validation?: unknown }, request, reply) => {
    if (error instanceof ApiError) return sendError(reply, error.status, error.type, error.message);
    if (error instanceof TooManyAttemptsError) {
      reply.header('retry-after', String(error.retryAfterSeconds));
      return sendError(reply, 429, 'too_many_requests', 'too many failed login attempts, retry later');
    }
    if (error.validation) return sendError(reply, 400, 'invalid_request', error.message);
    request.log.error({ err: error }, 'API v1 request failed');
    return sendError(reply, 500, 'internal_error', 'internal error');
  });

  async function authenticate(request: FastifyRequest): Promise<ApiCaller> {
    const header = request.headers.authorization;
    if (header && /^basic /i.test(header)) {
      throw new ApiError(
        401,
        'invalid_token',
        'HTTP Basic is not accepted on API v1: use a session or a bearer token',
      );
    }
    if (header && /^bearer /i.test(header)) {
      const principal = await services.credentials.checkToken(header.slice(7).trim());
      if (!principal) throw new ApiError(401, 'invalid_token', 'invalid token');
      return { principal, session: null, sessionId: undefined };
    }
    const sessionId = readCookie(request.headers.cookie, SESSION_COOKIE);
    const session = await sessions.get(sessionId);
    if (session && request.method !== 'GET' && request.method !== 'HEAD') {
      const presented = request.headers['x-csrf-token'];
      if (!csrfMatches(session, Array.isArray(presented) ? presented[0] : presented)) {
        throw new ApiError(403, 'csrf_failure', 'CSRF token was invalid or missing');
      }
    }
    return { principal: session?.principal ?? ANONYMOUS, session, sessionId };
  }

  /** Runs the guard: user/superuser checks here, repository roles in `withRepository`. */
  function check(caller: ApiCaller, guard: Guard): void {
    if (guard === 'anyone') return;
    if (caller.principal.kind === 'anonymous')
      throw new ApiError(401, 'invalid_token', 'Requires authentication');
    if (guard === 'superuser' && !isSuperuser(caller.principal, policy)) throw denied();
  }

  function cookie(reply: FastifyReply, id: string, maxAge: number): void {
    reply.header(
      'set-cookie',
      `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${secure ? '; Secure' : ''}`,
    );
  }

  app.get('/csrf_token', async (request, reply) => {
    const sessionId = readCookie(request.headers.cookie, SESSION_COOKIE);
    const existing = await sessions.get(sessionId);
    if (existing) return { csrf_token: existing.csrf };
    const { id, session } = await sessions.create(null);
    cookie(reply, id, 12 * 3600);
    return { csrf_token: session.csrf };
  });

  app.post<{ Body: { username: string; password: string } }>(
    '/api/v1/signin',
    {
      schema: {
        body: {
          type: 'object',
          properties: {
            username: { type: 'string', minLength: 1 },
            password: { type: 'string', minLength: 1 },
          },
          required: ['username', 'password'],
        },
      },
    },
    async (request, reply) => {
      const caller = await authenticate(request);
      if (!caller.session) throw new ApiError(403, 'csrf_failure', 'CSRF token was invalid or missing');
      const { username, password } = request.body;
      const principal = username.includes('+')
        ? null
        : await services.credentials.check(username, password, request.ip);
      if (!principal) {
        return reply
          .code(403)
          .send({ success: false, invalidCredentials: true, message: 'Invalid username or password' });
      }
      // A new session id on sign-in (no fixation); the CSRF token carries over so the page keeps working.
      if (caller.sessionId) await sessions.delete(caller.sessionId);
      const { id } = await sessions.create({ ...principal, via: 'session' }, caller.session.csrf);
      cookie(reply, id, 12 * 3600);
      return { success: true };
    },
  );

  // People who sign in through OpenID (docs/openid.md): the AuthService runs the redirect flow and
  // comes back here, where its session becomes an API v1 session with its own CSRF token.
  app.get('/api/v1/signin/openid', async (request, reply) => {
    const signedIn = await openIdSessionOf(request.headers.cookie, { authUrl, app });
    if (!signedIn) return reply.redirect(openIdLoginUrl('/api/v1/signin/openid'));
    const sessionId = readCookie(request.headers.cookie, SESSION_COOKIE);
    const previous = await sessions.get(sessionId);
    if (sessionId) await sessions.delete(sessionId);
    const { id } = await sessions.create(signedIn.principal, previous?.csrf);
    cookie(reply, id, 12 * 3600);
    return reply.redirect('/api/v1/user/');
  });

  app.post('/api/v1/signout', async (request, reply) => {
    const caller = await authenticate(request);
    if (caller.sessionId) await sessions.delete(caller.sessionId);
    cookie(reply, '', 0);
    return { success: true };
  });

  app.get('/api/v1/user/', async (request) => {
    const caller = await authenticate(request);
    check(caller, 'user');
    const principal = caller.principal;
    return {
      anonymous: false,
      username: principal.name,
      kind: principal.kind,
      super_user: isSuperuser(principal, policy),
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
            namespace: { type: 'string' },
            public: { type: 'boolean' },
            starred: { type: 'boolean' },
          },
        },
      },
    },
    async (request) => {
      const caller = await authenticate(request);
      const result = [];
      for (const name of await repositories.names()) {
        const repository = await repositories.get(name);
        if (!repository) continue;
        if (request.query.namespace && repository.namespace !== request.query.namespace) continue;
        const role = roleOn(caller.principal, repository, policy);
        if (!roleAllows(role, 'read')) continue;
        if (
          request.query.public === false &&
          repository.visibility === 'public' &&
          !explicitRole(caller, repository)
        ) {
          continue;
        }
        result.push(describe(repository, role));
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
            namespace: { type: 'string', minLength: 1 },
            repository: { type: 'string', minLength: 1 },
            visibility: { enum: ['public', 'private'] },
            description: { type: 'string', maxLength: 4096 },
            repo_kind: { type: 'string' },
          },
          required: ['repository', 'visibility'],
        },
      },
    },
    async (request, reply) => {
      const caller = await authenticate(request);
      check(caller, 'user');
      const namespace = request.body.namespace ?? caller.principal.name;
      const name = `${namespace}/${request.body.repository}`;
      if (!isRepositoryName(name)) throw new ApiError(400, 'invalid_request', 'Invalid repository name');
      if (!isSuperuser(caller.principal, policy) && !ownsNamespace(caller.principal, namespace))
        throw denied();
      if (await repositories.get(name))
        throw new ApiError(400, 'invalid_request', 'Repository already exists');
      await repositories.ensure(name, {
        visibility: request.body.visibility,
        description: request.body.description ?? '',
      });
      return reply.code(201).send({ namespace, name: request.body.repository, kind: 'image' });
    },
  );

  const repositoryRoutes: RepositoryRoute[] = [
    {
      method: 'GET',
      pattern: /^(.+)\/tag$/,
      guard: 'read',
      handler: async ({ request, name }) => {
        const query = request.query as { limit?: string; page?: string };
        const limit = Math.min(Math.max(Number(query.limit ?? 50) || 50, 1), 100);
        const page = Math.max(Number(query.page ?? 1) || 1, 1);
        const all = (await services.manifests.tags(name)).sort();
        const slice = all.slice((page - 1) * limit, page * limit);
        const tags = [];
        for (const tag of slice) {
          const digest = await services.manifests.resolve(name, tag);
          tags.push({ name: tag, manifest_digest: digest?.text ?? null, reversion: false });
        }
        return { tags, page, has_additional: all.length > page * limit };
      },
    },
    {
      method: 'DELETE',
      pattern: /^(.+)\/tag\/([^/]+)$/,
      guard: 'write',
      handler: async ({ reply, name, match }) => {
        if (!(await services.manifests.deleteTag(name, match[2] as string))) throw notFound();
        return reply.code(204).send();
      },
    },
    {
      method: 'GET',
      pattern: /^(.+)\/manifest\/([^/]+)$/,
      guard: 'read',
      handler: async ({ name, match }) => {
        const digest = parseDigest(match[2] as string);
        const manifest = digest ? await services.manifests.get(name, digest.text) : null;
        if (!manifest) throw notFound();
        return {
          digest: manifest.digest.text,
          is_manifest_list: manifest.mediaType.includes('index') || manifest.mediaType.includes('list'),
          manifest_data: manifest.body.toString('utf8'),
        };
      },
    },
    {
      method: 'GET',
      pattern: /^(.+)\/permissions\/(user|team)$/,
      guard: 'admin',
      handler: async ({ repository, match }) => {
        const grants = match[2] === 'user' ? repository.users : repository.teams;
        const permissions: Record<string, unknown> = {};
        for (const [who, role] of Object.entries(grants)) {
          permissions[who] = {
            name: who,
            role,
            ...(match[2] === 'user' ? { is_robot: who.includes('+') } : {}),
          };
        }
        return { permissions };
      },
    },
    {
      method: 'GET',
      pattern: /^(.+)\/permissions\/(user|team)\/([^/]+)$/,
      guard: 'admin',
      handler: async ({ repository, match }) => {
        const grants = match[2] === 'user' ? repository.users : repository.teams;
        const role = grants[match[3] as string];
        if (!role) throw notFound();
        return { name: match[3], role };
      },
    },
    {
      method: 'PUT',
      pattern: /^(.+)\/permissions\/(user|team)\/([^/]+)$/,
      guard: 'admin',
      handler: async ({ request, name, match }) => {
        const role = (request.body as { role?: string } | undefined)?.role;
        if (!ROLES.includes(role as RepositoryRole))
          throw new ApiError(400, 'invalid_request', 'role must be read, write or admin');
        const who = match[3] as string;
        const kind = match[2] as 'user' | 'team';
        if (kind === 'user' && who.includes('+')) {
          const plus = who.indexOf('+');
          if (!(await robots.get(who.slice(0, plus), who.slice(plus + 1))))
            throw new ApiError(400, 'invalid_request', 'unknown robot');
        } else if (
          kind === 'user'
            ? !(await services.identity.userExists(who))
            : !(await services.identity.groupExists(who))
        ) {
          throw new ApiError(400, 'invalid_request', `unknown ${kind}`);
        }
        await repositories.update(name, (current) => {
          (kind === 'user' ? current.users : current.teams)[who] = role as RepositoryRole;
          return current;
        });
        return { name: who, role };
      },
    },
    {
      method: 'DELETE',
      pattern: /^(.+)\/permissions\/(user|team)\/([^/]+)$/,
      guard: 'admin',
      handler: async ({ reply, name, repository, match }) => {
        const kind = match[2] as 'user' | 'team';
        const who = match[3] as string;
        if (!(kind === 'user' ? repository.users : repository.teams)[who]) throw notFound();
        await repositories.update(name, (current) => {
          delete (kind === 'user' ? current.users : current.teams)[who];
          return current;
        });
        return reply.code(204).send();
      },
    },
    {
      method: 'POST',
      pattern: /^(.+)\/changevisibility$/,
      guard: 'admin',
      handler: async ({ request, name }) => {
        const visibility = (request.body as { visibility?: string } | undefined)?.visibility;
        if (visibility !== 'public' && visibility !== 'private')
          throw new ApiError(400, 'invalid_request', 'visibility must be public or private');
        await repositories.update(name, (current) => ({ ...current, visibility }));
        return { success: true };
      },
    },
    {
      method: 'GET',
      pattern: /^(.+)$/,
      guard: 'read',
      handler: async ({ caller, repository, name }) => {
        const tags: Record<string, { name: string; manifest_digest: string | null }> = {};
        for (const tag of (await services.manifests.tags(name)).sort().slice(0, 100)) {
          tags[tag] = {
            name: tag,
            manifest_digest: (await services.manifests.resolve(name, tag))?.text ?? null,
          };
        }
        return { ...describe(repository, roleOn(caller.principal, repository, policy)), tags };
      },
    },
    {
      method: 'PUT',
      pattern: /^(.+)$/,
      guard: 'write',
      handler: async ({ request, name }) => {
        const description = (request.body as { description?: unknown } | undefined)?.description;
        if (typeof description !== 'string' || description.length > 4096)
          throw new ApiError(400, 'invalid_request', 'description is required');
        await repositories.update(name, (current) => ({ ...current, description }));
        return { success: true };
      },
    },
    {
      method: 'DELETE',
      pattern: /^(.+)$/,
      guard: 'admin',
      handler: async ({ reply, name }) => {
        await repositories.delete(name);
        return reply.code(204).send();
      },
    },
  ];

  app.route({
    method: ['GET', 'PUT', 'POST', 'DELETE'],
    url: '/api/v1/repository/*',
    schema: { params: { type: 'object', properties: { '*': { type: 'string' } } } },
    handler: async (request, reply) => {
      const caller = await authenticate(request);
      const path = decodeURIComponent((request.params as { '*': string })['*']).replace(/\/$/, '');
      for (const route of repositoryRoutes) {
        if (route.method !== request.method) continue;
        const match = route.pattern.exec(path);
        if (!match) continue;
        const name = match[1] as string;
        if (!isRepositoryName(name)) continue;
        const repository = await repositories.get(name);
        // Unknown and forbidden look the same to someone who may not read the repository.
        const role = repository ? roleOn(caller.principal, repository, policy) : null;
        if (!repository || !roleAllows(role, 'read')) {
          if (caller.principal.kind === 'anonymous' && repository)
            throw new ApiError(401, 'invalid_token', 'Requires authentication');
          throw notFound();
        }
        if (route.guard !== 'anyone' && ROLES.includes(route.guard as RepositoryRole)) {
          if (!roleAllows(role, route.guard as RepositoryRole)) throw denied();
        } else {
          check(caller, route.guard);
        }
        return route.handler({ request, reply, caller, name, repository, match });
      }
      throw notFound();
    },
  });

  // Robot accounts: the caller's own namespace (`/user/robots`) or a group namespace it belongs to.
  const robotRoutes = (
    prefix: string,
    namespaceOf: (request: FastifyRequest, caller: ApiCaller) => string,
  ) => {
    const namespaceFor = async (request: FastifyRequest) => {
      const caller = await authenticate(request);
      check(caller, 'user');
      const namespace = namespaceOf(request, caller);
      if (!isSuperuser(caller.principal, policy) && !ownsNamespace(caller.principal, namespace))
        throw denied();
      return namespace;
    };
    const nameParam = (request: FastifyRequest) => {
      const name = (request.params as { name: string }).name;
      if (!ROBOT_NAME.test(name))
        throw new ApiError(400, 'invalid_request', 'robot names are [a-z][a-z0-9_]{1,254}');
      return name;
    };
    app.get(`${prefix}/robots`, async (request) => {
      const namespace = await namespaceFor(request);
      return {
        robots: (await robots.list(namespace)).map((robot) => ({
          name: robotFullName(namespace, robot.name),
          description: robot.description,
          created: robot.createdAt,
        })),
      };
    });
    app.put(`${prefix}/robots/:name`, async (request, reply) => {
      const namespace = await namespaceFor(request);
      const name = nameParam(request);
      const description = String((request.body as { description?: unknown } | undefined)?.description ?? '');
      const created = await robots.create(namespace, name, description);
      if (!created) throw new ApiError(400, 'invalid_request', 'robot already exists');
      return reply
        .code(201)
        .send({ name: robotFullName(namespace, name), description, token: created.token });
    });
    app.get(`${prefix}/robots/:name`, async (request) => {
      const namespace = await namespaceFor(request);
      const robot = await robots.get(namespace, nameParam(request));
      if (!robot) throw notFound();
      return {
        name: robotFullName(namespace, robot.name),
        description: robot.description,
        created: robot.createdAt,
      };
    });
    app.post(`${prefix}/robots/:name/regenerate`, async (request) => {
      const namespace = await namespaceFor(request);
      const name = nameParam(request);
      const robot = await robots.get(namespace, name);
      if (!robot) throw notFound();
      await robots.delete(namespace, name);
      const created = await robots.create(namespace, name, robot.description);
      if (!created) throw new ApiError(409, 'conflict', 'robot changed concurrently');
      return { name: robotFullName(namespace, name), token: created.token };
    });
    app.delete(`${prefix}/robots/:name`, async (request, reply) => {
      const namespace = await namespaceFor(request);
      if (!(await robots.delete(namespace, nameParam(request)))) throw notFound();
      return reply.code(204).send();
    });
  };
  robotRoutes('/api/v1/user', (_request, caller) => caller.principal.name);
  robotRoutes('/api/v1/organization/:org', (request) => (request.params as { org: string }).org);

  app.get('/api/v1/superuser/repositories/', async (request) => {
    const caller = await authenticate(request);
    check(caller, 'superuser');
    const result = [];
    for (const name of await repositories.names()) {
      const repository = await repositories.get(name);
      if (repository) result.push(describe(repository, 'admin'));
    }
    return { repositories: result };
  });

  app.post(
    '/api/v1/superuser/gc',
    {
      schema: {
        querystring: { type: 'object', properties: { dry_run: { type: 'boolean', default: false } } },
      },
    },
    async (request) => {
      const caller = await authenticate(request);
      check(caller, 'superuser');
      const { dry_run: dryRun } = request.query as { dry_run: boolean };
      return services.maintenance.runOnce(Date.now(), { dryRun });
    },
  );

  function explicitRole(caller: ApiCaller, repository: Repository): boolean {
    const p = caller.principal;
    return (
      Boolean(repository.users[p.name]) ||
      p.groups.some((group) => repository.teams[group]) ||
      ownsNamespace(p, repository.namespace)
    );
  }
}

function describe(repository: Repository, role: RepositoryRole | null) {
  return {
    namespace: repository.namespace,
    name: repository.name.slice(repository.namespace.length + 1),
    description: repository.description,
    is_public: repository.visibility === 'public',
    kind: 'image',
    can_write: roleAllows(role, 'write'),
    can_admin: roleAllows(role, 'admin'),
  };
}

function sendError(reply: FastifyReply, status: number, type: string, message: string): FastifyReply {
  return reply
    .code(status)
    .send({ status, error_type: type, error_message: message, title: type, detail: message });
}
