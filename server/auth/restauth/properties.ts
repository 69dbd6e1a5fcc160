import type { FastifyInstance, FastifyRequest } from 'fastify';
import { IdentityError, type UserRecord } from '../../identity/directory.ts';
import { isValidPropertyName } from '../../identity/names.ts';
import { propertiesProblem } from '../../identity/properties.ts';
import { hasOwnEntry, ownValue } from '../../store/records.ts';
import { stringField } from '../credentials.ts';
import type { Outcome } from './answers.ts';
import {
  CREATED,
  DONE,
  flatten,
  malformed,
  notFound,
  type Params,
  type RestAuthKit,
  restAuthRoute,
} from './common.ts';

const unacceptableName = (prop: string): Outcome => ({
  kind: 'unacceptable',
  message: `invalid property name ${JSON.stringify(prop)}`,
});

/** `/users/<name>/props/…`: a user's free-form properties. */
export function propertyRoutes(app: FastifyInstance, kit: RestAuthKit): void {
  const { directory } = kit;

  restAuthRoute<Params>(app, {
    method: 'GET',
    url: '/users/:name/props',
    permission: 'props_list',
    handler: async (request) => {
      const user = await directory.getUser(request.params.name);
      return user ? { kind: 'dict', value: user.properties } : notFound('user', request.params.name);
    },
  });

  /** A new property's checks, in RestAuth's order: the user, the body, the name, the bounds, 409. */
  async function checkNewProperty(
    request: FastifyRequest<{ Params: Params }>,
  ): Promise<Outcome | { prop: string; value: string; user: UserRecord }> {
    const user = await directory.getUser(request.params.name);
    if (!user) return notFound('user', request.params.name);
    const prop = stringField(request.body, 'prop');
    const value = stringField(request.body, 'value');
    if (!prop || value === undefined) return malformed('prop and value are required');
    if (!isValidPropertyName(prop)) return unacceptableName(prop);
    if (hasOwnEntry(user.properties, prop))
      return { kind: 'exists', message: `property ${prop} already exists` };
    const problem = propertiesProblem(user.properties, { [prop]: value });
    if (problem) return { kind: 'unacceptable', message: problem };
    return { prop, value, user };
  }

  restAuthRoute<Params>(app, {
    method: 'POST',
    url: '/users/:name/props',
    permission: 'prop_create',
    body: true,
    handler: async (request) => {
      const checked = await checkNewProperty(request);
      if ('kind' in checked) return checked;
      const { prop, value } = checked;
      let exists = false;
      const user = await directory.updateUser(request.params.name, (current) => {
        exists = hasOwnEntry(current.properties, prop);
        return exists ? undefined : withProperties(current, { [prop]: value });
      });
      if (!user) return notFound('user', request.params.name);
      if (exists) return { kind: 'exists', message: `property ${prop} already exists` };
      return CREATED;
    },
  });

  restAuthRoute<Params>(app, {
    method: 'POST',
    url: '/test/users/:name/props',
    permission: 'prop_create',
    protocols: ['restauth-0.6'],
    body: true,
    handler: async (request) => {
      const checked = await checkNewProperty(request);
      return 'kind' in checked ? checked : CREATED;
    },
  });

  restAuthRoute<Params>(app, {
    method: 'PUT',
    url: '/users/:name/props',
    permission: 'prop_set',
    body: true,
    handler: async (request) => {
      if (!(await directory.getUser(request.params.name))) return notFound('user', request.params.name);
      const changes = flatten(request.body);
      if (!changes) return malformed('expected a dictionary of property names to strings');
      const invalid = Object.keys(changes).find((prop) => !isValidPropertyName(prop));
      if (invalid !== undefined) return unacceptableName(invalid);
      const user = await directory.updateUser(request.params.name, (current) =>
        withProperties(current, changes),
      );
      return user
        ? { kind: 'properties-set', properties: user.properties }
        : notFound('user', request.params.name);
    },
  });

  restAuthRoute<Params>(app, {
    method: 'GET',
    url: '/users/:name/props/:prop',
    permission: 'prop_get',
    handler: async (request) => {
      const user = await directory.getUser(request.params.name);
      if (!user) return notFound('user', request.params.name);
      const value = ownValue(user.properties, request.params.prop);
      return value === undefined ? notFound('property', request.params.prop) : { kind: 'value', value };
    },
  });

  restAuthRoute<Params>(app, {
    method: 'PUT',
    url: '/users/:name/props/:prop',
    permission: 'prop_set',
    body: true,
    handler: async (request) => {
      const { prop } = request.params;
      if (!(await directory.getUser(request.params.name))) return notFound('user', request.params.name);
      const value = stringField(request.body, 'value');
      if (value === undefined) return malformed('value is required');
      if (!isValidPropertyName(prop)) return unacceptableName(prop);
      let previous: string | undefined;
      const user = await directory.updateUser(request.params.name, (current) => {
        previous = ownValue(current.properties, prop);
        return withProperties(current, { [prop]: value });
      });
      if (!user) return notFound('user', request.params.name);
      // RestAuth: 200 with the old value when the property existed, 201 when it is new.
      return previous === undefined ? CREATED : { kind: 'value', value: previous };
    },
  });

  restAuthRoute<Params>(app, {
    method: 'DELETE',
    url: '/users/:name/props/:prop',
    permission: 'prop_delete',
    handler: async (request) => {
      const { prop } = request.params;
      let existed = false;
      const user = await directory.updateUser(request.params.name, (current) => {
        existed = hasOwnEntry(current.properties, prop);
        if (!existed) return undefined;
        const { [prop]: _removed, ...properties } = current.properties;
        return { ...current, properties };
      });
      if (!user) return notFound('user', request.params.name);
      return existed ? DONE : notFound('property', prop);
    },
  });
}

/**
 * The user with `changes` written to its properties. Past the bounds on properties (value size,
 * count) it throws an IdentityError, which the protocol answers like any unacceptable value.
 */
function withProperties(current: UserRecord, changes: Record<string, string>): UserRecord {
  const problem = propertiesProblem(current.properties, changes);
  if (problem) throw new IdentityError('invalid', problem);
  return { ...current, properties: { ...current.properties, ...changes } };
}
