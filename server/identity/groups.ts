/**
 * Groups with RestAuth's nesting semantics: a group may have subgroups, and a subgroup inherits
 * every membership of its metagroups. So a member of `staff`, where `developers` is a subgroup of
 * `staff`, is a member of `developers` too. Pure functions over the one groups document.
 */

import { ownValue } from '../store/records.ts';

export interface GroupRecord {
  /** Direct members (usernames). */
  users: string[];
  /** Groups that inherit this group's members. */
  subgroups: string[];
  createdAt: string;
}

export interface GroupsDoc {
  groups: Record<string, GroupRecord>;
}

export const EMPTY_GROUPS: GroupsDoc = Object.freeze({ groups: {} }) as GroupsDoc;

/** The group of that name, if it exists (`constructor` is a name like any other). */
export function groupNamed(doc: GroupsDoc, name: string): GroupRecord | undefined {
  return ownValue(doc.groups, name);
}

/** Every group a user belongs to: the direct ones, then their subgroups, transitively. */
export function groupsOfUser(doc: GroupsDoc, user: string): string[] {
  const direct = Object.entries(doc.groups)
    .filter(([, group]) => group.users.includes(user))
    .map(([name]) => name);
  return closure(doc, direct, (group) => group.subgroups);
}

/** Every user who is a member of a group: its own members and those of all its metagroups. */
export function membersOfGroup(doc: GroupsDoc, name: string): string[] {
  const metagroups = closure(doc, [name], (_group, groupName) =>
    Object.entries(doc.groups)
      .filter(([, candidate]) => candidate.subgroups.includes(groupName))
      .map(([metaName]) => metaName),
  );
  const members = new Set<string>();
  for (const groupName of metagroups)
    for (const user of ownValue(doc.groups, groupName)?.users ?? []) members.add(user);
  return [...members].sort();
}

/** Breadth-first walk; the visited set makes cycles harmless. */
function closure(
  doc: GroupsDoc,
  start: string[],
  next: (group: GroupRecord, name: string) => string[],
): string[] {
  const seen = new Set<string>();
  const queue = [...start];
  while (queue.length > 0) {
    const name = queue.shift()!;
    const group = ownValue(doc.groups, name);
    if (!group || seen.has(name)) continue;
    seen.add(name);
    queue.push(...next(group, name));
  }
  return [...seen].sort();
}
