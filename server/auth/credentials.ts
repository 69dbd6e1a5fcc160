import type { FastifyReply } from 'fastify';
import { TooManyAttemptsError } from '../identity/rate-limit.ts';

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
