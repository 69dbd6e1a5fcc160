import { useEffect, useState } from 'preact/hooks';
import { ApiFailure, AUTH_API, call, forgetCsrf, get, setAuthCsrf } from './api.ts';
import type { Account, Me, Settings } from './types.ts';

/** Who is signed in, and the server's settings: read once at start, changed by sign-in and sign-out. */
interface AppState {
  settings: Settings | null;
  me: Me | null;
  /** The AuthService session (tokens, administration): null when there is none. */
  account: Account | null;
  /** False once `/auth/api/v1` answered 404: nothing routes it to the AuthService on this host. */
  accountsServed: boolean;
  ready: boolean;
}

let state: AppState = { settings: null, me: null, account: null, accountsServed: true, ready: false };
const listeners = new Set<(state: AppState) => void>();

function set(next: Partial<AppState>): void {
  state = { ...state, ...next };
  for (const listener of listeners) listener(state);
}

export function useAppState(): AppState {
  const [value, setValue] = useState(state);
  useEffect(() => {
    listeners.add(setValue);
    setValue(state);
    return () => {
      listeners.delete(setValue);
    };
  }, []);
  return value;
}

async function whoAmI(): Promise<Me | null> {
  try {
    return await get<Me>('/api/v1/user/');
  } catch (error) {
    if (error instanceof ApiFailure && (error.status === 401 || error.status === 403)) return null;
    throw error;
  }
}

/** An AuthService session answer: who, whether an administrator, and its CSRF token. */
type SessionAnswer = Account & { csrf_token: string };

function accountOf(answer: SessionAnswer | null): Account | null {
  setAuthCsrf(answer?.csrf_token ?? null);
  return answer ? { username: answer.username, admin: answer.admin } : null;
}

/**
 * Null for "none" (401/403), so the UI works without it; a 404 also means none, and that this host
 * does not reach the AuthService; anything else is a failure to show.
 */
async function orNone<T>(load: () => Promise<T>): Promise<T | null> {
  try {
    return await load();
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 404) set({ accountsServed: false });
    if (error instanceof ApiFailure && [401, 403, 404].includes(error.status)) return null;
    throw error;
  }
}

/**
 * The AuthService session for a person signed in to the registry: the current one, or one opened
 * from their OpenID sign-in (the AuthService ran it and holds its own cookie for it).
 */
async function authSession(me: Me | null): Promise<Account | null> {
  if (!me) return null;
  const current = await orNone(() => get<SessionAnswer>(`${AUTH_API}/session`));
  if (current && current.username === me.username) return accountOf(current);
  return accountOf(await orNone(() => call<SessionAnswer>('POST', `${AUTH_API}/session/openid`)));
}

export async function start(): Promise<void> {
  const [settings, me] = await Promise.all([get<Settings>('/ui/settings.json'), whoAmI()]);
  set({ settings, me, account: await authSession(me), ready: true });
}

/** One form, two sessions: the registry's and the AuthService's, with the same password. */
export async function signIn(username: string, password: string): Promise<void> {
  await call('POST', '/api/v1/signin', { username, password });
  forgetCsrf();
  const account = accountOf(
    await orNone(() => call<SessionAnswer>('POST', `${AUTH_API}/session`, { username, password })),
  );
  set({ me: await whoAmI(), account });
}

export async function signOut(): Promise<void> {
  await Promise.all([
    call('POST', '/api/v1/signout'),
    state.account ? orNone(() => call('DELETE', `${AUTH_API}/session`)) : null,
  ]);
  forgetCsrf();
  accountOf(null);
  set({ me: null, account: null });
}
