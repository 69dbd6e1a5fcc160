/** One parsed Docker scope: `type[(class)]:name:action[,action]`. */
export interface Scope {
  type: string;
  name: string;
  actions: string[];
}

/**
 * Parses a scope. The name sits between the first and the last `:` because it may itself contain
 * one (`localhost:5000/app`); a resource class (`repository(plugin)`) is accepted and dropped.
 */
export function parseScope(text: string): Scope | null {
  const first = text.indexOf(':');
  const last = text.lastIndexOf(':');
  if (first <= 0 || last <= first) return null;
  const type = text.slice(0, first).replace(/\([a-z0-9]+\)$/i, '');
  const name = text.slice(first + 1, last);
  const actions = text
    .slice(last + 1)
    .split(',')
    .map((action) => action.trim())
    .filter(Boolean);
  if (!/^[a-z0-9]+$/.test(type) || name.length === 0 || actions.length === 0) return null;
  return { type, name, actions: [...new Set(actions)] };
}

/** All scopes of a token request: `scope` repeated (GET) and/or space-separated (POST). */
export function parseScopes(values: string | string[] | undefined): Scope[] {
  const list = values === undefined ? [] : Array.isArray(values) ? values : [values];
  const scopes: Scope[] = [];
  for (const value of list) {
    for (const part of value.split(' ')) {
      if (!part) continue;
      const scope = parseScope(part);
      if (scope) scopes.push(scope);
    }
  }
  return scopes;
}

export function formatScope(scope: Scope): string {
  return `${scope.type}:${scope.name}:${scope.actions.join(',')}`;
}
