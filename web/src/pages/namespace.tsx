import { get, query } from '../api.ts';
import { useAppState } from '../state.ts';
import type { RepositorySummary } from '../types.ts';
import { EmptyState, Failure, Loading, useLoad } from '../ui.tsx';

export function NamespacePage({ namespace }: { namespace: string }) {
  const { me, settings } = useAppState();
  const repositories = useLoad(
    () => get<{ repositories: RepositorySummary[] }>(`/api/v1/repository${query({ namespace })}`),
    [namespace, me?.username],
  );
  const list = repositories.data?.repositories ?? [];
  const own = me && (me.username === namespace || me.organizations.some((o) => o.name === namespace));
  return (
    <>
      <h1>{namespace}</h1>
      <p class="muted">Namespace: the repositories under {`${settings?.registryHost}/${namespace}/`}</p>
      {repositories.loading && <Loading what="repositories" />}
      {repositories.error && <Failure error={repositories.error} />}
      {!repositories.loading && list.length === 0 && (
        <EmptyState title="No repositories yet">
          {own ? (
            <p>
              Push an image to create one: <code>docker login {settings?.registryHost}</code>, then{' '}
              <code>
                docker push {settings?.registryHost}/{namespace}/IMAGE:TAG
              </code>
              .
            </p>
          ) : (
            <p>There are no repositories here that you can see{me ? '' : ': sign in to see private ones'}.</p>
          )}
        </EmptyState>
      )}
      {list.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Repository</th>
              <th scope="col">Visibility</th>
              <th scope="col">Description</th>
            </tr>
          </thead>
          <tbody>
            {list.map((repository) => (
              <tr key={repository.name}>
                <td>
                  <a href={`/ui/repository/${repository.namespace}/${repository.name}`}>
                    {repository.namespace}/{repository.name}
                  </a>
                </td>
                <td>
                  <span class={`badge ${repository.is_public ? 'public' : 'private'}`}>
                    {repository.is_public ? 'public' : 'private'}
                  </span>
                </td>
                <td>{repository.description}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
