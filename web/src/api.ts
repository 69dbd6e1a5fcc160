/**
 * Every call the UI makes: same-origin JSON with the session cookies; changes carry the session's
 * CSRF token (X-CSRF-Token), as API v1 and /auth/api/v1 require of sessions. The UI holds two
 * sessions: the registry's (API v1, everything but accounts) and the AuthService's (`/auth/api/v1`:
 * tokens, users, groups, services), which may run in another process with its own store behind the
 * same host. Each call sends the token of the session its path belongs to.
 */

export class ApiFailure extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'ApiFailure';
    this.status = status;
  }
}

let csrfToken: string | null = null;

/** The session's CSRF token; the first call also opens an anonymous session (its cookie). */
export async function csrf(): Promise<string> {
  if (csrfToken) return csrfToken;
  const answer = await call<{ csrf_token: string }>('GET', '/csrf_token');
  csrfToken = answer.csrf_token;
  return csrfToken;
}

/** Sign-in and sign-out change the session: the next change fetches its token again. */
export function forgetCsrf(): void {
  csrfToken = null;
}

/** The AuthService's paths, served by its own session. */
export const AUTH_API = '/auth/api/v1';
let authCsrfToken: string | null = null;

/** The AuthService session's CSRF token, as its sign-in or `GET /auth/api/v1/session` gave it. */
export function setAuthCsrf(token: string | null): void {
  authCsrfToken = token;
}

/** The message of an error in any of wharf's formats (API v1, cargo/Ktra, RestAuth). */
function messageOf(status: number, body: unknown): string {
  if (body && typeof body === 'object') {
    const o = body as Record<string, unknown>;
    if (typeof o.error_message === 'string') return o.error_message;
    if (typeof o.message === 'string') return o.message;
    if (Array.isArray(o.errors) && o.errors[0] && typeof o.errors[0].detail === 'string')
      return o.errors[0].detail;
    if (typeof o.error === 'string') return o.error;
  }
  return `request failed (HTTP ${status})`;
}

export async function call<T>(
  method: string,
  path: string,
  body?: unknown,
  accept = 'application/json',
): Promise<T> {
  const headers: Record<string, string> = { accept };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') {
    const own = path === AUTH_API || path.startsWith(`${AUTH_API}/`) ? authCsrfToken : await csrf();
    if (own) headers['x-csrf-token'] = own;
  }
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  let parsed: unknown = null;
  if (text && (response.headers.get('content-type') ?? '').includes('json')) parsed = JSON.parse(text);
  if (!response.ok) throw new ApiFailure(response.status, messageOf(response.status, parsed));
  return (parsed ?? text) as T;
}

export const get = <T>(path: string) => call<T>('GET', path);

/** An HTML document (crates.io's rendered README). */
export const getHtml = (path: string) => call<string>('GET', path, undefined, 'text/html');

/** Path segments of a repository name (`team/app/api`) kept as slashes, each part encoded. */
export function repoPath(name: string): string {
  return name.split('/').map(encodeURIComponent).join('/');
}

export function query(params: Record<string, string | number | undefined>): string {
  const entries = Object.entries(params).filter(
    (entry): entry is [string, string | number] => entry[1] !== undefined,
  );
  return entries.length ? `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)])).toString()}` : '';
}
