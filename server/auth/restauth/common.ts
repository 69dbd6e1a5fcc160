import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Authenticator } from '../../identity/authenticator.ts';
import type { Directory } from '../../identity/directory.ts';
import type { LoginOrigin } from '../../identity/rate-limit.ts';
import type { Permission } from '../../identity/services.ts';

/** What every group of RestAuth routes gets from the plugin that authenticated the service. */
export interface RestAuthKit {
  authenticator: Authenticator;
  directory: Directory;
  /**
   * Where a password check through this call comes from: the calling service, and the end user's
   * address only when the service is trusted to relay it (`forwardsClientAddress`).
   */
  origin(request: FastifyRequest): LoginOrigin;
  /** Sends 403 and returns false when the calling service lacks the permission. */
  allowed(request: FastifyRequest, reply: FastifyReply, operation: Permission): boolean;
  /** 404 with RestAuth's `Resource-Type` header. */
  notFound(reply: FastifyReply, type: 'user' | 'group' | 'property', name: string): FastifyReply;
  /** Maps an IdentityError to its status code; rethrows anything else. */
  refused(reply: FastifyReply, error: unknown): FastifyReply;
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

export const TOO_MANY = { error: 'too many failed password checks' };

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
