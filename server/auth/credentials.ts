import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Authenticator } from '../identity/authenticator.ts';
import type { Principal } from '../identity/principal.ts';
import { TooManyAttemptsError } from '../identity/rate-limit.ts';

export type Credentials =
  | { type: 'basic'; username: string; password: string }
  | { type: 'token'; token: string }
  | { type: 'none' };

/**
 * Reads the Authorization header the three ways clients send it: `Basic` (username and password
 * or token), `Bearer <token>`, and cargo's bare `<token>`.
 */
export function parseAuthorization(header: string | undefined): Credentials {
  const value = header?.trim();
  if (!value) return { type: 'none' };
  const space = value.indexOf(' ');
  const scheme = space > 0 ? value.slice(0, space).toLowerCase() : '';
  const rest = space > 0 ? value.slice(space + 1).trim() : '';
  if (scheme === 'basic') {
    const decoded = Buffer.from(rest, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return { type: 'none' };
    return { type: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (scheme === 'bearer') return rest ? { type: 'token', token: rest } : { type: 'none' };
  return { type: 'token', token: value };
}

/** The principal behind a request's Authorization header; null when absent or wrong. */
export async function authenticateRequest(
  authenticator: Authenticator,
  request: FastifyRequest,
): Promise<Principal | null> {
  const credentials = parseAuthorization(request.headers.authorization);
  if (credentials.type === 'token') return authenticator.verifyToken(credentials.token);
  if (credentials.type === 'basic')
    return authenticator.verifyPassword(credentials.username, credentials.password, request.ip);
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
