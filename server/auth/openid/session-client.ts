import type { FastifyInstance } from 'fastify';
import type { Principal } from '../../identity/principal.ts';

/** Who signed in through OpenID, as `GET /ktra/api/v1/openid/session` answers it. */
export interface OpenIdSessionInfo {
  /** `provider:identity`, as `/me` shows it. */
  username: string;
  /** The wharf account (what permissions, crate owners and `docker login` use). */
  account: string;
  /** The groups the provider reported at sign-in. */
  groups: string[];
  /** The account as wharf authorizes it (wharf groups, admin flag), `via: 'session'`. */
  principal: Principal;
}

/**
 * A path on this host (never `//other.site` or `/\\other.site`), with an optional query: where a
 * sign-in may send the browser back to.
 */
export const SAFE_RETURN_PATH = /^\/(?![/\\])[A-Za-z0-9\-._~/%?=&]*$/;

/**
 * Where sign-in starts for a page of this host: after sign-in the browser comes back to `returnTo`.
 * Without `provider` and with several configured, the AuthService asks the person to choose.
 */
export function openIdLoginUrl(returnTo: string, provider?: string): string {
  const choice = provider ? `&provider=${encodeURIComponent(provider)}` : '';
  return `/ktra/api/v1/openid/login?return_to=${encodeURIComponent(returnTo)}${choice}`;
}

/** Where the AuthService starts a provider's sign-in, as its provider list names it. */
export function openIdLoginPath(provider: string): string {
  return `/ktra/api/v1/openid/login?provider=${encodeURIComponent(provider)}`;
}

/**
 * The hook for API v1 (or any page of the registry) to learn who a browser signed in as through
 * OpenID: it asks the AuthService's session endpoint with the browser's cookies. With `authUrl`
 * (AuthService in another process) over HTTP; without it (all roles in one process) through the
 * same server with `app.inject`, so the answer is the same whichever way wharf is deployed.
 * Returns null when the browser has no valid OpenID session (or OIDC is off).
 */
export async function openIdSessionOf(
  cookieHeader: string | undefined,
  target: { authUrl?: string | undefined; app?: FastifyInstance },
): Promise<OpenIdSessionInfo | null> {
  if (!cookieHeader) return null;
  const path = '/ktra/api/v1/openid/session';
  if (target.authUrl) {
    const response = await fetch(new URL(path, target.authUrl), {
      headers: { cookie: cookieHeader, accept: 'application/json' },
      signal: AbortSignal.timeout(10_000),
    });
    return response.status === 200 ? ((await response.json()) as OpenIdSessionInfo) : null;
  }
  if (!target.app) throw new Error('openIdSessionOf needs authUrl or app');
  const response = await target.app.inject({ method: 'GET', url: path, headers: { cookie: cookieHeader } });
  return response.statusCode === 200 ? (response.json() as OpenIdSessionInfo) : null;
}
