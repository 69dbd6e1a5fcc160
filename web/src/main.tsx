import { render } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import './styles.css';
import { AdminPage } from './pages/admin.tsx';
import { CratePage } from './pages/crate.tsx';
import { HomePage } from './pages/home.tsx';
import { NamespacePage } from './pages/namespace.tsx';
import { RepositoryPage } from './pages/repository.tsx';
import { RobotsPage } from './pages/robots.tsx';
import { SearchPage } from './pages/search.tsx';
import { SignInPage } from './pages/signin.tsx';
import { TokensPage } from './pages/tokens.tsx';
import { match, navigate, onLinkClick, useLocation } from './router.ts';
import { signOut, start, useAppState } from './state.ts';
import { Failure, Loading } from './ui.tsx';

function Header() {
  const { me, account } = useAppState();
  const { path, params } = useLocation();
  const search = (event: SubmitEvent) => {
    event.preventDefault();
    const q = new FormData(event.currentTarget as HTMLFormElement).get('q');
    navigate(`/ui/search?q=${encodeURIComponent(String(q ?? ''))}`);
  };
  const current = (href: string) => (path === href || path.startsWith(`${href}/`) ? 'page' : undefined);
  return (
    <header class="top">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <a href="/ui" class="brand" aria-label="wharf home">
        wharf
      </a>
      <search class="top-search">
        <form class="top-search-form" onSubmit={search}>
          <label for="top-q" class="visually-hidden">
            Search crates and repositories
          </label>
          <input
            id="top-q"
            name="q"
            type="search"
            placeholder="Search crates and images"
            value={params.get('q') ?? ''}
          />
          <button type="submit">Search</button>
        </form>
      </search>
      <nav aria-label="Main">
        <ul>
          {me && (
            <>
              <li>
                <a
                  href={`/ui/namespace/${encodeURIComponent(me.username)}`}
                  aria-current={current(`/ui/namespace/${me.username}`)}
                >
                  Repositories
                </a>
              </li>
              {account && (
                <li>
                  <a href="/ui/tokens" aria-current={current('/ui/tokens')}>
                    Tokens
                  </a>
                </li>
              )}
              <li>
                <a href="/ui/robots" aria-current={current('/ui/robots')}>
                  Robots
                </a>
              </li>
              {(account?.admin || me.super_user) && (
                <li>
                  <a href="/ui/admin/users" aria-current={current('/ui/admin')}>
                    Admin
                  </a>
                </li>
              )}
            </>
          )}
          <li>
            {me ? (
              <button type="button" class="link" onClick={() => signOut().then(() => navigate('/ui'))}>
                Sign out {me.username}
              </button>
            ) : (
              <a href={`/ui/signin?next=${encodeURIComponent(path === '/ui/signin' ? '/ui' : path)}`}>
                Sign in
              </a>
            )}
          </li>
        </ul>
      </nav>
    </header>
  );
}

const ROUTES: [string, (params: Record<string, string>) => preact.JSX.Element][] = [
  ['/', () => <HomePage />],
  ['/ui', () => <HomePage />],
  ['/ui/search', () => <SearchPage />],
  ['/ui/signin', () => <SignInPage />],
  ['/ui/crates/:name', (p) => <CratePage name={p.name as string} />],
  ['/ui/crates/:name/:version', (p) => <CratePage name={p.name as string} version={p.version} />],
  ['/ui/namespace/:namespace', (p) => <NamespacePage namespace={p.namespace as string} />],
  ['/ui/repository/*name', (p) => <RepositoryPage name={p.name as string} />],
  ['/ui/tokens', () => <TokensPage />],
  ['/ui/robots', () => <RobotsPage />],
  ['/ui/admin/:section', (p) => <AdminPage section={p.section as string} />],
];

function App() {
  const { ready } = useAppState();
  const { path } = useLocation();
  const main = useRef<HTMLElement>(null);
  const firstPath = useRef(path);
  useEffect(() => {
    // After a client-side navigation, screen readers and keyboards start at the new page; on the
    // first load the browser's own order applies (Tab reaches the skip link first).
    if (path !== firstPath.current) main.current?.focus({ preventScroll: true });
    firstPath.current = '';
  }, [path]);
  let page: preact.JSX.Element | null = null;
  for (const [pattern, view] of ROUTES) {
    const params = match(pattern, path);
    if (params) {
      page = view(params);
      break;
    }
  }
  return (
    <>
      <Header />
      <main id="main" tabIndex={-1} ref={main}>
        {!ready ? (
          <Loading what="wharf" />
        ) : (
          (page ?? (
            <section>
              <h1>Not found</h1>
              <p>
                There is no page at <code>{path}</code>. <a href="/ui">Go to the start page</a>.
              </p>
            </section>
          ))
        )}
      </main>
    </>
  );
}

document.addEventListener('click', onLinkClick);
const root = document.getElementById('app') as HTMLElement;
render(<App />, root);
start().catch((error: Error) => render(<Failure error={error} />, root));
