import type { FastifyRequest } from 'fastify';
import { publicBaseUrl } from '../../../http/proxies.ts';
import { ANONYMOUS, type Principal } from '../../../identity/principal.ts';
import { OciError } from '../errors.ts';
import { roleAllows, roleOn } from '../permissions.ts';
import type { OciServices } from '../services.ts';
import { TOKEN_PATH } from '../token/routes.ts';

/** Who is calling and what their token allows. */
export interface Caller {
  principal: Principal;
  /** `type:name` → actions from the verified token; empty for anonymous calls. */
  access: Map<string, Set<string>>;
  hasToken: boolean;
}

/** Reads the bearer token (if any). An invalid or expired token is a 401 with `invalid_token`. */
export async function identify(services: OciServices, request: FastifyRequest): Promise<Caller> {
  const header = request.headers.authorization;
  if (!header || !/^bearer /i.test(header))
    return { principal: ANONYMOUS, access: new Map(), hasToken: false };
  const verified = await services.tokens.verify(header.slice(7).trim());
  if (!verified) {
    throw new OciError('UNAUTHORIZED', 'invalid or expired token', {
      headers: { 'WWW-Authenticate': `${challengeBase(services, request)},error="invalid_token"` },
    });
  }
  const access = new Map<string, Set<string>>();
  for (const entry of verified.access) {
    const key = `${entry.type}:${entry.name}`;
    const set = access.get(key) ?? new Set<string>();
    for (const action of entry.actions) set.add(action);
    access.set(key, set);
  }
  return { principal: verified.principal, access, hasToken: true };
}

/**
 * Requires `actions` on a repository. The token's `access` claim decides; without a token, public
 * repositories allow anonymous pull (when enabled). Otherwise a 401 names the scope to ask for.
 */
export async function requireRepository(
  services: OciServices,
  request: FastifyRequest,
  caller: Caller,
  repository: string,
  actions: string[],
): Promise<void> {
  const granted = caller.access.get(`repository:${repository}`);
  if (granted && actions.every((action) => granted.has(action) || granted.has('*'))) return;
  if (!caller.hasToken && actions.every((action) => action === 'pull') && services.settings.anonymousPull) {
    const record = await services.repositories.get(repository);
    if (record && roleAllows(roleOn(ANONYMOUS, record, services.policy), 'read')) return;
  }
  const scopeActions = actions.includes('push') && !actions.includes('pull') ? ['pull', ...actions] : actions;
  throw challenge(services, request, `repository:${repository}:${scopeActions.join(',')}`, caller.hasToken);
}

/** Whether the caller may read a repository it has no token entry for (cross-repository mounts). */
export async function mayRead(services: OciServices, caller: Caller, repository: string): Promise<boolean> {
  const granted = caller.access.get(`repository:${repository}`);
  if (granted?.has('pull') || granted?.has('*')) return true;
  const record = await services.repositories.get(repository);
  return record !== null && roleAllows(roleOn(caller.principal, record, services.policy), 'read');
}

export function challenge(
  services: OciServices,
  request: FastifyRequest,
  scope: string | null,
  insufficient = false,
): OciError {
  let header = challengeBase(services, request);
  if (scope) header += `,scope="${scope}"`;
  if (insufficient) header += ',error="insufficient_scope"';
  return new OciError('UNAUTHORIZED', 'authentication required', {
    headers: { 'WWW-Authenticate': header },
    ...(scope
      ? {
          detail: [
            {
              Type: scope.split(':')[0],
              Name: scope.slice(scope.indexOf(':') + 1, scope.lastIndexOf(':')),
              Action: scope.slice(scope.lastIndexOf(':') + 1),
            },
          ],
        }
      : {}),
  });
}

function challengeBase(services: OciServices, request: FastifyRequest): string {
  return `Bearer realm="${realm(services, request)}",service="${services.settings.service}"`;
}

export function realm(services: OciServices, request: FastifyRequest): string {
  if (services.settings.realm) return services.settings.realm;
  return `${publicBaseUrl(services.publicUrl, request)}${TOKEN_PATH}`;
}
