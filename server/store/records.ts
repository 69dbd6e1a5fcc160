/**
 * Documents read from the store are plain objects keyed by names people choose: users' properties,
 * groups, repository grants. Read with `record[name]` or `name in record`, the names `constructor`,
 * `toString` or `__proto__` would find Object.prototype's members; these helpers read own entries
 * only, so every name is an ordinary one that does not exist until it is created. Writes go through
 * object literals with computed keys (`{ ...record, [name]: value }`), which always make own entries.
 */
export function ownValue<T>(record: Readonly<Record<string, T>>, name: string): T | undefined {
  return Object.hasOwn(record, name) ? record[name] : undefined;
}

export function hasOwnEntry(record: object, name: string): boolean {
  return Object.hasOwn(record, name);
}
