import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CREDENTIAL_BODY_LIMIT } from '../../http/body-limits.ts';
import type { NewUserOptions } from '../../identity/directory.ts';
import { groupNamed } from '../../identity/groups.ts';
import { normalizeName } from '../../identity/names.ts';
import { listField, stringField } from '../credentials.ts';
import type { Outcome } from './answers.ts';
import {
  CREATED,
  callerOf,
  DONE,
  groupScopeOf,
  isStringRecord,
  malformed,
  notFound,
  type Params,
  policyOf,
  type RestAuthKit,
  restAuthRoute,
} from './common.ts';

/** `/users/` and `/users/<name>`: create, list, exist, verify password, change password, delete. */
export function userRoutes(app: FastifyInstance, kit: RestAuthKit): void {
  const { authenticator, directory, origin } = kit;

  restAuthRoute(app, {
    method: 'GET',
    url: '/users',
    permission: 'users_list',
    handler: async () => ({ kind: 'list', items: await directory.listUsers() }),
  });

  /** The body of a create: the user (`user`, or the reference's `username`) and what comes with it. */
  async function newUser(
    request: FastifyRequest,
  ): Promise<Outcome | { name: string; password: string | null; groups: string[]; options: NewUserOptions }> {
    const name = stringField(request.body, 'user') ?? stringField(request.body, 'username');
    if (!name) return malformed('user is required');
    const password = stringField(request.body, 'password');
    const groups = (listField(request.body, 'groups') ?? []).map(normalizeName);
    const properties = (request.body as { properties?: unknown }).properties;
    if (properties !== undefined && !isStringRecord(properties))
      return malformed('properties must be a dictionary of strings');
    const doc = await directory.groups(groupScopeOf(request));
    const missing = groups.find((group) => !groupNamed(doc, group));
    if (missing) return notFound('group', missing);
    // RestAuth: a user may be created without a password (login disabled until one is set).
    return {
      name,
      password: password ? password : null,
      groups,
      options: { properties: properties ?? {}, policy: policyOf(request) },
    };
  }

  restAuthRoute(app, {
    method: 'POST',
    url: '/users',
    permission: 'user_create',
    body: true,
    handler: async (request) => {
      const input = await newUser(request);
      if ('kind' in input) return input;
      const user = await directory.createUser(input.name, input.password, input.options);
      if (input.groups.length > 0)
        await directory.addToGroups(input.groups, user.name, groupScopeOf(request));
      return CREATED;
    },
  });

  // RestAuth 0.6: the same checks as a create, nothing written (a wiki's sign-up form asks first).
  restAuthRoute(app, {
    method: 'POST',
    url: '/test/users',
    permission: 'user_create',
    protocols: ['restauth-0.6'],
    body: true,
    handler: async (request) => {
      const input = await newUser(request);
      if ('kind' in input) return input;
      await directory.checkNewUser(input.name, input.password, input.options);
      return CREATED;
    },
  });

  restAuthRoute<Params>(app, {
    method: 'GET',
    url: '/users/:name',
    permission: 'user_exists',
    handler: async (request) =>
      (await directory.getUser(request.params.name)) ? DONE : notFound('user', request.params.name),
  });

  restAuthRoute<Params>(app, {
    method: 'POST',
    url: '/users/:name',
    permission: 'user_verify_password',
    body: true,
    bodyLimit: CREDENTIAL_BODY_LIMIT,
    handler: async (request) => {
      const password = stringField(request.body, 'password');
      if (password === undefined) return malformed('password is required');
      const user = await authenticator.checkPassword(request.params.name, password, origin(request));
      return user ? DONE : notFound('user', request.params.name);
    },
  });

  restAuthRoute<Params>(app, {
    method: 'PUT',
    url: '/users/:name',
    permission: 'user_change_password',
    body: true,
    bodyLimit: CREDENTIAL_BODY_LIMIT,
    handler: async (request) => {
      const { protocol } = callerOf(request);
      const body = (request.body ?? {}) as Record<string, unknown>;
      const newName = stringField(body, 'username') ?? stringField(body, 'user');
      const password = stringField(body, 'password');
      // A missing user is 404 before anything in the body is judged (RestAuth 0.6 does so).
      if (!(await directory.getUser(request.params.name))) return notFound('user', request.params.name);
      if (newName !== undefined && normalizeName(newName) !== normalizeName(request.params.name))
        return { kind: 'forbidden', message: 'usernames cannot be changed' };
      if (password === undefined) {
        // RestAuth 0.6: a PUT without a password (the client's set_password()) disables password
        // login; fields it does not know are a bad request. The reference asks for a password.
        const bodiless = Object.keys(body).length === 0;
        if (!(bodiless && protocol.bodilessPasswordDisables) && newName === undefined)
          return malformed('password is required');
        if (newName !== undefined) return DONE;
      }
      // An empty password turns password login off (RestAuth), tokens keep working.
      const user = await directory.setPassword(
        request.params.name,
        password ? password : null,
        policyOf(request).passwordMinLength,
      );
      return user ? DONE : notFound('user', request.params.name);
    },
  });

  restAuthRoute<Params>(app, {
    method: 'DELETE',
    url: '/users/:name',
    permission: 'user_delete',
    handler: async (request) =>
      (await directory.deleteUser(request.params.name)) ? DONE : notFound('user', request.params.name),
  });
}
