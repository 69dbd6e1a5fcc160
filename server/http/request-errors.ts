/**
 * The status of an error Fastify raised about the request itself, before or around a handler: a
 * schema validation failure (400), unparseable or empty JSON (400), a body over its limit (413), a
 * content type no parser takes (415), a body shorter than its Content-Length (400), a handler
 * timeout (503). Null for anything else, which is a failure of the server. Each surface answers
 * these in its own error format from its own error handler.
 */
export function requestErrorStatus(error: {
  statusCode?: unknown;
  validation?: unknown;
  code?: unknown;
}): number | null {
  if (error.validation) return 400;
  if (error.code === 'FST_ERR_HANDLER_TIMEOUT') return 503;
  const status = error.statusCode;
  return typeof status === 'number' && status >= 400 && status < 500 ? status : null;
}
