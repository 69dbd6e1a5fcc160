import type { FastifyReply } from 'fastify';
import type { Protocol } from '../../identity/services.ts';
import { type Format, MEDIA_TYPES, serialize } from './negotiation.ts';

/**
 * What a RestAuth handler found, before any status code: each protocol revision turns it into an
 * answer in one place (RESTAUTH_PROTOCOLS), so no handler knows which revision its caller speaks.
 */
export type Outcome =
  /** Success that carries nothing: user exists, right password, deleted, added… */
  | { kind: 'done' }
  | { kind: 'created' }
  | { kind: 'list'; items: string[] }
  | { kind: 'dict'; value: Record<string, string> }
  /** One property's value (get, or the previous value a set replaced). */
  | { kind: 'value'; value: string }
  /** Several properties set at once: the user's properties now. */
  | { kind: 'properties-set'; properties: Record<string, string> }
  /** wharf's own answers (the registry's /verify): JSON whatever the revision. */
  | { kind: 'json'; value: unknown }
  | { kind: 'not-found'; type: 'user' | 'group' | 'property'; name: string }
  /** A name, password or property the policy refuses. */
  | { kind: 'unacceptable'; message: string }
  /** A body that does not say what is asked (a field missing, the wrong shape). */
  | { kind: 'malformed'; message: string }
  | { kind: 'exists'; message: string }
  | { kind: 'forbidden'; message: string }
  /** A password check refused by the rate limits, unchecked. */
  | { kind: 'throttled'; retryAfterSeconds: number }
  /** The password queue is full: nothing was checked or changed. */
  | { kind: 'overloaded'; retryAfterSeconds: number; message: string };

export interface RestAuthProtocol {
  name: Protocol;
  /** Whether `Accept` chooses the answer's format (406 when none fits); otherwise always JSON. */
  negotiates: boolean;
  /** Whether `PUT /users/<u>/` without a password turns password login off (else 400). */
  bodilessPasswordDisables: boolean;
  answer(reply: FastifyReply, outcome: Outcome, format: Format): FastifyReply;
  /** A refusal outside the handlers (401, 405, 406, 413, 415…) in this revision's error body. */
  error(reply: FastifyReply, status: number, message: string): FastifyReply;
}

/** Success bodies in the negotiated format. */
function withBody(reply: FastifyReply, status: number, format: Format, value: unknown): FastifyReply {
  return reply.code(status).type(MEDIA_TYPES[format]).send(serialize(format, value));
}

/** The refusals both revisions share; `unacceptable` and the overload answers differ. */
function commonAnswer(
  reply: FastifyReply,
  outcome: Outcome,
  format: Format,
  error: RestAuthProtocol['error'],
): FastifyReply | null {
  switch (outcome.kind) {
    case 'created':
      return reply.code(201).send();
    case 'list':
      return withBody(reply, 200, format, outcome.items);
    case 'dict':
      return withBody(reply, 200, format, outcome.value);
    case 'json':
      return reply.code(200).type(MEDIA_TYPES.json).send(JSON.stringify(outcome.value));
    case 'not-found':
      reply.header('resource-type', outcome.type);
      return error(reply, 404, `${outcome.type} ${outcome.name} not found`);
    case 'malformed':
      return error(reply, 400, outcome.message);
    case 'exists':
      return error(reply, 409, outcome.message);
    case 'forbidden':
      return error(reply, 403, outcome.message);
    default:
      return null;
  }
}

/** restauth-api.txt: 200 for success, 400 for anything unacceptable, `{error}` bodies, JSON only. */
const reference: RestAuthProtocol = {
  name: 'reference',
  negotiates: false,
  bodilessPasswordDisables: false,
  error: (reply, status, message) => reply.code(status).type(MEDIA_TYPES.json).send({ error: message }),
  answer(reply, outcome, format) {
    const shared = commonAnswer(reply, outcome, format, this.error);
    if (shared) return shared;
    switch (outcome.kind) {
      case 'done':
        return reply.code(200).send();
      case 'value':
        return withBody(reply, 200, 'json', outcome.value);
      case 'properties-set':
        return withBody(reply, 200, 'json', outcome.properties);
      case 'unacceptable':
        return this.error(reply, 400, outcome.message);
      case 'throttled':
        reply.header('retry-after', String(outcome.retryAfterSeconds));
        return this.error(reply, 429, 'too many failed password checks');
      case 'overloaded':
        reply.header('retry-after', String(outcome.retryAfterSeconds));
        return this.error(reply, 503, outcome.message);
    }
    throw new Error(`unhandled outcome ${outcome.kind}`);
  },
};

/**
 * The released RestAuth server (0.6.x) as its client libraries expect it: 204 for success without
 * a body, 412 for an unacceptable value, a property's value as a one-element list, text/plain
 * error messages, and only status codes the clients know.
 */
const restauth06: RestAuthProtocol = {
  name: 'restauth-0.6',
  negotiates: true,
  bodilessPasswordDisables: true,
  error: (reply, status, message) => reply.code(status).type('text/plain; charset=utf-8').send(message),
  answer(reply, outcome, format) {
    const shared = commonAnswer(reply, outcome, format, this.error);
    if (shared) return shared;
    switch (outcome.kind) {
      case 'done':
      case 'properties-set':
        return reply.code(204).send();
      case 'value':
        // RestAuthCommon unmarshals a string from a one-element list (JSON) or `str=` (form).
        return withBody(reply, 200, format, format === 'json' ? [outcome.value] : outcome.value);
      case 'unacceptable':
        return this.error(reply, 412, outcome.message);
      case 'throttled':
        // The clients know 204 and 404 here, and 429 would raise UnknownStatus in the wiki's login
        // form. A throttled check is answered as a wrong password: the same refusal, learned nothing.
        reply.header('retry-after', String(outcome.retryAfterSeconds));
        reply.header('resource-type', 'user');
        return this.error(reply, 404, 'user not found or password wrong');
      case 'overloaded':
        // 500 is the server failure the clients raise as InternalServerError; 503 would be unknown.
        reply.header('retry-after', String(outcome.retryAfterSeconds));
        return this.error(reply, 500, outcome.message);
    }
    throw new Error(`unhandled outcome ${outcome.kind}`);
  },
};

export const RESTAUTH_PROTOCOLS: Record<Protocol, RestAuthProtocol> = {
  reference,
  'restauth-0.6': restauth06,
};
