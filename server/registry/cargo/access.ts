import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IdentityClient, Principal } from '../../identity/principal.ts';

/** The token scopes crates.io defines (RFC 2947); a `null` scope list means "everything". */
export type CargoScope = 'publish-new' | 'publish-update' | 'yank' | 'change-owners';

/** An authentication or authorization refusal, answered in cargo's error format. */
export class AccessError extends Error {
  readonly status: 401 | 403;
  constructor(status: 401 | 403, message: string) {
    super(message);
    this.name = 'AccessError';
    this.status = status;
  }
}

/** cargo sends the raw token in `Authorization`; other clients send `Bearer <token>`. */
export function tokenFrom(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const token = /^bearer\s+/i.test(header) ? header.replace(/^bearer\s+/i, '') : header;
  return token.trim() === '' ? null : token.trim();
}

/** Who is calling: a Principal, null for "no token", AccessError(403) for a token the AuthService refuses. */
export async function principalOf(
  request: FastifyRequest,
  identity: IdentityClient,
): Promise<Principal | null> {
  const token = tokenFrom(request);
  if (!token) return null;
  const principal = await identity.verifyToken(token);
  if (!principal)
    throw new AccessError(
      403,
      'the token is invalid, expired or revoked: get a new one and run `cargo login` again',
    );
  return principal;
}

export async function requirePrincipal(
  request: FastifyRequest,
  identity: IdentityClient,
  action: string,
): Promise<Principal> {
  const principal = await principalOf(request, identity);
  if (!principal)
    throw new AccessError(
      401,
      `${action} needs a token: get one (see the registry's /me page) and run \`cargo login\``,
    );
  return principal;
}

/**
 * Token scopes: endpoint scopes as on crates.io, plus optional crate scopes written `crate:NAME` or
 * `crate:PREFIX*`; when a token has crate scopes, it acts only on the crates they match.
 */
export function requireScope(principal: Principal, scope: CargoScope, crate: string): void {
  if (principal.scopes === null) return;
  if (!principal.scopes.includes(scope))
    throw new AccessError(
      403,
      `this token may not ${describeScope(scope)} (it lacks the \`${scope}\` scope): use a token that has it`,
    );
  const crateScopes = principal.scopes.filter((s) => s.startsWith('crate:')).map((s) => s.slice(6));
  if (crateScopes.length === 0) return;
  const matches = crateScopes.some((pattern) =>
    pattern.endsWith('*') ? crate.startsWith(pattern.slice(0, -1)) : crate === pattern,
  );
  if (!matches)
    throw new AccessError(
      403,
      `this token is limited to the crates ${crateScopes.join(', ')}; it may not act on \`${crate}\``,
    );
}

function describeScope(scope: CargoScope): string {
  switch (scope) {
    case 'publish-new':
      return 'publish new crates';
    case 'publish-update':
      return 'publish new versions of existing crates';
    case 'yank':
      return 'yank or unyank versions';
    case 'change-owners':
      return 'change crate owners';
  }
}

/** RFC 3139: a private registry answers 401 with where to get a token. */
export function sendUnauthorized(reply: FastifyReply, loginUrl: string, message: string): FastifyReply {
  return reply
    .code(401)
    .header('www-authenticate', `Cargo login_url="${loginUrl}"`)
    .send({ errors: [{ detail: message }] });
}
