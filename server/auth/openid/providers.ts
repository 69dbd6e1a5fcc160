import * as client from 'openid-client';
import type { Logger } from 'pino';
import { ConfigError } from '../../config/load.ts';
import type { OpenIdProviderConfig } from '../../config/types.ts';

/** The two callback paths registered at the provider, as Ktra documents them. */
export const CALLBACK_PATHS = {
  me: '/ktra/api/v1/openid/me',
  replace_token: '/ktra/api/v1/openid/replace_token',
} as const;

export type Purpose = keyof typeof CALLBACK_PATHS;

/** A provider whose discovery succeeded, with the redirect URLs fixed from configuration. */
export interface OpenIdProvider {
  settings: OpenIdProviderConfig;
  client: client.Configuration;
  /** Exactly the URLs registered at the provider; never derived from a request's Host header. */
  redirectUris: Record<Purpose, string>;
  scope: string;
}

/**
 * Discovers every configured provider. A provider that cannot be discovered, or whose discovery
 * document has no `userinfo_endpoint`, stops the start-up with an error naming it: wharf reads the
 * user's name and groups from userinfo (GitLab serves `groups` there), so such a provider could
 * never let anyone in.
 */
export async function discoverProviders(
  providers: OpenIdProviderConfig[],
  logger: Logger,
): Promise<Map<string, OpenIdProvider>> {
  const discovered = new Map<string, OpenIdProvider>();
  for (const settings of providers) {
    const where = `OpenID provider "${settings.name}" (${settings.issuerUrl})`;
    if (settings.allowInsecureRequests)
      logger.warn(
        { provider: settings.name },
        `${where}: allowInsecureRequests is ON; plain-http requests to the provider are allowed. For tests only: never in production`,
      );
    let configuration: client.Configuration;
    try {
      configuration = await client.discovery(
        new URL(settings.issuerUrl),
        settings.clientId,
        settings.clientSecret,
        client.ClientSecretBasic(settings.clientSecret),
        {
          timeout: 15,
          ...(settings.allowInsecureRequests ? { execute: [client.allowInsecureRequests] } : {}),
        },
      );
    } catch (error) {
      throw new ConfigError(`${where}: discovery failed: ${describe(error)}`);
    }
    const metadata = configuration.serverMetadata();
    if (!metadata.userinfo_endpoint)
      throw new ConfigError(
        `${where}: the discovered configuration has no userinfo_endpoint; wharf reads the user's name and groups from userinfo, so this provider cannot be used`,
      );
    if (!metadata.code_challenge_methods_supported?.includes('S256'))
      logger.warn(
        { provider: settings.name },
        `${where} does not advertise PKCE S256; wharf sends it anyway`,
      );
    if (settings.authorizedGroups.length === 0 && settings.authorizedUsers.length === 0)
      logger.warn(
        { provider: settings.name },
        `WARNING: ${where} has no authorizedGroups and no authorizedUsers: EVERY user of this provider may sign in and get a token`,
      );
    const base = settings.redirectBaseUrl!.replace(/\/+$/, '');
    const scopes = new Set(['openid', ...settings.additionalScopes]);
    discovered.set(settings.name, {
      settings,
      client: configuration,
      redirectUris: { me: base + CALLBACK_PATHS.me, replace_token: base + CALLBACK_PATHS.replace_token },
      scope: [...scopes].join(' '),
    });
    logger.info({ provider: settings.name, issuer: metadata.issuer }, 'OpenID provider discovered');
  }
  return discovered;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return error.message + cause;
}
