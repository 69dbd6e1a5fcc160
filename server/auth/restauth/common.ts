import type { FastifyInstance, FastifyRequest, HTTPMethods } from 'fastify';
import type { Authenticator } from '../../identity/authenticator.ts';
import {
  type AccountPolicy,
  type Directory,
  type GroupScope,
  IdentityError,
} from '../../identity/directory.ts';
import { PasswordQueueFullError } from '../../identity/password-pool.ts';
import type { LoginOrigin } from '../../identity/rate-limit.ts';
import { TooManyAttemptsError } from '../../identity/rate-limit.ts';
import type { AuthenticatedService, Permission, Protocol } from '../../identity/services.ts';
import type { Outcome, RestAuthProtocol } from './answers.ts';
import type { Format } from './negotiation.ts';

/** Who is calling the RestAuth API and how to answer it, resolved once per request. */
export interface RestAuthCall {
  service: AuthenticatedService;
  protocol: RestAuthProtocol;
  /** The answer's format (`Accept`); JSON for a revision that does not negotiate. */
  format: Format;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the RestAuth plugin's onRequest hook once the service has authenticated. */
    restauthCall: RestAuthCall | null;
  }
  interface FastifyContextConfig {
    /** The permission a RestAuth route needs, checked by the plugin's preHandler. */
    restauthPermission?: Permission;
    /** The revisions that have this route (the `/test/` dry runs are 0.6's); others get 404. */
    restauthProtocols?: readonly Protocol[];
  }
}

/** What every group of RestAuth routes gets from the plugin that authenticated the service. */
export interface RestAuthKit {
  authenticator: Authenticator;
  directory: Directory;
  /**
   * Where a password check through this call comes from: the calling service, and the end user's
   * address only when the service is trusted to relay it (`forwardsClientAddress`).
   */
  origin(request: FastifyRequest): LoginOrigin;
}

/** The calling service (the onRequest hook has refused every request without one). */
export function callerOf(request: FastifyRequest): RestAuthCall {
  if (!request.restauthCall) throw new Error('RestAuth route reached without an authenticated service');
  return request.restauthCall;
}

/** The names and passwords the calling service may set. */
export function policyOf(request: FastifyRequest): AccountPolicy {
  const { service } = callerOf(request);
  return { userNames: service.userNames, passwordMinLength: service.passwordMinLength };
}

/** The groups the calling service sees: the shared ones, or its own. */
export function groupScopeOf(request: FastifyRequest): GroupScope {
  const { service } = callerOf(request);
  return service.groups === 'own' ? service.name : null;
}

export interface RestAuthRoute<P> {
  method: HTTPMethods;
  url: string;
  permission: Permission;
  protocols?: readonly Protocol[];
  body?: boolean;
  bodyLimit?: number;
  handler(
    request: FastifyRequest<{ Params: P; Querystring: Record<string, string | undefined> }>,
  ): Promise<Outcome>;
}

/**
 * Registers a RestAuth route: its permission and revisions as route config (checked by the
 * plugin's one preHandler), its handler's outcome answered by the caller's revision.
 */
export function restAuthRoute<P = Params>(app: FastifyInstance, route: RestAuthRoute<P>): void {
  app.route<{ Params: P; Querystring: Record<string, string | undefined> }>({
    method: route.method,
    url: route.url,
    schema: {
      params: nameParams,
      ...(route.body ? { body: anyBody } : {}),
    },
    ...(route.bodyLimit ? { bodyLimit: route.bodyLimit } : {}),
    config: {
      restauthPermission: route.permission,
      ...(route.protocols ? { restauthProtocols: route.protocols } : {}),
    },
    handler: async (request, reply) => {
      const { protocol, format } = callerOf(request);
      let outcome: Outcome;
      try {
        outcome = await route.handler(request);
      } catch (error) {
        outcome = outcomeOfError(error);
      }
      return protocol.answer(reply, outcome, format);
    },
  });
}

/** A refusal the identity domain throws, as an outcome; anything else is a failure (500). */
export function outcomeOfError(error: unknown): Outcome {
  if (error instanceof IdentityError) {
    switch (error.reason) {
      case 'invalid':
        return { kind: 'unacceptable', message: error.message };
      case 'exists':
        return { kind: 'exists', message: error.message };
      case 'forbidden':
        return { kind: 'forbidden', message: error.message };
      case 'not-found':
        return { kind: 'not-found', type: 'user', name: '' };
    }
  }
  if (error instanceof TooManyAttemptsError)
    return { kind: 'throttled', retryAfterSeconds: error.retryAfterSeconds };
  if (error instanceof PasswordQueueFullError)
    return { kind: 'overloaded', retryAfterSeconds: error.retryAfterSeconds, message: error.message };
  throw error;
}

export const nameParams = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    prop: { type: 'string' },
    group: { type: 'string' },
    user: { type: 'string' },
    sub: { type: 'string' },
  },
} as const;
/** Bodies are JSON or form-encoded dictionaries; field checks are done by the handlers. */
export const anyBody = { type: 'object' } as const;

export type Params = { name: string; prop: string; group: string; user: string; sub: string };

export const DONE: Outcome = { kind: 'done' };
export const CREATED: Outcome = { kind: 'created' };
export const notFound = (type: 'user' | 'group' | 'property', name: string): Outcome => ({
  kind: 'not-found',
  type,
  name,
});
export const malformed = (message: string): Outcome => ({ kind: 'malformed', message });

export function isStringRecord(value: unknown): value is Record<string, string> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((item) => typeof item === 'string')
  );
}

/** A PUT of several properties: JSON dictionary or form fields (first value of each). */
export function flatten(body: unknown): Record<string, string> | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null;
  const entries: [string, string][] = [];
  for (const [key, value] of Object.entries(body)) {
    const item = Array.isArray(value) ? value[0] : value;
    if (typeof item !== 'string') return null;
    entries.push([key, item]);
  }
  // fromEntries makes own entries only: a property named `__proto__` is kept, not swallowed.
  return Object.fromEntries(entries);
}
