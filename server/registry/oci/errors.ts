import type { FastifyReply } from 'fastify';

/** The distribution spec's error codes with the HTTP status each one usually travels with. */
export const OCI_ERRORS = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 415,
  TOOMANYREQUESTS: 429,
  RANGE_INVALID: 416,
  /** distribution's code for a failure of the registry itself (a full disk, an unreachable store). */
  UNKNOWN: 500,
} as const;

export type OciErrorCode = keyof typeof OCI_ERRORS;

/** An error the /v2/ API reports in the spec's `{"errors":[{code,message,detail}]}` body. */
export class OciError extends Error {
  readonly code: OciErrorCode;
  readonly status: number;
  readonly detail: unknown;
  readonly headers: Record<string, string>;
  constructor(
    code: OciErrorCode,
    message: string,
    { status, detail, headers }: { status?: number; detail?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = 'OciError';
    this.code = code;
    this.status = status ?? OCI_ERRORS[code];
    this.detail = detail ?? null;
    this.headers = headers ?? {};
  }
}

export function sendOciError(reply: FastifyReply, error: OciError): FastifyReply {
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
  return reply
    .code(error.status)
    .type('application/json')
    .send({ errors: [{ code: error.code, message: error.message, detail: error.detail }] });
}
