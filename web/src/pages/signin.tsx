import { useState } from 'preact/hooks';
import { navigate, useLocation } from '../router.ts';
import { signIn, useAppState } from '../state.ts';

/** Only a path of this UI: never send someone elsewhere after sign-in. */
function safeNext(next: string | null): string {
  return next && /^\/ui(\/[A-Za-z0-9\-._~/%]*)?$/.test(next) ? next : '/ui';
}

export function SignInPage() {
  const { settings, me } = useAppState();
  const { params } = useLocation();
  const next = safeNext(params.get('next'));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: SubmitEvent) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    setBusy(true);
    setError(null);
    try {
      await signIn(String(form.get('username') ?? ''), String(form.get('password') ?? ''));
      navigate(next, { replace: true });
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="narrow">
      <h1>Sign in</h1>
      {me && (
        <p role="status">
          You are signed in as <strong>{me.username}</strong>.
        </p>
      )}
      {(settings?.openidProviders.length ?? 0) > 0 && (
        <div class="providers">
          {settings?.openidProviders.map((provider) => (
            <a
              key={provider}
              class="button"
              href={`/api/v1/signin/openid?provider=${encodeURIComponent(provider)}&return_to=${encodeURIComponent(next)}`}
            >
              Sign in with {provider}
            </a>
          ))}
          <p class="muted">or with a wharf password:</p>
        </div>
      )}
      <form onSubmit={submit} class="stack">
        <label for="username">User name</label>
        <input id="username" name="username" autocomplete="username" required />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required />
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </section>
  );
}
