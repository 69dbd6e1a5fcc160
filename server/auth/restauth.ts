import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authenticator } from '../identity/authenticator.ts';
import { IdentityError } from '../identity/directory.ts';
import { groupsOfUser, membersOfGroup } from '../identity/groups.ts';
import { isValidPropertyName, normalizeName } from '../identity/names.ts';
import type { AuthenticatedService, Permission, ServiceRegistry } from '../identity/services.ts';
import { permits } from '../identity/services.ts';
import type { Metrics } from '../observability/metrics.ts';
import { listField, parseAuthorization, sendThrottled, stringField } from './credentials.ts';

export interface RestAuthOptions {
  authenticator: Authenticator;
  services: ServiceRegistry;
  metrics: Metrics;
}

const REALM = 'Basic realm="wharf RestAuth", charset="UTF-8"';

const nameParams = {
  type: 'object',
  properties: { name: { type: 'string' }, prop: { type: 'string' }, group: { type: 'string' } },
} as const;
/** Bodies are JSON or form-encoded dictionaries; field checks are done by the handlers. */
const anyBody = { type: 'object' } as const;

type Params = { name: string; prop: string; group: string };

/**
 * The RestAuth API (protocol 0.6, status codes as the reference): services authenticate with HTTP
 * Basic and need a permission per operation. Mounted under `/restauth`.
 */
export async function restAuthRoutes(app: FastifyInstance, options: RestAuthOptions): Promise<void> {
  const { authenticator, services, metrics } = options;
  const directory = authenticator.directory;
  const callers = new WeakMap<FastifyRequest, AuthenticatedService>();

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

  /** Sends 403 and returns false when the calling service lacks the permission. */
  const allowed = (request: FastifyRequest, reply: FastifyReply, operation: Permission): boolean => {
    const service = callers.get(request);
    if (service && permits(service.permissions, operation)) return true;
    reply.code(403).send({ error: `service ${service?.name ?? '?'} lacks permission ${operation}` });
    return false;
  };
  const notFound = (reply: FastifyReply, type: 'user' | 'group' | 'property', name: string) =>
    reply
      .code(404)
      .header('resource-type', type)
      .send({ error: `${type} ${name} not found` });
  const refused = (reply: FastifyReply, error: unknown) => {
    if (!(error instanceof IdentityError)) throw error;
    const status = { invalid: 400, exists: 409, 'not-found': 404, forbidden: 403 }[error.reason];
    return reply.code(status).send({ error: error.message });
  };
  const tooMany = { error: 'too many failed password checks' };

  // ---- users -----------------------------------------------------------------------------------

  app.get('/users', async (request, reply) => {
    if (!allowed(request, reply, 'users_list')) return reply;
    return directory.listUsers();
  });

  app.post('/users', { schema: { body: anyBody } }, async (request, reply) => {
    if (!allowed(request, reply, 'user_create')) return reply;
    const username = stringField(request.body, 'username') ?? stringField(request.body, 'user');
    const password = stringField(request.body, 'password');
    if (!username) return reply.code(400).send({ error: 'username is required' });
    const groups = (listField(request.body, 'groups') ?? []).map(normalizeName);
    const properties = (request.body as { properties?: unknown }).properties;
    if (properties !== undefined && !isStringRecord(properties))
      return reply.code(400).send({ error: 'properties must be a dictionary of strings' });
    const doc = await directory.groups();
    const missing = groups.find((group) => !doc.groups[group]);
    if (missing) return notFound(reply, 'group', missing);
    try {
      // RestAuth: a user may be created without a password (login disabled until one is set).
      const user = await directory.createUser(username, password ? password : null, {
        properties: properties ?? {},
      });
      if (groups.length > 0) await addMembers(groups, user.name);
      return reply.code(201).send();
    } catch (error) {
      return refused(reply, error);
    }
  });

  app.get<{ Params: Params }>('/users/:name', { schema: { params: nameParams } }, async (request, reply) => {
    if (!allowed(request, reply, 'user_exists')) return reply;
    if (!(await directory.getUser(request.params.name))) return notFound(reply, 'user', request.params.name);
    return reply.code(200).send();
  });

  app.post<{ Params: Params }>(
    '/users/:name',
    { schema: { params: nameParams, body: anyBody } },
    async (request, reply) => {
      if (!allowed(request, reply, 'user_verify_password')) return reply;
      const password = stringField(request.body, 'password');
      if (password === undefined) return reply.code(400).send({ error: 'password is required' });
      try {
        const user = await authenticator.checkPassword(request.params.name, password, addressOf(request));
        if (!user) return notFound(reply, 'user', request.params.name);
        return reply.code(200).send();
      } catch (error) {
        return sendThrottled(error, reply, tooMany);
      }
    },
  );

  app.put<{ Params: Params }>(
    '/users/:name',
    { schema: { params: nameParams, body: anyBody } },
    async (request, reply) => {
      if (!allowed(request, reply, 'user_change_password')) return reply;
      const newName = stringField(request.body, 'username') ?? stringField(request.body, 'user');
      const password = stringField(request.body, 'password');
      if (newName !== undefined && normalizeName(newName) !== normalizeName(request.params.name))
        return reply.code(403).send({ error: 'usernames cannot be changed' });
      if (password === undefined && newName === undefined)
        return reply.code(400).send({ error: 'password is required' });
      try {
        // An empty password turns password login off (RestAuth), tokens keep working.
        const user = await directory.setPassword(request.params.name, password ? password : null);
        if (!user) return notFound(reply, 'user', request.params.name);
        return reply.code(200).send();
      } catch (error) {
        return refused(reply, error);
      }
    },
  );

  app.delete<{ Params: Params }>(
    '/users/:name',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!allowed(request, reply, 'user_delete')) return reply;
      if (!(await directory.deleteUser(request.params.name)))
        return notFound(reply, 'user', request.params.name);
      return reply.code(200).send();
    },
  );

  // ---- properties ------------------------------------------------------------------------------

  app.get<{ Params: Params }>(
    '/users/:name/props',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!allowed(request, reply, 'props_list')) return reply;
      const user = await directory.getUser(request.params.name);
      if (!user) return notFound(reply, 'user', request.params.name);
      return user.properties;
    },
  );

  app.post<{ Params: Params }>(
    '/users/:name/props',
    { schema: { params: nameParams, body: anyBody } },
    async (request, reply) => {
      if (!allowed(request, reply, 'prop_create')) return reply;
      const prop = stringField(request.body, 'prop');
      const value = stringField(request.body, 'value');
      if (!prop || value === undefined || !isValidPropertyName(prop))
        return reply.code(400).send({ error: 'prop and value are required' });
      let exists = false;
      const user = await directory.updateUser(request.params.name, (current) => {
        exists = prop in current.properties;
        return exists ? undefined : { ...current, properties: { ...current.properties, [prop]: value } };
      });
      if (!user) return notFound(reply, 'user', request.params.name);
      if (exists) return reply.code(409).send({ error: `property ${prop} already exists` });
      return reply.code(201).send();
    },
  );

  app.put<{ Params: Params }>(
    '/users/:name/props',
    { schema: { params: nameParams, body: anyBody } },
    async (request, reply) => {
      if (!allowed(request, reply, 'prop_set')) return reply;
      const changes = flatten(request.body);
      if (!changes || !Object.keys(changes).every(isValidPropertyName))
        return reply.code(400).send({ error: 'expected a dictionary of property names to strings' });
      const user = await directory.updateUser(request.params.name, (current) => ({
        ...current,
        properties: { ...current.properties, ...changes },
      }));
      if (!user) return notFound(reply, 'user', request.params.name);
      return user.properties;
    },
  );

  app.get<{ Params: Params }>(
    '/users/:name/props/:prop',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!allowed(request, reply, 'prop_get')) return reply;
      const user = await directory.getUser(request.params.name);
      if (!user) return notFound(reply, 'user', request.params.name);
      const value = user.properties[request.params.prop];
      if (value === undefined) return notFound(reply, 'property', request.params.prop);
      return reply.type('application/json').send(JSON.stringify(value));
    },
  );

  app.put<{ Params: Params }>(
    '/users/:name/props/:prop',
    { schema: { params: nameParams, body: anyBody } },
    async (request, reply) => {
      if (!allowed(request, reply, 'prop_set')) return reply;
      const { prop } = request.params;
      const value = stringField(request.body, 'value');
      if (value === undefined || !isValidPropertyName(prop))
        return reply.code(400).send({ error: 'value is required' });
      let previous: string | undefined;
      const user = await directory.updateUser(request.params.name, (current) => {
        previous = current.properties[prop];
        return { ...current, properties: { ...current.properties, [prop]: value } };
      });
      if (!user) return notFound(reply, 'user', request.params.name);
      // RestAuth: 200 with the old value when the property existed, 201 when it is new.
      return previous === undefined
        ? reply.code(201).send()
        : reply.code(200).type('application/json').send(JSON.stringify(previous));
    },
  );

  app.delete<{ Params: Params }>(
    '/users/:name/props/:prop',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!allowed(request, reply, 'prop_delete')) return reply;
      const { prop } = request.params;
      let existed = false;
      const user = await directory.updateUser(request.params.name, (current) => {
        existed = prop in current.properties;
        if (!existed) return undefined;
        const { [prop]: _removed, ...properties } = current.properties;
        return { ...current, properties };
      });
      if (!user) return notFound(reply, 'user', request.params.name);
      if (!existed) return notFound(reply, 'property', prop);
      return reply.code(200).send();
    },
  );

  // ---- groups ----------------------------------------------------------------------------------

  const addMembers = (groups: string[], user: string) =>
    directory.updateGroups((doc) => {
      const next = { ...doc.groups };
      for (const group of groups) {
        const current = next[group];
        if (current && !current.users.includes(user))
          next[group] = { ...current, users: [...current.users, user] };
      }
      return { groups: next };
    });

  app.get<{ Querystring: { user?: string } }>(
    '/groups',
    { schema: { querystring: { type: 'object', properties: { user: { type: 'string' } } } } },
    async (request, reply) => {
      if (!allowed(request, reply, 'groups_list')) return reply;
      const doc = await directory.groups();
      const { user } = request.query;
      if (user === undefined) return Object.keys(doc.groups).sort();
      if (!(await directory.getUser(user))) return notFound(reply, 'user', user);
      return groupsOfUser(doc, normalizeName(user));
    },
  );

  app.post('/groups', { schema: { body: anyBody } }, async (request, reply) => {
    if (!allowed(request, reply, 'group_create')) return reply;
    const group = stringField(request.body, 'group') ?? stringField(request.body, 'name');
    if (!group) return reply.code(400).send({ error: 'group is required' });
    const users = (listField(request.body, 'users') ?? []).map(normalizeName);
    for (const user of users) if (!(await directory.getUser(user))) return notFound(reply, 'user', user);
    try {
      await directory.createGroup(group);
      if (users.length > 0) for (const user of users) await addMembers([normalizeName(group)], user);
      return reply.code(201).send();
    } catch (error) {
      return refused(reply, error);
    }
  });

  app.get<{ Params: Params }>(
    '/groups/:group',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!allowed(request, reply, 'group_exists')) return reply;
      const doc = await directory.groups();
      if (!doc.groups[normalizeName(request.params.group)])
        return notFound(reply, 'group', request.params.group);
      return reply.code(200).send();
    },
  );

  app.delete<{ Params: Params }>(
    '/groups/:group',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!allowed(request, reply, 'group_delete')) return reply;
      if (!(await directory.deleteGroup(request.params.group)))
        return notFound(reply, 'group', request.params.group);
      return reply.code(200).send();
    },
  );

  app.get<{ Params: Params }>(
    '/groups/:group/users',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!allowed(request, reply, 'group_users_list')) return reply;
      const members = await directory.membersOf(request.params.group);
      if (!members) return notFound(reply, 'group', request.params.group);
      return members;
    },
  );

  app.post<{ Params: Params }>(
    '/groups/:group/users',
    { schema: { params: nameParams, body: anyBody } },
    async (request, reply) => {
      if (!allowed(request, reply, 'group_add_user')) return reply;
      const user = stringField(request.body, 'user') ?? stringField(request.body, 'username');
      if (!user) return reply.code(400).send({ error: 'user is required' });
      if (!(await directory.getUser(user))) return notFound(reply, 'user', user);
      const group = normalizeName(request.params.group);
      let found = false;
      await directory.updateGroups((doc) => {
        const current = doc.groups[group];
        found = current !== undefined;
        if (!current || current.users.includes(normalizeName(user))) return undefined;
        return {
          groups: { ...doc.groups, [group]: { ...current, users: [...current.users, normalizeName(user)] } },
        };
      });
      if (!found) return notFound(reply, 'group', group);
      return reply.code(200).send();
    },
  );

  app.get<{ Params: Params & { user: string } }>(
    '/groups/:group/users/:user',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!allowed(request, reply, 'group_user_in_group')) return reply;
      const doc = await directory.groups();
      const group = normalizeName(request.params.group);
      if (!doc.groups[group]) return notFound(reply, 'group', group);
      if (!membersOfGroup(doc, group).includes(normalizeName(request.params.user)))
        return notFound(reply, 'user', request.params.user);
      return reply.code(200).send();
    },
  );

  app.delete<{ Params: Params & { user: string } }>(
    '/groups/:group/users/:user',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!allowed(request, reply, 'group_remove_user')) return reply;
      const group = normalizeName(request.params.group);
      const user = normalizeName(request.params.user);
      let state: 'removed' | 'no-group' | 'no-member' = 'no-group';
      await directory.updateGroups((doc) => {
        const current = doc.groups[group];
        state = !current ? 'no-group' : current.users.includes(user) ? 'removed' : 'no-member';
        if (!current || state !== 'removed') return undefined;
        return {
          groups: { ...doc.groups, [group]: { ...current, users: current.users.filter((u) => u !== user) } },
        };
      });
      if (state === 'no-group') return notFound(reply, 'group', group);
      if (state === 'no-member') return notFound(reply, 'user', user);
      return reply.code(200).send();
    },
  );

  app.get<{ Params: Params }>(
    '/groups/:group/groups',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!allowed(request, reply, 'group_groups_list')) return reply;
      const doc = await directory.groups();
      const current = doc.groups[normalizeName(request.params.group)];
      if (!current) return notFound(reply, 'group', request.params.group);
      return [...current.subgroups].sort();
    },
  );

  app.post<{ Params: Params }>(
    '/groups/:group/groups',
    { schema: { params: nameParams, body: anyBody } },
    async (request, reply) => {
      if (!allowed(request, reply, 'group_add_group')) return reply;
      const meta = normalizeName(request.params.group);
      const sub = normalizeName(stringField(request.body, 'group') ?? '');
      if (!sub) return reply.code(400).send({ error: 'group is required' });
      if (sub === meta) return reply.code(400).send({ error: 'a group cannot be its own subgroup' });
      let missing: string | undefined;
      await directory.updateGroups((doc) => {
        const current = doc.groups[meta];
        missing = !current ? meta : !doc.groups[sub] ? sub : undefined;
        if (!current || missing || current.subgroups.includes(sub)) return undefined;
        return { groups: { ...doc.groups, [meta]: { ...current, subgroups: [...current.subgroups, sub] } } };
      });
      if (missing) return notFound(reply, 'group', missing);
      return reply.code(200).send();
    },
  );

  app.delete<{ Params: Params & { sub: string } }>(
    '/groups/:group/groups/:sub',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!allowed(request, reply, 'group_remove_group')) return reply;
      const meta = normalizeName(request.params.group);
      const sub = normalizeName(request.params.sub);
      let state: 'removed' | 'no-group' | 'no-sub' = 'no-group';
      await directory.updateGroups((doc) => {
        const current = doc.groups[meta];
        state = !current ? 'no-group' : current.subgroups.includes(sub) ? 'removed' : 'no-sub';
        if (!current || state !== 'removed') return undefined;
        return {
          groups: {
            ...doc.groups,
            [meta]: { ...current, subgroups: current.subgroups.filter((g) => g !== sub) },
          },
        };
      });
      if (state === 'no-group') return notFound(reply, 'group', meta);
      if (state === 'no-sub') return notFound(reply, 'group', sub);
      return reply.code(200).send();
    },
  );

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
   * user's API tokens. 200 with the principal, 404 when the credential is wrong (one answer for all).
   */
  app.post('/verify', { schema: { body: anyBody } }, async (request, reply) => {
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
      const principal = await authenticator.verifyPassword(username, password, addressOf(request));
      return principal ? principal : notFound(reply, 'user', username);
    } catch (error) {
      return sendThrottled(error, reply, tooMany);
    }
  });
}

/**
 * The end user's address for rate limiting. A service may pass it in `X-Forwarded-For` (a registry
 * relaying `docker login`); only authenticated services reach this, so the header is trusted here.
 */
function addressOf(request: FastifyRequest): string {
  const forwarded = request.headers['x-forwarded-for'];
  const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
  return first || request.ip;
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((item) => typeof item === 'string')
  );
}

/** A PUT of several properties: JSON dictionary or form fields (first value of each). */
function flatten(body: unknown): Record<string, string> | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null;
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(body)) {
    const item = Array.isArray(value) ? value[0] : value;
    if (typeof item !== 'string') return null;
    result[key] = item;
  }
  return result;
}
