import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Decision } from '../../../access/policy.ts';
import { ANONYMOUS, type Principal } from '../../../identity/principal.ts';
import type { Session } from './sessions.ts';

/** Who an API v1 request is, established once per request by the plugin's onRequest hook. */
export interface ApiCaller {
  principal: Principal;
  session: Session | null;
  sessionId: string | undefined;
}

/** A refusal in API v1's (Quay's) error format. */
export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(status: number, type: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.type = type;
  }
}

export const notFound = () => new ApiError(404, 'not_found', 'Not Found');
export const invalid = (message: string) => new ApiError(400, 'invalid_request', message);

declare module 'fastify' {
  interface FastifyRequest {
    /** API v1's caller (set by its onRequest hook). */
    apiCaller: ApiCaller | null;
  }
}

/** A policy refusal as API v1 answers it; Quay hides what the caller may not see behind 404. */
export function refusal(decision: Exclude<Decision, { allowed: true }>): ApiError {
  switch (decision.reason) {
    case 'authenticate':
      return new ApiError(401, 'invalid_token', 'Requires authentication');
    case 'scope':
      return new ApiError(403, 'insufficient_scope', decision.message);
    case 'forbidden':
      return new ApiError(403, 'insufficient_scope', 'Unauthorized');
    case 'read-only':
      return new ApiError(403, 'read_only', decision.message);
    case 'unknown':
      return notFound();
  }
}

export function sendError(reply: FastifyReply, status: number, type: string, message: string): FastifyReply {
  return reply
    .code(status)
    .type('application/json')
    .send({ status, error_type: type, error_message: message, title: type, detail: message });
}

/** The caller the onRequest hook established. */
export function callerOf(request: FastifyRequest): ApiCaller {
  return request.apiCaller ?? { principal: ANONYMOUS, session: null, sessionId: undefined };
}
