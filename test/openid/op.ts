import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

/**
 * A real OpenID Provider (oidc-provider, certified) on 127.0.0.1 for the tests. Its dev
 * interactions accept any login name with any password and then ask for consent, like a real IdP's
 * pages. Like GitLab, it serves `groups` from the userinfo endpoint (scope `groups`), never in the
 * ID token of the code flow.
 */
export interface TestProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  close(): Promise<void>;
}

export const PEOPLE: Record<string, { groups: string[] }> = {
  alice: { groups: ['firm/crate-owners', 'firm/everyone'] },
  bob: { groups: ['firm/everyone'] },
  carol: { groups: [] },
};

export async function startProvider(options: {
  redirectBaseUrl: string;
  userinfo?: boolean;
  /** Rewrites every ID token's nonce, as a broken or malicious provider would. */
  tamperNonce?: boolean;
}): Promise<TestProvider> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = 'wharf';
  const clientSecret = 'wharf-test-client-secret-0123456789';
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [
          `${options.redirectBaseUrl}/ktra/api/v1/openid/me`,
          `${options.redirectBaseUrl}/ktra/api/v1/openid/replace_token`,
        ],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    claims: { openid: ['sub'], profile: ['preferred_username', 'name'], groups: ['groups'] },
    scopes: ['openid', 'profile', 'groups'],
    features: { devInteractions: { enabled: true }, userinfo: { enabled: options.userinfo ?? true } },
    pkce: { required: () => true },
    cookies: { keys: ['wharf-test-cookie-key'] },
    // Its own signing key (RS256, the default algorithm every client accepts).
    jwks: {
      keys: [
        {
          ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
          use: 'sig',
        },
      ],
    },
    ttl: {
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      AccessToken: 600,
      IdToken: 600,
      AuthorizationCode: 60,
    },
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: `sub-${id}`, preferred_username: id, name: id, groups: PEOPLE[id]?.groups ?? [] };
        },
      };
    },
  });
  if (options.tamperNonce) {
    const prototype = provider.IdToken.prototype;
    const issue = prototype.issue;
    prototype.issue = function (this: typeof prototype, ...args: unknown[]) {
      this.set('nonce', 'not-the-nonce-wharf-sent');
      return issue.apply(this, args);
    };
  }
  server.on('request', provider.callback());
  return {
    issuer,
    clientId,
    clientSecret,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
