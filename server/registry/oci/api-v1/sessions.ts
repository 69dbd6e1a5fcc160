import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { CredentialResolver } from '../../../identity/credential-resolver.ts';
import { ANONYMOUS, type Principal } from '../../../identity/principal.ts';
import { readJson } from '../../../store/json-doc.ts';
import type { ObjectStore } from '../../../store/object-store.ts';
import { keys } from '../names.ts';

/** A browser session: lives in the store (any replica serves it), keyed by a hash of the cookie. */
export interface Session {
  csrf: string;
  principal: Principal | null;
  expiresAt: number;
}

export const SESSION_COOKIE = 'wharf_oci_session';
const LIFETIME_MS = 12 * 3600 * 1000;

/** Where a kind of session lives: its cookie's name and the store key of a session's hash. */
export interface SessionKind {
  cookie: string;
  key: (hash: string) => string;
}

/** API v1's sessions (the registry's): cookie on the whole host, records beside the OCI data. */
export const API_V1_SESSIONS: SessionKind = { cookie: SESSION_COOKIE, key: keys.session };

export class SessionStore {
  private readonly store: ObjectStore;
  readonly cookie: string;
  private readonly key: (hash: string) => string;
  constructor(store: ObjectStore, kind: SessionKind = API_V1_SESSIONS) {
    this.store = store;
    this.cookie = kind.cookie;
    this.key = kind.key;
  }

  async create(
    principal: Principal | null,
    csrf = randomBytes(24).toString('base64url'),
  ): Promise<{ id: string; session: Session }> {
    const id = randomBytes(32).toString('base64url');
    const session: Session = { csrf, principal, expiresAt: Date.now() + LIFETIME_MS };
    await this.store.put(this.key(hash(id)), JSON.stringify(session), {
      contentType: 'application/json',
    });
    return { id, session };
  }

  async get(id: string | undefined): Promise<Session | null> {
    if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return null;
    const session = (await readJson<Session>(this.store, this.key(hash(id))))?.value ?? null;
    if (!session) return null;
    if (session.expiresAt < Date.now()) {
      await this.store.delete(this.key(hash(id)));
      return null;
    }
    return session;
  }

  async delete(id: string): Promise<void> {
    await this.store.delete(this.key(hash(id)));
  }
}

export function csrfMatches(session: Session, presented: string | undefined): boolean {
  if (!presented) return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}

function hash(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Who a browser's session cookie stands for, as every surface that accepts sessions reads it. */
export interface SessionCaller {
  principal: Principal;
  session: Session | null;
  sessionId: string | undefined;
}

/**
 * The session a request carries (the store's cookie), checked the one way for every surface that
 * accepts sessions (API v1's, the AuthService's): anything but GET and HEAD must present the session's CSRF
 * token in `X-CSRF-Token` ('csrf-failure' otherwise), and the principal is the account as it is now
 * (anonymous once its credential is revoked or the user disabled).
 */
export async function sessionCaller(
  request: FastifyRequest,
  sessions: SessionStore,
  resolver: CredentialResolver,
): Promise<SessionCaller | 'csrf-failure'> {
  const sessionId = readCookie(request.headers.cookie, sessions.cookie);
  const session = await sessions.get(sessionId);
  if (session && request.method !== 'GET' && request.method !== 'HEAD') {
    const presented = request.headers['x-csrf-token'];
    if (!csrfMatches(session, Array.isArray(presented) ? presented[0] : presented)) return 'csrf-failure';
  }
  const principal = session?.principal ? await resolver.current(session.principal) : null;
  return { principal: principal ?? ANONYMOUS, session, sessionId };
}
