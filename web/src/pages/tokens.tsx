import { useState } from 'preact/hooks';
import { call, get } from '../api.ts';
import { useAppState } from '../state.ts';
import type { Token } from '../types.ts';
import { age, CopyLine, EmptyState, Failure, GettingStarted, Loading, TableHead, useLoad } from '../ui.tsx';

/** server/identity/scopes.ts: what a token may do; none selected means everything the account may. */
const SCOPES: [string, string][] = [
  ['publish-new', 'publish new crates'],
  ['publish-update', 'publish new versions of existing crates'],
  ['yank', 'yank and unyank'],
  ['change-owners', 'change crate owners'],
  ['download', 'read a private Cargo registry'],
  ['pull', 'pull images'],
  ['push', 'push images'],
  ['delete', 'delete tags and manifests'],
  ['repo-admin', 'manage repositories (API v1)'],
];

const EXPIRY: [string, string][] = [
  ['2592000', '30 days'],
  ['7776000', '90 days'],
  ['31536000', '1 year'],
  ['', 'never'],
];

export function SignInFirst({ what }: { what: string }) {
  return (
    <EmptyState title="Sign in first">
      <p>
        <a href={`/ui/signin?next=${encodeURIComponent(window.location.pathname)}`}>Sign in</a> to manage{' '}
        {what}.
      </p>
    </EmptyState>
  );
}

/**
 * Signed in to the registry but without an AuthService session (signed in before it existed, or it
 * expired): signing in again opens both.
 */
export function AccountSessionMissing() {
  const { accountsServed } = useAppState();
  if (!accountsServed)
    return (
      <EmptyState title="Accounts are not reachable at this address">
        <p>
          Tokens and accounts are kept by the AuthService, and this host does not route{' '}
          <code>/auth/api/v1</code> to it (the operator's Ingress does). Use the AuthService's own address, or
          ask your administrator to route that path to it.
        </p>
      </EmptyState>
    );
  return (
    <EmptyState title="Sign in again to manage your account">
      <p>
        Tokens and accounts are kept by the AuthService, which needs its own sign-in.{' '}
        <a href={`/ui/signin?next=${encodeURIComponent(window.location.pathname)}`}>Sign in again</a>, or get
        a token for cargo and docker at <a href="/me">/me</a>.
      </p>
    </EmptyState>
  );
}

export function TokensPage() {
  const { me, account, settings } = useAppState();
  const tokens = useLoad(
    () => (me && account ? get<{ tokens: Token[] }>('/auth/api/v1/tokens') : Promise.resolve({ tokens: [] })),
    [me?.username, account?.username],
  );
  const [created, setCreated] = useState<{ name: string; token: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  if (!me) return <SignInFirst what="your tokens" />;
  if (!account) return <AccountSessionMissing />;

  const create = async (event: SubmitEvent) => {
    event.preventDefault();
    const formElement = event.currentTarget as HTMLFormElement;
    const form = new FormData(formElement);
    const scopes = form.getAll('scopes').map(String);
    const crates = String(form.get('crates') ?? '')
      .split(/[\s,]+/)
      .filter(Boolean);
    const expiry = String(form.get('expiry') ?? '');
    setError(null);
    try {
      const answer = await call<{ name: string; token: string }>('POST', '/auth/api/v1/tokens', {
        name: String(form.get('name') ?? ''),
        ...(scopes.length ? { scopes } : {}),
        ...(crates.length ? { crateScopes: crates } : {}),
        ...(expiry ? { expiresInSeconds: Number(expiry) } : {}),
      });
      setCreated({ name: answer.name, token: answer.token });
      formElement.reset();
      tokens.reload();
    } catch (failure) {
      setError((failure as Error).message);
    }
  };
  const revoke = async (token: Token) => {
    if (!window.confirm(`Revoke token ${token.name}? Whatever uses it stops working.`)) return;
    try {
      await call('DELETE', `/auth/api/v1/tokens/${encodeURIComponent(token.id)}`);
      setStatus(`Token ${token.name} revoked.`);
      tokens.reload();
    } catch (failure) {
      setError((failure as Error).message);
    }
  };
  const list = tokens.data?.tokens ?? [];
  return (
    <>
      <h1>Your tokens</h1>
      <p class="muted">
        Tokens let cargo, docker and CI act as {me.username}. They are stored only as hashes: a new token is
        shown once.
      </p>
      {created && (
        <section class="created" aria-labelledby="created-heading">
          <h2 id="created-heading">Token “{created.name}” created</h2>
          <p>Copy it now: it will not be shown again.</p>
          <CopyLine label="token" text={created.token} />
          <CopyLine label="cargo login" text="cargo login --registry wharf" />
          <p class="muted">
            cargo asks for the token (paste it there, not on the command line, where shell history keeps it).
          </p>
          <CopyLine label="docker login" text={`docker login ${settings?.registryHost} -u ${me.username}`} />
          <button type="button" onClick={() => setCreated(null)}>
            Done
          </button>
        </section>
      )}
      <section aria-labelledby="new-token">
        <h2 id="new-token">New token</h2>
        <form class="stack" onSubmit={create}>
          <label for="token-name">Name</label>
          <input id="token-name" name="name" required maxLength={64} placeholder="ci-publish" />
          <fieldset>
            <legend>Scopes (none: everything your account may do)</legend>
            {SCOPES.map(([scope, label]) => (
              <label key={scope} class="check">
                <input type="checkbox" name="scopes" value={scope} /> <code>{scope}</code> {label}
              </label>
            ))}
          </fieldset>
          <label for="token-crates">Only these crates (names or prefixes ending in *, optional)</label>
          <input id="token-crates" name="crates" placeholder="my-crate, internal-*" />
          <label for="token-expiry">Expires after</label>
          <select id="token-expiry" name="expiry">
            {EXPIRY.map(([value, label]) => (
              <option key={label} value={value}>
                {label}
              </option>
            ))}
          </select>
          {error && (
            <p class="error" role="alert">
              {error}
            </p>
          )}
          <button type="submit">Create token</button>
        </form>
      </section>
      <section aria-labelledby="token-list">
        <h2 id="token-list">Existing tokens</h2>
        <p role="status" class="muted">
          {status}
        </p>
        {tokens.loading && <Loading what="tokens" />}
        {tokens.error && <Failure error={tokens.error} />}
        {!tokens.loading && list.length === 0 && (
          <EmptyState title="No tokens yet">
            <p>Create one above, then use it with cargo and docker:</p>
            {settings && <GettingStarted baseUrl={settings.baseUrl} host={settings.registryHost} />}
          </EmptyState>
        )}
        {list.length > 0 && (
          <div class="table-wrap">
            <table>
              <TableHead columns={['Name', 'Scopes', 'Created', 'Expires']} />
              <tbody>
                {list.map((token) => (
                  <tr key={token.id}>
                    <th scope="row">{token.name}</th>
                    <td>{token.scopes ? token.scopes.join(', ') : 'all'}</td>
                    <td>{age(token.createdAt)}</td>
                    <td>
                      {token.expiresAt ? new Date(token.expiresAt).toISOString().slice(0, 10) : 'never'}
                    </td>
                    <td>
                      <button type="button" class="small danger" onClick={() => revoke(token)}>
                        Revoke<span class="visually-hidden"> {token.name}</span>
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}
