import type { FastifyRequest } from 'fastify';
import { parseAuthorization } from '../../../http/authorization.ts';
import { publicBaseUrl } from '../../../http/proxies.ts';
import { ANONYMOUS, type Principal } from '../../../identity/principal.ts';
import { OciError } from '../errors.ts';
import type { OciServices } from '../services.ts';
import { TOKEN_PATH } from '../token/routes.ts';

/** Who is calling and what their token allows. */
export interface Caller {
  principal: Principal;
  /** `type:name` → actions from the verified token; empty for anonymous calls. */
  access: Map<string, Set<string>>;
  hasToken: boolean;
}

/**
 * Reads the registry JWT (if any). An invalid or expired token, or one whose credential has been
 * revoked since it was issued (user disabled or deleted, token revoked, password changed: checked
 * through the CredentialResolver, at most `credentialCacheSeconds` late), is a 401 `invalid_token`.
 */
export async function identify(services: OciServices, request: FastifyRequest): Promise<Caller> {
  const credentials = parseAuthorization(request.headers.authorization);
  // Basic and other schemes are for the token endpoint; here they count as no credentials, which
  // answers with the challenge that sends the client there.
  if (credentials.type !== 'token' || !credentials.bearer)
    return { principal: ANONYMOUS, access: new Map(), hasToken: false };
  const verified = await services.tokens.verify(credentials.token);
  const principal = verified ? await services.resolver.current(verified.principal) : null;
  if (!verified || !principal) {
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
  return { principal, access, hasToken: true };
}

/**
 * Requires `actions` on a repository. The token's `access` claim decides (the token endpoint put
 * there what the policy allowed); without a token, public repositories allow anonymous pull (when
 * enabled). Otherwise a 401 names the scope to ask for.
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
  if (!caller.hasToken && actions.every((action) => action === 'pull')) {
    const record = await services.repositories.get(repository);
    if (services.policy.decide(ANONYMOUS, { operation: 'oci.pull', repository, record }).allowed) return;
  }
  // A write nobody may make (a proxy namespace) is DENIED, not a challenge no credential would pass.
  for (const action of actions) {
    if (action === 'pull') continue;
    const decision = services.policy.decide(caller.principal, {
      operation: action === 'push' ? 'oci.push' : 'oci.delete',
      repository,
      record: null,
    });
    if (!decision.allowed && decision.reason === 'read-only') throw new OciError('DENIED', decision.message);
  }
  const scopeActions = actions.includes('push') && !actions.includes('pull') ? ['pull', ...actions] : actions;
  throw challenge(services, request, `repository:${repository}:${scopeActions.join(',')}`, caller.hasToken);
}

/** Whether the caller may read a repository it has no token entry for (cross-repository mounts, catalog). */
export async function mayRead(services: OciServices, caller: Caller, repository: string): Promise<boolean> {
  const granted = caller.access.get(`repository:${repository}`);
  if (granted?.has('pull') || granted?.has('*')) return true;
  const record = await services.repositories.get(repository);
  return services.policy.decide(caller.principal, { operation: 'oci.pull', repository, record }).allowed;
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
