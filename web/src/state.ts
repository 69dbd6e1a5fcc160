import { useEffect, useState } from 'preact/hooks';
import { ApiFailure, call, forgetCsrf, get } from './api.ts';
import type { Me, Settings } from './types.ts';

/** Who is signed in, and the server's settings: read once at start, changed by sign-in and sign-out. */
interface AppState {
  settings: Settings | null;
  me: Me | null;
  ready: boolean;
}

let state: AppState = { settings: null, me: null, ready: false };
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

export async function start(): Promise<void> {
  const [settings, me] = await Promise.all([get<Settings>('/ui/settings.json'), whoAmI()]);
  set({ settings, me, ready: true });
}

export async function signIn(username: string, password: string): Promise<void> {
  await call('POST', '/api/v1/signin', { username, password });
  forgetCsrf();
  set({ me: await whoAmI() });
}

export async function signOut(): Promise<void> {
  await call('POST', '/api/v1/signout');
  forgetCsrf();
  set({ me: null });
}
