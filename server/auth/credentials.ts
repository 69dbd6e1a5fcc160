import type { FastifyReply, FastifyRequest } from 'fastify';
import { parseAuthorization } from '../http/authorization.ts';
import { clientAddress } from '../http/proxies.ts';
import type { Authenticator } from '../identity/authenticator.ts';
import type { Principal } from '../identity/principal.ts';
import { TooManyAttemptsError } from '../identity/rate-limit.ts';

/** The principal behind a request's Authorization header; null when absent or wrong. */
export async function authenticateRequest(
  authenticator: Authenticator,
  request: FastifyRequest,
): Promise<Principal | null> {
  const credentials = parseAuthorization(request.headers.authorization);
  if (credentials.type === 'token') return authenticator.verifyToken(credentials.token);
  if (credentials.type === 'basic')
    return authenticator.verifyPassword(credentials.username, credentials.password, clientAddress(request));
  return null;
}

/** Answers 429 with Retry-After for a throttled check; rethrows anything else. */
export function sendThrottled(error: unknown, reply: FastifyReply, body: unknown): FastifyReply {
  if (!(error instanceof TooManyAttemptsError)) throw error;
  return reply.code(429).header('retry-after', String(error.retryAfterSeconds)).send(body);
}

/** Form bodies give a string or an array of strings per field; JSON gives anything. */
export function stringField(body: unknown, name: string): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const value = (body as Record<string, unknown>)[name];
  if (Array.isArray(value)) return typeof value[0] === 'string' ? value[0] : undefined;
  return typeof value === 'string' ? value : undefined;
}

export function listField(body: unknown, name: string): string[] | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const value = (body as Record<string, unknown>)[name];
  if (value === undefined) return undefined;
  const items = Array.isArray(value) ? value : [value];
  return items.filter((item): item is string => typeof item === 'string');
}
