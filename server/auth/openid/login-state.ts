import { createHash, randomBytes } from 'node:crypto';
import { createJson, readJson, updateJson } from '../../store/json-doc.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import type { Purpose } from './providers.ts';

/**
 * Pending logins and sessions live in the object store, so a login started on one replica can
 * finish on another. Keys are SHA-256 of the random values the browser holds: reading the store
 * gives nobody a usable `state` or session cookie.
 *
 *   openid/pending/<sha256(state)>.json      one sign-in in progress at the provider
 *   openid/sessions/<sha256(session)>.json   a browser signed in through OpenID
 */
export const PENDING_PREFIX = 'openid/pending/';
export const SESSIONS_PREFIX = 'openid/sessions/';

/** Where a finished login goes: the Ktra token reply, or back to a page of this host (API v1 sign-in). */
export type AfterLogin = { kind: 'token' } | { kind: 'redirect'; path: string };

export interface PendingLogin {
  provider: string;
  purpose: Purpose;
  redirectUri: string;
  codeVerifier: string;
  nonce: string;
  /** SHA-256 of the browser-binding cookie the login was started with. */
  browser: string;
  expiresAt: number;
  afterLogin: AfterLogin;
  /** Set by the one callback that claims this login; any other use of the state is a replay. */
  consumedAt?: number;
}

export interface Session {
  account: string;
  /** `provider:identity`, as `/me` shows it. */
  username: string;
  provider: string;
  groups: string[];
  expiresAt: number;
}

export function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Why a callback's state was refused, for the page the user sees. */
export type ClaimRefusal = 'unknown' | 'replayed' | 'expired' | 'other-browser';

export class LoginState {
  private readonly store: ObjectStore;

  constructor(store: ObjectStore) {
    this.store = store;
  }

  async startLogin(state: string, login: PendingLogin): Promise<void> {
    if (!(await createJson(this.store, pendingKey(state), login))) throw new Error('state collision');
  }

  /**
   * Claims a pending login exactly once, across replicas: the conditional write that marks it
   * consumed succeeds for one caller only. The login must have been started in this browser.
   */
  async claimLogin(state: string, browserCookie: string | undefined): Promise<PendingLogin | ClaimRefusal> {
    if (!/^[A-Za-z0-9_-]{16,128}$/.test(state)) return 'unknown';
    let refusal: ClaimRefusal | undefined;
    let claimed: PendingLogin | undefined;
    const now = Date.now();
    await updateJson<PendingLogin>(this.store, pendingKey(state), (login) => {
      refusal = undefined;
      if (!login) refusal = 'unknown';
      else if (login.consumedAt !== undefined) refusal = 'replayed';
      if (!login || refusal) return undefined;
      claimed = login;
      return { ...login, consumedAt: now };
    });
    if (refusal) return refusal;
    const login = claimed!;
    if (login.expiresAt <= now) return 'expired';
    if (!browserCookie || sha256(browserCookie) !== login.browser) return 'other-browser';
    return login;
  }

  async createSession(session: Session): Promise<string> {
    const id = randomSecret();
    if (!(await createJson(this.store, sessionKey(id), session))) throw new Error('session collision');
    return id;
  }

  async session(id: string | undefined): Promise<Session | null> {
    if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return null;
    const session = (await readJson<Session>(this.store, sessionKey(id)))?.value;
    return session && session.expiresAt > Date.now() ? session : null;
  }

  async endSession(id: string | undefined): Promise<void> {
    if (id && /^[A-Za-z0-9_-]{43}$/.test(id)) await this.store.delete(sessionKey(id));
  }

  /** Deletes pending logins and sessions past their lifetime, judged from their write time. */
  async sweep(loginSeconds: number, sessionSeconds: number): Promise<void> {
    const now = Date.now();
    for (const [prefix, seconds] of [
      [PENDING_PREFIX, loginSeconds],
      [SESSIONS_PREFIX, sessionSeconds],
    ] as const) {
      let continuationToken: string | undefined;
      do {
        const page = await this.store.list({ prefix, ...(continuationToken ? { continuationToken } : {}) });
        for (const object of page.objects)
          if (object.lastModified.getTime() + seconds * 1000 + 60_000 < now)
            await this.store.delete(object.key);
        continuationToken = page.nextContinuationToken;
      } while (continuationToken);
    }
  }
}

const pendingKey = (state: string) => `${PENDING_PREFIX}${sha256(state)}.json`;
const sessionKey = (id: string) => `${SESSIONS_PREFIX}${sha256(id)}.json`;
