import type { FastifyInstance, FastifyRequest } from 'fastify';
import { groupNamed, groupsOfUser, membersOfGroup } from '../../identity/groups.ts';
import { normalizeName } from '../../identity/names.ts';
import { listField, stringField } from '../credentials.ts';
import type { Outcome } from './answers.ts';
import {
  CREATED,
  DONE,
  groupScopeOf,
  malformed,
  notFound,
  type Params,
  policyOf,
  type RestAuthKit,
  restAuthRoute,
} from './common.ts';

/**
 * `/groups/…`: groups, their members and their subgroups (RestAuth nesting), in the calling
 * service's scope: the shared groups, or its own (`groups: own`).
 */
export function groupRoutes(app: FastifyInstance, kit: RestAuthKit): void {
  const { directory } = kit;

  restAuthRoute(app, {
    method: 'GET',
    url: '/groups',
    permission: 'groups_list',
    handler: async (request) => {
      const doc = await directory.groups(groupScopeOf(request));
      const { user } = request.query;
      if (user === undefined) return { kind: 'list', items: Object.keys(doc.groups).sort() };
      if (!(await directory.getUser(user))) return notFound('user', user);
      return { kind: 'list', items: groupsOfUser(doc, normalizeName(user)) };
    },
  });

  /** A create's body: the group, and the users to add (who must exist). */
  async function newGroup(request: FastifyRequest): Promise<Outcome | { group: string; users: string[] }> {
    const group = stringField(request.body, 'group') ?? stringField(request.body, 'name');
    if (!group) return malformed('group is required');
    const users = (listField(request.body, 'users') ?? []).map(normalizeName);
    for (const user of users) if (!(await directory.getUser(user))) return notFound('user', user);
    return { group, users };
  }

  restAuthRoute(app, {
    method: 'POST',
    url: '/groups',
    permission: 'group_create',
    body: true,
    handler: async (request) => {
      const input = await newGroup(request);
      if ('kind' in input) return input;
      const scope = groupScopeOf(request);
      await directory.createGroup(input.group, scope, policyOf(request).userNames);
      for (const user of input.users) await directory.addToGroups([normalizeName(input.group)], user, scope);
      return CREATED;
    },
  });

  restAuthRoute(app, {
    method: 'POST',
    url: '/test/groups',
    permission: 'group_create',
    protocols: ['restauth-0.6'],
    body: true,
    handler: async (request) => {
      const input = await newGroup(request);
      if ('kind' in input) return input;
      await directory.checkNewGroup(input.group, groupScopeOf(request), policyOf(request).userNames);
      return CREATED;
    },
  });

  restAuthRoute<Params>(app, {
    method: 'GET',
    url: '/groups/:group',
    permission: 'group_exists',
    handler: async (request) => {
      const doc = await directory.groups(groupScopeOf(request));
      return groupNamed(doc, normalizeName(request.params.group))
        ? DONE
        : notFound('group', request.params.group);
    },
  });

  restAuthRoute<Params>(app, {
    method: 'DELETE',
    url: '/groups/:group',
    permission: 'group_delete',
    handler: async (request) =>
      (await directory.deleteGroup(request.params.group, groupScopeOf(request)))
        ? DONE
        : notFound('group', request.params.group),
  });

  restAuthRoute<Params>(app, {
    method: 'GET',
    url: '/groups/:group/users',
    permission: 'group_users_list',
    handler: async (request) => {
      const members = await directory.membersOf(request.params.group, groupScopeOf(request));
      return members ? { kind: 'list', items: members } : notFound('group', request.params.group);
    },
  });

  restAuthRoute<Params>(app, {
    method: 'POST',
    url: '/groups/:group/users',
    permission: 'group_add_user',
    body: true,
    handler: async (request) => {
      const user = stringField(request.body, 'user') ?? stringField(request.body, 'username');
      if (!user) return malformed('user is required');
      const group = normalizeName(request.params.group);
      const scope = groupScopeOf(request);
      // RestAuth 0.6 looks the group up first: an unknown group is 404 group whoever the user.
      if (!groupNamed(await directory.groups(scope), group)) return notFound('group', group);
      if (!(await directory.getUser(user))) return notFound('user', user);
      let found = false;
      await directory.updateGroups((doc) => {
        const current = groupNamed(doc, group);
        found = current !== undefined;
        if (!current || current.users.includes(normalizeName(user))) return undefined;
        return {
          groups: { ...doc.groups, [group]: { ...current, users: [...current.users, normalizeName(user)] } },
        };
      }, scope);
      return found ? DONE : notFound('group', group);
    },
  });

  restAuthRoute<Params>(app, {
    method: 'GET',
    url: '/groups/:group/users/:user',
    permission: 'group_user_in_group',
    handler: async (request) => {
      const doc = await directory.groups(groupScopeOf(request));
      const group = normalizeName(request.params.group);
      if (!groupNamed(doc, group)) return notFound('group', group);
      return membersOfGroup(doc, group).includes(normalizeName(request.params.user))
        ? DONE
        : notFound('user', request.params.user);
    },
  });

  restAuthRoute<Params>(app, {
    method: 'DELETE',
    url: '/groups/:group/users/:user',
    permission: 'group_remove_user',
    handler: async (request) => {
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
      }, groupScopeOf(request));
      if (state === 'no-group') return notFound('group', group);
      if (state === 'no-member') return notFound('user', user);
      return DONE;
    },
  });

  restAuthRoute<Params>(app, {
    method: 'GET',
    url: '/groups/:group/groups',
    permission: 'group_groups_list',
    handler: async (request) => {
      const doc = await directory.groups(groupScopeOf(request));
      const current = groupNamed(doc, normalizeName(request.params.group));
      return current
        ? { kind: 'list', items: [...current.subgroups].sort() }
        : notFound('group', request.params.group);
    },
  });

  restAuthRoute<Params>(app, {
    method: 'POST',
    url: '/groups/:group/groups',
    permission: 'group_add_group',
    body: true,
    handler: async (request) => {
      const meta = normalizeName(request.params.group);
      const sub = normalizeName(stringField(request.body, 'group') ?? '');
      if (!sub) return malformed('group is required');
      if (sub === meta) return malformed('a group cannot be its own subgroup');
      let missing: string | undefined;
      await directory.updateGroups((doc) => {
        const current = groupNamed(doc, meta);
        missing = !current ? meta : !groupNamed(doc, sub) ? sub : undefined;
        if (!current || missing || current.subgroups.includes(sub)) return undefined;
        return { groups: { ...doc.groups, [meta]: { ...current, subgroups: [...current.subgroups, sub] } } };
      }, groupScopeOf(request));
      return missing ? notFound('group', missing) : DONE;
    },
  });

  restAuthRoute<Params>(app, {
    method: 'DELETE',
    url: '/groups/:group/groups/:sub',
    permission: 'group_remove_group',
    handler: async (request) => {
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
      }, groupScopeOf(request));
      if (state === 'no-group') return notFound('group', meta);
      if (state === 'no-sub') return notFound('group', sub);
      return DONE;
    },
  });
}
