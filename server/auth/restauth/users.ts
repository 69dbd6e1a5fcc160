import type { FastifyInstance } from 'fastify';
import { CREDENTIAL_BODY_LIMIT } from '../../http/body-limits.ts';
import { groupNamed } from '../../identity/groups.ts';
import { normalizeName } from '../../identity/names.ts';
import { listField, sendThrottled, stringField } from '../credentials.ts';
import { anyBody, isStringRecord, nameParams, type Params, type RestAuthKit, TOO_MANY } from './common.ts';

/** `/users/` and `/users/<name>`: create, list, exist, verify password, change password, delete. */
export function userRoutes(app: FastifyInstance, kit: RestAuthKit): void {
  const { authenticator, directory, origin, allowed, notFound, refused } = kit;

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
    const missing = groups.find((group) => !groupNamed(doc, group));
    if (missing) return notFound(reply, 'group', missing);
    try {
      // RestAuth: a user may be created without a password (login disabled until one is set).
      const user = await directory.createUser(username, password ? password : null, {
        properties: properties ?? {},
      });
      if (groups.length > 0) await directory.addToGroups(groups, user.name);
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
    { schema: { params: nameParams, body: anyBody }, bodyLimit: CREDENTIAL_BODY_LIMIT },
    async (request, reply) => {
      if (!allowed(request, reply, 'user_verify_password')) return reply;
      const password = stringField(request.body, 'password');
      if (password === undefined) return reply.code(400).send({ error: 'password is required' });
      try {
        const user = await authenticator.checkPassword(request.params.name, password, origin(request));
        if (!user) return notFound(reply, 'user', request.params.name);
        return reply.code(200).send();
      } catch (error) {
        return sendThrottled(error, reply, TOO_MANY);
      }
    },
  );

  app.put<{ Params: Params }>(
    '/users/:name',
    { schema: { params: nameParams, body: anyBody }, bodyLimit: CREDENTIAL_BODY_LIMIT },
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
}
