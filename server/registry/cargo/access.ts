import type { Decision } from '../../access/policy.ts';
import { CargoError } from './errors.ts';

/** An authentication or authorization refusal, answered in cargo's error format. */
export class AccessError extends Error {
  readonly status: 401 | 403;
  constructor(status: 401 | 403, message: string) {
    super(message);
    this.name = 'AccessError';
    this.status = status;
  }
}

export const INVALID_TOKEN =
  'the token is invalid, expired or revoked: get a new one and run `cargo login` again';

/** A refusal of the access policy in cargo's terms: what went wrong and what to do about it. */
export function cargoRefusal(
  decision: Exclude<Decision, { allowed: true }>,
  privateRegistry: boolean,
): Error {
  switch (decision.reason) {
    case 'authenticate':
      return new AccessError(
        401,
        privateRegistry
          ? 'this registry is private: get a token (see the login URL) and run `cargo login`'
          : "this needs a token: get one (see the registry's /me page) and run `cargo login`",
      );
    case 'scope':
      return new AccessError(403, `${decision.message}: use a token that has it`);
    case 'forbidden':
    case 'read-only':
      return new AccessError(403, decision.message);
    case 'unknown':
      return new CargoError(decision.message, 404);
  }
}
