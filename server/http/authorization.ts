/** What a request's `Authorization` header carries. */
export type Credentials =
  | { type: 'basic'; username: string; password: string }
  /** `bearer`: sent as `Bearer <token>`; otherwise bare, as cargo sends it. */
  | { type: 'token'; token: string; bearer: boolean }
  | { type: 'none' }
  | { type: 'malformed' };

/**
 * Reads the `Authorization` header the three ways clients send it: `Basic` (username and password
 * or token), `Bearer <token>`, and cargo's bare `<token>`. The one parser every surface uses; each
 * surface then decides which kinds it accepts. A `Basic` value without a colon, or a scheme with
 * nothing after it, is `malformed` (refused, never read as a bare token).
 */
export function parseAuthorization(header: string | string[] | undefined): Credentials {
  const value = (Array.isArray(header) ? header[0] : header)?.trim();
  if (!value) return { type: 'none' };
  const space = value.indexOf(' ');
  const scheme = space > 0 ? value.slice(0, space).toLowerCase() : '';
  const rest = space > 0 ? value.slice(space + 1).trim() : '';
  if (scheme === 'basic') {
    const decoded = Buffer.from(rest, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return { type: 'malformed' };
    return { type: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (scheme === 'bearer') return rest ? { type: 'token', token: rest, bearer: true } : { type: 'malformed' };
  if (space > 0) return { type: 'malformed' };
  return { type: 'token', token: value, bearer: false };
}
