import type { FastifyRequest } from 'fastify';
import type { Principal } from '../identity/principal.ts';
import type { AccessPolicy, AccessRequest, Decision } from './policy.ts';

/**
 * What a route needs, declared in its `config.access` (as Quay's decorators declare it):
 * - `public`: nothing;
 * - `authenticated`: any valid credential; the handler asks the policy itself once it has read
 *   the resource from the body (cargo publish names its crate inside the upload);
 * - a policy question, or a function of the request that builds it (from the path, the body, a
 *   record it loads). Each surface's one preHandler asks it and answers a refusal in its format.
 */
export type RouteAccess =
  | 'public'
  | 'authenticated'
  | AccessRequest
  | ((request: FastifyRequest) => AccessRequest | Promise<AccessRequest>);

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling, set by the surface's onRequest hook (cargo, /auth/api/v1). */
    principal: Principal;
  }
  interface FastifyContextConfig {
    /** What the route needs: server/access/route-access.ts. */
    access?: RouteAccess;
  }
}

export const AUTHENTICATE: Exclude<Decision, { allowed: true }> = {
  allowed: false,
  reason: 'authenticate',
  message: 'authentication required',
};

/** The policy's answer for this request's route, or null when the route is public. */
export async function routeDecision(
  policy: AccessPolicy,
  principal: Principal,
  request: FastifyRequest,
): Promise<Decision | null> {
  const access = request.routeOptions.config?.access ?? 'public';
  if (access === 'public') return null;
  if (access === 'authenticated') return principal.kind === 'anonymous' ? AUTHENTICATE : { allowed: true };
  const question = typeof access === 'function' ? await access(request) : access;
  return policy.decide(principal, question);
}

/**
 * Whether the route needs a credential whatever the resource, so that a missing one is refused
 * before the body is read: every route but public ones, and Cargo reads of a public registry.
 */
export function needsCredentials(request: FastifyRequest, cargoReadIsOpen: boolean): boolean {
  const access = request.routeOptions.config?.access ?? 'public';
  if (access === 'public') return false;
  if (typeof access === 'object' && access.operation === 'cargo.read') return !cargoReadIsOpen;
  return true;
}
