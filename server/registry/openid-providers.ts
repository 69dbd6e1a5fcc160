import { openIdLoginPath } from '../auth/openid/session-client.ts';
import type { WharfConfig } from '../config/types.ts';

/** An OpenID provider people may sign in with, as the AuthService lists it. */
export interface OpenIdProviderEntry {
  name: string;
  /** Where the AuthService starts that provider's sign-in (a path on the shared host). */
  login: string;
}

/** How long the registry keeps the AuthService's list: providers change with its configuration only. */
const CACHE_MS = 60_000;

/**
 * The OpenID providers to offer at sign-in. They are configured on the AuthService, which runs the
 * OpenID flow: in one process its configuration is at hand; a registry on its own asks the
 * AuthService (`GET /auth/api/v1/openid/providers` at `registry.authUrl`) and keeps the answer a
 * minute. If the AuthService cannot be reached, the last list is kept (none before the first).
 */
export function openIdProviderSource(config: WharfConfig): () => Promise<OpenIdProviderEntry[]> {
  if (config.roles.includes('auth') || !config.registry.authUrl) {
    const own = config.openid.providers.map(({ name }) => ({ name, login: openIdLoginPath(name) }));
    return () => Promise.resolve(own);
  }
  const url = new URL('/auth/api/v1/openid/providers', config.registry.authUrl);
  let known: OpenIdProviderEntry[] = [];
  let until = 0;
  let pending: Promise<OpenIdProviderEntry[]> | null = null;
  const refresh = async () => {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      if (response.ok) known = ((await response.json()) as { providers: OpenIdProviderEntry[] }).providers;
      else await response.body?.cancel();
    } catch {
      // Unreachable for now: offer what was known; the next request after the retry delay asks again.
    }
    until = Date.now() + CACHE_MS;
    return known;
  };
  return () => {
    if (Date.now() < until) return Promise.resolve(known);
    pending ??= refresh().finally(() => {
      pending = null;
    });
    return pending;
  };
}
