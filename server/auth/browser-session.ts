import type { FastifyInstance, FastifyReply } from 'fastify';
import { CREDENTIAL_BODY_LIMIT } from '../http/body-limits.ts';
import { clientAddress, publicBaseUrl } from '../http/proxies.ts';
import type { CredentialResolver } from '../identity/credential-resolver.ts';
import {
  readCookie,
  type SessionCaller,
  type SessionKind,
  SessionStore,
} from '../registry/oci/api-v1/sessions.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { sendThrottled } from './credentials.ts';
import { ktraError } from './ktra.ts';
import { openIdSessionOf } from './openid/session-client.ts';

/**
 * The AuthService's own browser sessions, for the web UI's Tokens and Administration pages. They
 * live in the AuthService's store, so they work whether the AuthService shares the registry's
 * process or runs as its own Deployment behind the same host (the operator's Ingress routes
 * `/auth/api/v1` to it). The cookie is sent only to `/auth/api/v1` (Path), never cross-site
 * (SameSite=Strict: nothing links into this API), HttpOnly, Secure behind TLS.
 */
export const AUTH_SESSIONS: SessionKind = {
  cookie: 'wharf_auth_session',
  key: (hash) => `auth/sessions/${hash}.json`,
};
declare module 'fastify' {
  interface FastifyRequest {
    /** The AuthService session a browser's request was authenticated with (null for other credentials). */
    authSession: SessionCaller | null;
  }
}

const COOKIE_PATH = '/auth/api/v1';
const SESSION_SECONDS = 12 * 3600;

export function authSessionStore(store: ObjectStore): SessionStore {
  return new SessionStore(store, AUTH_SESSIONS);
}

const signInBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    username: { type: 'string', minLength: 1, maxLength: 256 },
    password: { type: 'string', minLength: 1, maxLength: 4096 },
  },
  required: ['username', 'password'],
} as const;

/**
 * `/auth/api/v1/session`: open one with a password (POST) or with the browser's OpenID sign-in
 * (`POST /session/openid`, the AuthService's own `wharf_sso` cookie), read it (GET: who, and its
 * CSRF token after a page reload), end it (DELETE, with the CSRF token). The sessions are checked
 * on every request by the API's one hook (sessionCaller: CSRF, the account as it is now).
 *
 * Sign-in itself needs no CSRF token: it takes a JSON object, which no cross-site form can send,
 * and gives a fresh session id each time (no fixation).
 */
export async function browserSessionRoutes(
  app: FastifyInstance,
  options: { sessions: SessionStore; resolver: CredentialResolver; publicUrl: string | undefined },
): Promise<void> {
  const { sessions, resolver, publicUrl } = options;
  const open = { access: 'public' } as const;

  const setCookie = (reply: FastifyReply, id: string, maxAge: number) => {
    const secure = publicBaseUrl(publicUrl, reply.request).startsWith('https:');
    reply.header(
      'set-cookie',
      `${sessions.cookie}=${id}; Path=${COOKIE_PATH}; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure ? '; Secure' : ''}`,
    );
  };
  const replace = async (reply: FastifyReply, principal: Parameters<SessionStore['create']>[0]) => {
    // A new id on every sign-in (no fixation); the one it replaces is deleted.
    const previous = readCookie(reply.request.headers.cookie, sessions.cookie);
    if (previous) await sessions.delete(previous);
    const { id, session } = await sessions.create(principal);
    setCookie(reply, id, SESSION_SECONDS);
    return { username: principal?.name, admin: principal?.admin ?? false, csrf_token: session.csrf };
  };

  app.post<{ Body: { username: string; password: string } }>(
    '/session',
    { bodyLimit: CREDENTIAL_BODY_LIMIT, schema: { body: signInBody }, config: open },
    async (request, reply) => {
      const { username, password } = request.body;
      let principal: Awaited<ReturnType<CredentialResolver['basic']>>;
      try {
        // Robots are for the registry protocol, not for people's sessions.
        principal = username.includes('+')
          ? null
          : await resolver.basic(username, password, clientAddress(request));
      } catch (error) {
        return sendThrottled(error, reply, { errors: [{ detail: 'too many failed attempts' }] });
      }
      if (!principal) return ktraError(reply, 403, 'invalid username or password');
      return replace(reply, { ...principal, via: 'session' });
    },
  );

  app.post('/session/openid', { config: open }, async (request, reply) => {
    const signedIn = await openIdSessionOf(request.headers.cookie, { app });
    if (!signedIn) return ktraError(reply, 403, 'not signed in through OpenID');
    return replace(reply, signedIn.principal);
  });

  app.get('/session', { config: { access: 'authenticated' } }, async (request) => ({
    username: request.principal.name,
    admin: request.principal.admin,
    csrf_token: request.authSession?.session?.csrf ?? null,
  }));

  app.delete('/session', { config: { access: 'authenticated' } }, async (request, reply) => {
    const id = request.authSession?.sessionId;
    if (id) await sessions.delete(id);
    setCookie(reply, '', 0);
    return reply.code(204).send();
  });
}
