import type { FastifyInstance } from 'fastify';
import { groupNamed, groupsOfUser, membersOfGroup } from '../../identity/groups.ts';
import { normalizeName } from '../../identity/names.ts';
import { listField, stringField } from '../credentials.ts';
import { anyBody, nameParams, type Params, type RestAuthKit } from './common.ts';

/** `/groups/…`: groups, their members and their subgroups (RestAuth nesting). */
export function groupRoutes(app: FastifyInstance, kit: RestAuthKit): void {
  const { directory, allowed, notFound, refused } = kit;

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
      if (users.length > 0)
        for (const user of users) await directory.addToGroups([normalizeName(group)], user);
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
      if (!groupNamed(doc, normalizeName(request.params.group)))
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
        const current = groupNamed(doc, group);
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

  app.get<{ Params: Params }>(
    '/groups/:group/users/:user',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!allowed(request, reply, 'group_user_in_group')) return reply;
      const doc = await directory.groups();
      const group = normalizeName(request.params.group);
      if (!groupNamed(doc, group)) return notFound(reply, 'group', group);
      if (!membersOfGroup(doc, group).includes(normalizeName(request.params.user)))
        return notFound(reply, 'user', request.params.user);
      return reply.code(200).send();
    },
  );

  app.delete<{ Params: Params }>(
    '/groups/:group/users/:user',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!allowed(request, reply, 'group_remove_user')) return reply;
      const group = normalizeName(request.params.group);
      const user = normalizeName(request.params.user);
      let state: 'removed' | 'no-group' | 'no-member' = 'no-group';
      await directory.updateGroups((doc) => {
        const current = groupNamed(doc, group);
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
      const current = groupNamed(doc, normalizeName(request.params.group));
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
        const current = groupNamed(doc, meta);
        missing = !current ? meta : !groupNamed(doc, sub) ? sub : undefined;
        if (!current || missing || current.subgroups.includes(sub)) return undefined;
        return { groups: { ...doc.groups, [meta]: { ...current, subgroups: [...current.subgroups, sub] } } };
      });
      if (missing) return notFound(reply, 'group', missing);
      return reply.code(200).send();
    },
  );

  app.delete<{ Params: Params }>(
    '/groups/:group/groups/:sub',
    { schema: { params: nameParams } },
    async (request, reply) => {
      if (!allowed(request, reply, 'group_remove_group')) return reply;
      const meta = normalizeName(request.params.group);
      const sub = normalizeName(request.params.sub);
      let state: 'removed' | 'no-group' | 'no-sub' = 'no-group';
      await directory.updateGroups((doc) => {
        const current = groupNamed(doc, meta);
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
}
