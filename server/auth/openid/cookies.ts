import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * The two cookies of OpenID login. Both HttpOnly, SameSite=Lax (the provider's redirect back is a
 * cross-site top-level navigation, which Lax allows and which Strict would strip), Secure when the
 * registry is served over https, Path=/ so that both Ktra paths (`/me`, `/ktra/api/v1/openid/…`)
 * and API v1 see them.
 */
export const BROWSER_COOKIE = 'wharf_oidc_browser';
export const SESSION_COOKIE = 'wharf_sso';

export function readCookie(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return undefined;
}

export function setCookie(
  reply: FastifyReply,
  name: string,
  value: string,
  { maxAgeSeconds, secure }: { maxAgeSeconds: number; secure: boolean },
): void {
  const attributes = [`${name}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Lax', `Max-Age=${maxAgeSeconds}`];
  if (secure) attributes.push('Secure');
  const previous = reply.getHeader('set-cookie');
  const list = previous === undefined ? [] : Array.isArray(previous) ? previous : [String(previous)];
  reply.header('set-cookie', [...list, attributes.join('; ')]);
}
