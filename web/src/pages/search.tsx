import { get, query } from '../api.ts';
import { navigate, useLocation } from '../router.ts';
import type { CrateSummary, RepositorySummary } from '../types.ts';
import { age, EmptyState, Failure, Loading, Pager, useLoad } from '../ui.tsx';

const PER_PAGE = 20;

interface FoundRepository {
  name: string;
  namespace: { name: string };
  description: string | null;
  is_public: boolean;
}

/** API v1's repository search (Quay's `find/repositories`): names and descriptions, the caller's visible ones. */
async function findRepositories(q: string): Promise<RepositorySummary[]> {
  const found = await get<{ results: FoundRepository[] }>(`/api/v1/find/repositories${query({ query: q })}`);
  return found.results.map((result) => ({
    namespace: result.namespace.name,
    name: result.name,
    description: result.description ?? '',
    is_public: result.is_public,
  }));
}

export function SearchPage() {
  const { params } = useLocation();
  const q = params.get('q') ?? '';
  const page = Number(params.get('page') ?? 1) || 1;
  const crates = useLoad(
    () =>
      get<{ crates: CrateSummary[]; meta: { total: number } }>(
        `/api/v1/crates${query({ q, page, per_page: PER_PAGE })}`,
      ),
    [q, page],
  );
  const repositories = useLoad(() => (q ? findRepositories(q) : Promise.resolve([])), [q]);
  const goto = (next: number) => navigate(`/ui/search${query({ q, page: next })}`);
  return (
    <>
      <h1>{q ? `Results for “${q}”` : 'All crates'}</h1>
      <section aria-labelledby="crate-results">
        <h2 id="crate-results">
          Crates {crates.data && <span class="count">({crates.data.meta.total})</span>}
        </h2>
        {crates.loading && <Loading what="crates" />}
        {crates.error && <Failure error={crates.error} />}
        {crates.data && crates.data.crates.length === 0 && (
          <EmptyState title="No crates match">
            <p>
              Try another word, or publish one: <code>cargo publish --registry wharf</code>.
            </p>
          </EmptyState>
        )}
        {crates.data && crates.data.crates.length > 0 && (
          <ul class="results">
            {crates.data.crates.map((crate) => (
              <li key={crate.name}>
                <a href={`/ui/crates/${encodeURIComponent(crate.name)}`} class="result-name">
                  {crate.name}
                </a>{' '}
                <span class="version">v{crate.max_version}</span>
                {crate.description && <p>{crate.description}</p>}
                <p class="muted">
                  {(crate.downloads ?? 0).toLocaleString('en')} downloads
                  {crate.updated_at ? ` · updated ${age(crate.updated_at)}` : ''}
                </p>
              </li>
            ))}
          </ul>
        )}
        {crates.data && (
          <Pager
            page={page}
            hasNext={page * PER_PAGE < crates.data.meta.total}
            onPage={goto}
            label="Crate results"
          />
        )}
      </section>
      {q && (
        <section aria-labelledby="repository-results">
          <h2 id="repository-results">Repositories</h2>
          {repositories.loading && <Loading what="repositories" />}
          {repositories.error && <Failure error={repositories.error} />}
          {repositories.data?.length === 0 && <p class="muted">No repositories you can see match.</p>}
          {repositories.data && repositories.data.length > 0 && (
            <ul class="results">
              {repositories.data.map((repository) => (
                <li key={`${repository.namespace}/${repository.name}`}>
                  <a class="result-name" href={`/ui/repository/${repository.namespace}/${repository.name}`}>
                    {repository.namespace}/{repository.name}
                  </a>
                  {repository.description && <p>{repository.description}</p>}
                </li>
              ))}
            </ul>
          )}
        </section>
      )}
    </>
  );
}
