import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import * as client from 'openid-client';
import type { Logger } from 'pino';
import type { OpenIdConfig } from '../../config/types.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import { federatedUserFrom, isAuthorized } from './access.ts';
import { FederatedAccounts, type MeReply } from './accounts.ts';
import { BROWSER_COOKIE, readCookie, SESSION_COOKIE, setCookie } from './cookies.ts';
import type { OpenIdIdentityPort } from './identity-port.ts';
import {
  type AfterLogin,
  type ClaimRefusal,
  LoginState,
  type PendingLogin,
  randomSecret,
  type Session,
  sha256,
} from './login-state.ts';
import { errorPage, PAGE_HEADERS, providerChoicePage, refusalPage, tokenPage } from './pages.ts';
import { closePasswordEndpointsForPeople } from './password-gate.ts';
import { CALLBACK_PATHS, discoverProviders, type OpenIdProvider, type Purpose } from './providers.ts';
import { SAFE_RETURN_PATH } from './session-client.ts';
import { TokenSealer } from './token-sealer.ts';

interface CallbackQuery {
  code?: string;
  state?: string;
  error?: string;
  error_description?: string;
  provider?: string;
  return_to?: string;
}

const querySchema = {
  type: 'object',
  properties: {
    code: { type: 'string', maxLength: 4096 },
    state: { type: 'string', maxLength: 512 },
    error: { type: 'string', maxLength: 256 },
    error_description: { type: 'string', maxLength: 2048 },
    provider: { type: 'string', maxLength: 64 },
    return_to: { type: 'string', maxLength: 1024 },
  },
} as const;

/** Same-host paths only: `/x/y`, never `//host`, `/\host` or a scheme (no open redirect). */

const REFUSALS: Record<ClaimRefusal, string> = {
  unknown: 'This sign-in is unknown: it may have expired and been cleaned up, or the link was altered.',
  replayed: 'This sign-in was already used. Each sign-in works once; start a new one.',
  expired: 'This sign-in took too long and expired. Start a new one.',
  'other-browser':
    'This sign-in was started in another browser (or your cookies were cleared). Start a new one here.',
};

export interface OpenIdLogin {
  register(app: FastifyInstance): Promise<void>;
  /** The OpenID session of a request (cookie `wharf_sso`), for API v1 sign-in in this process. */
  sessionFor(request: FastifyRequest): Promise<Session | null>;
  close(): Promise<void>;
}

/**
 * OpenID Connect login for the AuthService: Ktra's `/me` and `/replace_token` (and their
 * `/ktra/api/v1/openid/…` forms), authorization code flow with PKCE S256, state and nonce.
 * Returns null when no provider is configured (OIDC off).
 */
export async function createOpenIdLogin(options: {
  config: OpenIdConfig;
  store: ObjectStore;
  logger: Logger;
  identity: OpenIdIdentityPort;
  /** Counts sign-ins in `wharf_authentications_total{method="openid"}`. */
  metrics?: Metrics;
}): Promise<OpenIdLogin | null> {
  const { config, store, logger } = options;
  if (config.providers.length === 0) return null;
  const sealer = new TokenSealer(config.tokenEncryptionKey!);
  const providers = await discoverProviders(config.providers, logger);
  const state = new LoginState(store);
  const accounts = new FederatedAccounts(store, options.identity, sealer);
  const sweeper = setInterval(
    () => {
      state
        .sweep(config.loginTimeoutSeconds, config.sessionSeconds)
        .catch((error: unknown) => logger.warn({ err: error }, 'sweeping OpenID logins failed'));
    },
    10 * 60 * 1000,
  );
  sweeper.unref();

  const secureCookies = [...providers.values()].every((p) => p.redirectUris.me.startsWith('https:'));

  const registryHostOf = (provider: string) =>
    new URL(providers.get(provider)?.redirectUris.me ?? 'http://registry').host;
  /**
   * The request's session, if it is still valid under the current configuration and its account
   * still exists and is enabled: a provider removed, allow-lists tightened (and the server
   * restarted), an account disabled or deleted end the sessions they no longer admit.
   */
  const sessionFor = async (request: FastifyRequest): Promise<Session | null> => {
    const session = await state.session(readCookie(request, SESSION_COOKIE));
    const provider = session ? providers.get(session.provider) : undefined;
    if (!session || !provider) return null;
    const identity = session.username.slice(session.provider.length + 1);
    const user = { provider: session.provider, subject: '', identity, groups: session.groups };
    if (!isAuthorized(provider.settings, user)) return null;
    return (await options.identity.principalOf(session.account)) ? session : null;
  };

  async function startLogin(
    request: FastifyRequest,
    reply: FastifyReply,
    purpose: Purpose,
    afterLogin: AfterLogin,
  ) {
    const query = request.query as CallbackQuery;
    let provider: OpenIdProvider | undefined;
    if (providers.size === 1) provider = [...providers.values()][0];
    else if (query.provider) provider = providers.get(query.provider);
    if (!provider) {
      if (query.provider)
        return fail(request, reply, 404, 'Unknown provider', `No provider is named "${query.provider}".`);
      if (wantsHtml(request))
        return reply
          .code(200)
          .headers(PAGE_HEADERS)
          .send(providerChoicePage([...providers.keys()], request.routeOptions.url ?? '/me'));
      return reply.code(400).send({
        errors: [{ detail: `choose a provider with ?provider=: ${[...providers.keys()].join(', ')}` }],
      });
    }
    const loginState = client.randomState();
    const nonce = client.randomNonce();
    const codeVerifier = client.randomPKCECodeVerifier();
    let browser = readCookie(request, BROWSER_COOKIE);
    if (!browser || !/^[A-Za-z0-9_-]{43}$/.test(browser)) browser = randomSecret();
    const redirectUri = provider.redirectUris[purpose];
    const pending: PendingLogin = {
      provider: provider.settings.name,
      purpose,
      redirectUri,
      codeVerifier,
      nonce,
      browser: sha256(browser),
      expiresAt: Date.now() + config.loginTimeoutSeconds * 1000,
      afterLogin,
    };
    await state.startLogin(loginState, pending);
    const target = client.buildAuthorizationUrl(provider.client, {
      redirect_uri: redirectUri,
      scope: provider.scope,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state: loginState,
      nonce,
    });
    setCookie(reply, BROWSER_COOKIE, browser, {
      maxAgeSeconds: config.loginTimeoutSeconds,
      secure: secureCookies,
    });
    return reply.code(302).header('cache-control', 'no-store').redirect(target.href);
  }

  /** Every callback counts once: success when a session was opened, failure otherwise. */
  const signedIn = new WeakSet<FastifyRequest>();
  async function finishLogin(request: FastifyRequest, reply: FastifyReply, query: CallbackQuery) {
    const result = await completeLogin(request, reply, query);
    options.metrics?.authentication('openid', signedIn.has(request));
    return result;
  }

  async function completeLogin(request: FastifyRequest, reply: FastifyReply, query: CallbackQuery) {
    if (!query.state)
      return fail(request, reply, 400, 'Sign-in refused', "The provider's answer carries no state.");
    const claimed = await state.claimLogin(query.state, readCookie(request, BROWSER_COOKIE));
    if (typeof claimed === 'string') {
      request.log.warn({ refusal: claimed }, 'OpenID callback refused');
      return fail(request, reply, 400, 'Sign-in refused', REFUSALS[claimed]);
    }
    const pending = claimed;
    const provider = providers.get(pending.provider);
    if (!provider)
      return fail(request, reply, 400, 'Sign-in refused', 'That provider is no longer configured.');
    if (query.error) {
      request.log.info(
        { provider: provider.settings.name, error: query.error },
        'provider refused the sign-in',
      );
      return fail(
        request,
        reply,
        query.error === 'access_denied' ? 403 : 502,
        'The identity provider did not sign you in',
        `${provider.settings.name} answered "${query.error}".`,
        query.error_description,
      );
    }
    // The URL the provider redirected to, rebuilt from configuration, never from the Host header.
    const currentUrl = new URL(pending.redirectUri);
    for (const [name, value] of Object.entries(query))
      if (typeof value === 'string') currentUrl.searchParams.set(name, value);
    let userinfo: Record<string, unknown>;
    let idClaims: Record<string, unknown>;
    try {
      const tokens = await client.authorizationCodeGrant(provider.client, currentUrl, {
        pkceCodeVerifier: pending.codeVerifier,
        expectedState: query.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
      idClaims = { ...tokens.claims() };
      userinfo = {
        ...(await client.fetchUserInfo(provider.client, tokens.access_token, String(idClaims.sub))),
      };
    } catch (error) {
      const reason = failureReason(error);
      request.log.warn({ provider: provider.settings.name, reason }, 'OpenID sign-in failed');
      return fail(
        request,
        reply,
        502,
        'Sign-in could not be completed',
        `The answer from ${provider.settings.name} did not pass wharf's checks, so nobody was signed in.`,
        reason,
      );
    }
    const user = federatedUserFrom(provider.settings, String(idClaims.sub), userinfo, idClaims);
    if (!user)
      return fail(
        request,
        reply,
        502,
        'Sign-in could not be completed',
        `${provider.settings.name} did not send the "${provider.settings.usernameClaim}" claim that names you. Ask the registry administrators to check usernameClaim and the scopes.`,
      );
    const username = `${provider.settings.name}:${user.identity}`;
    if (!isAuthorized(provider.settings, user)) {
      request.log.info(
        { username, groups: user.groups },
        'OpenID user not in the authorized users or groups',
      );
      return refuse(
        request,
        reply,
        'Access refused',
        `You are signed in at ${provider.settings.name} as ${user.identity}, but this registry only admits some users and groups, and you are not among them.`,
        'Ask the registry administrators to add you (or one of your groups) to the authorized list.',
      );
    }
    const linked = await accounts.link(provider.settings, user);
    if ('refused' in linked) {
      request.log.warn(
        { username, account: linked.account, reason: linked.refused },
        'OpenID account link refused',
      );
      return refuse(
        request,
        reply,
        'Access refused',
        linked.refused === 'invalid-name'
          ? `Your ${provider.settings.name} name "${user.identity}" cannot be a registry account name (letters, digits, '.', '_', '-').`
          : `The registry account "${linked.account}" already belongs to someone else, so ${username} cannot use it.`,
        'Ask the registry administrators for help.',
      );
    }
    const session: Session = {
      account: linked.account,
      username,
      provider: provider.settings.name,
      groups: user.groups,
      expiresAt: Date.now() + config.sessionSeconds * 1000,
    };
    const sessionId = await state.createSession(session);
    signedIn.add(request);
    setCookie(reply, SESSION_COOKIE, sessionId, {
      maxAgeSeconds: config.sessionSeconds,
      secure: secureCookies,
    });
    request.log.info({ username, account: linked.account }, 'OpenID sign-in');
    if (pending.afterLogin.kind === 'redirect')
      return reply.code(303).header('cache-control', 'no-store').redirect(pending.afterLogin.path);
    return sendToken(request, reply, session, pending.purpose);
  }

  async function sendToken(request: FastifyRequest, reply: FastifyReply, session: Session, purpose: Purpose) {
    const result: MeReply =
      purpose === 'replace_token'
        ? await accounts.replace(session.account, session.username)
        : await accounts.me(session.account, session.username);
    if (purpose === 'replace_token') request.log.info({ username: session.username }, 'Ktra token replaced');
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    if (wantsHtml(request))
      return reply
        .code(200)
        .headers(PAGE_HEADERS)
        .send(
          tokenPage(result, session.account, purpose === 'replace_token', registryHostOf(session.provider)),
        );
    return reply.code(200).send(result);
  }

  function tokenRoute(purpose: Purpose) {
    return async (request: FastifyRequest, reply: FastifyReply) => {
      const query = request.query as CallbackQuery;
      if (query.code !== undefined || query.state !== undefined || query.error !== undefined)
        return finishLogin(request, reply, query);
      const session = await sessionFor(request);
      // Replacing a token changes state: a session alone is trusted for it only when the request
      // does not come from another site (browsers say so in Sec-Fetch-Site); otherwise sign in again.
      if (session && (purpose === 'me' || !isCrossSite(request)))
        return sendToken(request, reply, session, purpose);
      return startLogin(request, reply, purpose, { kind: 'token' });
    };
  }

  return {
    sessionFor,
    async register(app: FastifyInstance) {
      closePasswordEndpointsForPeople(app);
      await app.register(async (scope) => {
        // No automatic HEAD routes: a HEAD (link checkers, prefetchers) must never replace a token
        // or start a sign-in.
        const schema = { querystring: querySchema };
        const head = { exposeHeadRoute: false };
        for (const path of ['/me', CALLBACK_PATHS.me]) scope.get(path, { schema, ...head }, tokenRoute('me'));
        for (const path of ['/replace_token', CALLBACK_PATHS.replace_token])
          scope.get(path, { schema, ...head }, tokenRoute('replace_token'));

        // API v1 (and any page of this host) signs people in through the same flow:
        // GET /ktra/api/v1/openid/login?return_to=/path → provider → back to /path with a session.
        scope.get('/ktra/api/v1/openid/login', { schema, ...head }, async (request, reply) => {
          const returnTo = (request.query as CallbackQuery).return_to ?? '/';
          if (!SAFE_RETURN_PATH.test(returnTo))
            return fail(request, reply, 400, 'Sign-in refused', 'return_to must be a path on this host.');
          return startLogin(request, reply, 'me', { kind: 'redirect', path: returnTo });
        });
        // Who the session cookie belongs to: what a Registry in another process asks, forwarding the cookie.
        scope.get('/ktra/api/v1/openid/session', async (request, reply) => {
          const session = await sessionFor(request);
          reply.header('cache-control', 'no-store');
          const principal = session ? await options.identity.principalOf(session.account) : null;
          if (!session || !principal) return reply.code(401).send({ errors: [{ detail: 'not signed in' }] });
          return { username: session.username, account: session.account, groups: session.groups, principal };
        });
        scope.post('/ktra/api/v1/openid/logout', async (request, reply) => {
          await state.endSession(readCookie(request, SESSION_COOKIE));
          setCookie(reply, SESSION_COOKIE, '', { maxAgeSeconds: 0, secure: secureCookies });
          return reply.code(204).send();
        });
      });
    },
    async close() {
      clearInterval(sweeper);
    },
  };
}

/**
 * What went wrong, in the most specific words the OIDC library has (e.g. 'unexpected ID Token
 * "nonce" claim value'); the error objects carry no token or code, only names of failed checks.
 */
function failureReason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const oauthError = error as Error & { error?: unknown; error_description?: unknown };
  if (typeof oauthError.error === 'string')
    return `${oauthError.error}${typeof oauthError.error_description === 'string' ? `: ${oauthError.error_description}` : ''}`;
  return error.cause instanceof Error ? failureReason(error.cause) : error.message;
}

function wantsHtml(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? '';
  return accept.includes('text/html');
}

function isCrossSite(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site'];
  return site !== undefined && site !== 'same-origin' && site !== 'none';
}

function fail(
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  title: string,
  message: string,
  detail?: string,
) {
  if (wantsHtml(request))
    return reply
      .code(status)
      .headers(PAGE_HEADERS)
      .send(errorPage(title, message, detail));
  return reply.code(status).send({ errors: [{ detail: detail ? `${message} (${detail})` : message }] });
}

function refuse(
  request: FastifyRequest,
  reply: FastifyReply,
  title: string,
  message: string,
  detail?: string,
) {
  if (wantsHtml(request))
    return reply
      .code(403)
      .headers(PAGE_HEADERS)
      .send(refusalPage(title, message, detail));
  return reply.code(403).send({ errors: [{ detail: message }] });
}
