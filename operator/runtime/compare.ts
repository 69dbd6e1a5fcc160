/** Desired-versus-observed comparison, so a reconcile that would change nothing writes nothing. */
import { createHash } from 'node:crypto';

/**
 * True when every field set in `desired` has the same value in `observed`. Extra fields in
 * `observed` (server defaults, other managers' fields) do not count; arrays must have the same
 * length and match element by element.
 */
export function isSubset(desired: unknown, observed: unknown): boolean {
  if (desired === observed) return true;
  if (Array.isArray(desired)) {
    if (!Array.isArray(observed) || observed.length !== desired.length) return false;
    return desired.every((item, index) => isSubset(item, observed[index]));
  }
  if (desired && typeof desired === 'object') {
    if (!observed || typeof observed !== 'object' || Array.isArray(observed)) return false;
    const target = observed as Record<string, unknown>;
    return Object.entries(desired as Record<string, unknown>).every(([key, value]) =>
      value === undefined ? true : isSubset(value, target[key]),
    );
  }
  return false;
}

/** A stable hash of a JSON value: keys sorted, so the same content always hashes alike. */
export function stableHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}
