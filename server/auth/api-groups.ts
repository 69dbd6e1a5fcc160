import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Directory } from '../identity/directory.ts';
import { groupNamed } from '../identity/groups.ts';
import { normalizeName } from '../identity/names.ts';
import { ktraError } from './ktra.ts';

const groupParams = {
  type: 'object',
  properties: { group: { type: 'string', maxLength: 256 }, user: { type: 'string', maxLength: 256 } },
  required: ['group'],
} as const;

/**
 * Groups for administrators under `/auth/api/v1/groups` (the web UI's page): the same directory
 * operations RestAuth services have under `/restauth/groups`, for a person instead of a service.
 */
export function groupAdminRoutes(
  app: FastifyInstance,
  options: {
    directory: Directory;
    access: { access: { operation: 'account.admin' } };
    refused: (reply: FastifyReply, error: unknown) => FastifyReply;
  },
): void {
  const { directory, access: config, refused } = options;

  app.get('/groups', { config }, async () => {
    const doc = await directory.groups();
    return {
      groups: Object.entries(doc.groups)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, group]) => ({ name, users: group.users, subgroups: group.subgroups })),
    };
  });

  app.post<{ Body: { name: string } }>(
    '/groups',
    {
      config,
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { name: { type: 'string', minLength: 1, maxLength: 256 } },
          required: ['name'],
        },
      },
    },
    async (request, reply) => {
      try {
        await directory.createGroup(request.body.name);
      } catch (error) {
        return refused(reply, error);
      }
      return reply.code(201).send({ name: normalizeName(request.body.name), users: [], subgroups: [] });
    },
  );

  app.delete<{ Params: { group: string } }>(
    '/groups/:group',
    { config, schema: { params: groupParams } },
    async (request, reply) => {
      if (!(await directory.deleteGroup(request.params.group))) return ktraError(reply, 404, 'no such group');
      return reply.code(204).send();
    },
  );

  app.put<{ Params: { group: string; user: string } }>(
    '/groups/:group/users/:user',
    { config, schema: { params: groupParams } },
    async (request, reply) => {
      const group = normalizeName(request.params.group);
      const user = await directory.getUser(request.params.user);
      if (!user) return ktraError(reply, 404, 'no such user');
      if (!groupNamed(await directory.groups(), group)) return ktraError(reply, 404, 'no such group');
      await directory.addToGroups([group], user.name);
      return reply.code(204).send();
    },
  );

  app.delete<{ Params: { group: string; user: string } }>(
    '/groups/:group/users/:user',
    { config, schema: { params: groupParams } },
    async (request, reply) => {
      const group = normalizeName(request.params.group);
      const user = normalizeName(request.params.user);
      let state = 'no-group' as 'removed' | 'no-group' | 'no-member';
      await directory.updateGroups((doc) => {
        const current = groupNamed(doc, group);
        state = !current ? 'no-group' : current.users.includes(user) ? 'removed' : 'no-member';
        if (!current || state !== 'removed') return undefined;
        return {
          groups: { ...doc.groups, [group]: { ...current, users: current.users.filter((u) => u !== user) } },
        };
      });
      if (state !== 'removed')
        return ktraError(reply, 404, state === 'no-group' ? 'no such group' : 'not a member');
      return reply.code(204).send();
    },
  );
}
