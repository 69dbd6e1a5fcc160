import { get } from '../api.ts';
import { useAppState } from '../state.ts';
import type { RepositorySummary } from '../types.ts';
import { EmptyState, GettingStarted, useLoad } from '../ui.tsx';

export function HomePage() {
  const { me, settings } = useAppState();
  const repositories = useLoad(
    () => (me ? get<{ repositories: RepositorySummary[] }>('/api/v1/repository') : Promise.resolve(null)),
    [me?.username],
  );
  const list = repositories.data?.repositories ?? [];
  return (
    <>
      <h1>wharf registry</h1>
      <p class="lead">Crates and container images for your team, on {settings?.registryHost}.</p>
      <search class="big-search">
        <form action="/ui/search">
          <label for="home-q">Search crates and repositories</label>
          <div class="row">
            <input
              id="home-q"
              name="q"
              type="search"
              placeholder="a crate name, a word of its description, an image"
            />
            <button type="submit">Search</button>
          </div>
        </form>
      </search>
      {me && list.length > 0 && (
        <section>
          <h2>Repositories you can see</h2>
          <ul class="cards">
            {list.slice(0, 24).map((repository) => (
              <li key={`${repository.namespace}/${repository.name}`}>
                <a href={`/ui/repository/${repository.namespace}/${repository.name}`}>
                  {repository.namespace}/{repository.name}
                </a>
                <span class={`badge ${repository.is_public ? 'public' : 'private'}`}>
                  {repository.is_public ? 'public' : 'private'}
                </span>
                {repository.description && <p>{repository.description}</p>}
              </li>
            ))}
          </ul>
        </section>
      )}
      {(!me || list.length === 0) && (
        <EmptyState title={me ? 'Get started' : 'New here?'}>
          {!me && (
            <p>
              <a href="/ui/signin">Sign in</a> to see private crates and images, and to create tokens for
              cargo and docker.
            </p>
          )}
          {settings && <GettingStarted baseUrl={settings.baseUrl} host={settings.registryHost} />}
        </EmptyState>
      )}
    </>
  );
}
