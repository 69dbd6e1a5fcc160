/**
 * The error format each API promises its clients, by path. Kept apart from the server's own table
 * (server/surfaces.ts) on purpose: a request answered in the wrong format must fail here.
 */
export type Surface = 'oci' | 'oauth-or-oci' | 'api-v1' | 'restauth' | 'errors-detail';

export function surfaceOf(method: string, path: string): Surface {
  const p = (path.split('?')[0] ?? '').replace(/\/{2,}/g, '/').replace(/(.)\/$/, '$1');
  if (p === '/v2/auth') return method === 'POST' ? 'oauth-or-oci' : 'oci';
  if (p === '/v2' || p.startsWith('/v2/')) return 'oci';
  if (p === '/restauth' || p.startsWith('/restauth/')) return 'restauth';
  if (p === '/api/v1/crates' || p.startsWith('/api/v1/crates/') || p.startsWith('/api/v1/crates?'))
    return 'errors-detail';
  if (p.startsWith('/api/v1/') || p === '/csrf_token') return 'api-v1';
  return 'errors-detail';
}

const OCI_CODES = new Set([
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
  // distribution's codes beyond the spec's table, which docker and skopeo know.
  'RANGE_INVALID',
  'UNKNOWN',
]);

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function ociProblem(body: unknown): string | null {
  if (!isObject(body) || !Array.isArray(body.errors) || body.errors.length === 0) return 'not {"errors":[…]}';
  for (const error of body.errors) {
    if (!isObject(error) || typeof error.code !== 'string' || !OCI_CODES.has(error.code))
      return `error code ${JSON.stringify(isObject(error) ? error.code : error)} is not an OCI code`;
    if (typeof error.message !== 'string') return 'error without a message';
  }
  return null;
}

/** Why a refusal's body is not in the surface's format, or null when it is. */
export function formatProblem(surface: Surface, path: string, text: string): string | null {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `not JSON: ${JSON.stringify(text.slice(0, 120))}`;
  }
  switch (surface) {
    case 'oci':
      return ociProblem(body);
    case 'oauth-or-oci':
      return isObject(body) && typeof body.error === 'string' ? null : ociProblem(body);
    case 'api-v1':
      // Quay's signin answers a wrong password with its own body.
      if (path.startsWith('/api/v1/signin') && isObject(body) && body.success === false) return null;
      return isObject(body) &&
        typeof body.status === 'number' &&
        typeof body.error_type === 'string' &&
        typeof body.error_message === 'string'
        ? null
        : 'not API v1 {status,error_type,error_message}';
    case 'restauth':
      return isObject(body) && typeof body.error === 'string' ? null : 'not RestAuth {"error":…}';
    case 'errors-detail':
      return isObject(body) &&
        Array.isArray(body.errors) &&
        body.errors.length > 0 &&
        body.errors.every((e) => isObject(e) && typeof e.detail === 'string')
        ? null
        : 'not {"errors":[{"detail":…}]}';
  }
}
