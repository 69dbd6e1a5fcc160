import type { FastifyInstance } from 'fastify';
import { IdentityError, type UserRecord } from '../../identity/directory.ts';
import { isValidPropertyName } from '../../identity/names.ts';
import { propertiesProblem } from '../../identity/properties.ts';
import { hasOwnEntry, ownValue } from '../../store/records.ts';
import { stringField } from '../credentials.ts';
import { anyBody, flatten, nameParams, type Params, type RestAuthKit } from './common.ts';

/** `/users/<name>/props/…`: a user's free-form properties. */
export function propertyRoutes(app: FastifyInstance, kit: RestAuthKit): void {
  const { directory, allowed, notFound } = kit;

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
        exists = hasOwnEntry(current.properties, prop);
        return exists ? undefined : withProperties(current, { [prop]: value });
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
      const user = await directory.updateUser(request.params.name, (current) =>
        withProperties(current, changes),
      );
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
      const value = ownValue(user.properties, request.params.prop);
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
        previous = ownValue(current.properties, prop);
        return withProperties(current, { [prop]: value });
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
        existed = hasOwnEntry(current.properties, prop);
        if (!existed) return undefined;
        const { [prop]: _removed, ...properties } = current.properties;
        return { ...current, properties };
      });
      if (!user) return notFound(reply, 'user', request.params.name);
      if (!existed) return notFound(reply, 'property', prop);
      return reply.code(200).send();
    },
  );
}

/**
 * The user with `changes` written to its properties. Past the bounds on properties (value size,
 * count) it throws an IdentityError, which the plugin answers like any unacceptable value (400).
 */
function withProperties(current: UserRecord, changes: Record<string, string>): UserRecord {
  const problem = propertiesProblem(current.properties, changes);
  if (problem) throw new IdentityError('invalid', problem);
  return { ...current, properties: { ...current.properties, ...changes } };
}
