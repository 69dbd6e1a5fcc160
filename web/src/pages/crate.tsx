import { useState } from 'preact/hooks';
import { get, getHtml, query } from '../api.ts';
import type { CrateReply, Dependency, Downloads, Owner, Version } from '../types.ts';
import { age, CopyLine, EmptyState, Failure, formatBytes, Loading, Pager, useLoad } from '../ui.tsx';

const VERSIONS_PER_PAGE = 25;

/** Downloads per day over the last 90 days, as bars in an inline SVG (no chart library). */
export function DownloadsChart({ downloads }: { downloads: Downloads }) {
  const days = 90;
  const totals = new Map<string, number>();
  for (const entry of [...downloads.version_downloads, ...(downloads.meta?.extra_downloads ?? [])])
    totals.set(entry.date, (totals.get(entry.date) ?? 0) + entry.downloads);
  const series: { date: string; count: number }[] = [];
  for (let i = days - 1; i >= 0; i--) {
    const date = new Date(Date.now() - i * 86_400_000).toISOString().slice(0, 10);
    series.push({ date, count: totals.get(date) ?? 0 });
  }
  const max = Math.max(1, ...series.map((day) => day.count));
  const total = series.reduce((sum, day) => sum + day.count, 0);
  const said = `${total.toLocaleString('en')} download${total === 1 ? '' : 's'} in the last ${days} days`;
  const width = 360;
  const height = 80;
  const bar = width / days;
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={said}>
        <title>{said}</title>
        {series.map((day, i) => {
          const h = (day.count / max) * (height - 4);
          return (
            <rect
              key={day.date}
              x={i * bar}
              y={height - h}
              width={Math.max(bar - 1, 1)}
              height={h}
              class="bar"
            >
              <title>{`${day.date}: ${day.count}`}</title>
            </rect>
          );
        })}
      </svg>
      <figcaption>{said}</figcaption>
    </figure>
  );
}

/** One page of versions at a time from the server (crates.io's `versions?per_page`), newest first. */
function Versions({ name, selected }: { name: string; selected: string }) {
  const [page, setPage] = useState(1);
  const versions = useLoad(
    () =>
      get<{ versions: Version[]; meta: { total: number } }>(
        `/api/v1/crates/${encodeURIComponent(name)}/versions${query({ per_page: VERSIONS_PER_PAGE, page })}`,
      ),
    [name, page],
  );
  const total = versions.data?.meta.total;
  return (
    <section aria-labelledby="versions">
      <h2 id="versions">Versions{total !== undefined ? ` (${total})` : ''}</h2>
      {versions.error && <Failure error={versions.error} />}
      {versions.loading && !versions.data && <Loading what="versions" />}
      <table>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Published</th>
            <th scope="col">Downloads</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {(versions.data?.versions ?? []).map((version) => (
            <tr key={version.num} class={version.yanked ? 'yanked' : ''}>
              <td>
                <a
                  href={`/ui/crates/${encodeURIComponent(name)}/${encodeURIComponent(version.num)}`}
                  aria-current={version.num === selected ? 'page' : undefined}
                >
                  {version.num}
                </a>
              </td>
              <td>{age(version.created_at)}</td>
              <td>{version.downloads.toLocaleString('en')}</td>
              <td>{version.yanked ? <span class="badge yanked">yanked</span> : 'available'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager
        page={page}
        hasNext={total !== undefined && page * VERSIONS_PER_PAGE < total}
        onPage={setPage}
        label="Versions"
      />
    </section>
  );
}

export function CratePage({ name, version }: { name: string; version?: string | undefined }) {
  const base = `/api/v1/crates/${encodeURIComponent(name)}`;
  // The crate with its default version only: a crate with 500 versions is not one 600 KB answer.
  const crate = useLoad(
    () => get<CrateReply>(`${base}?include=default_version,keywords,categories,downloads`),
    [name],
  );
  const named = useLoad(
    () =>
      version
        ? get<{ version: Version }>(`${base}/${encodeURIComponent(version)}`).then((r) => r.version)
        : Promise.resolve(null),
    [name, version],
  );
  const current = version ? named.data : (crate.data?.versions?.[0] ?? null);
  const selected = version ?? current?.num ?? crate.data?.crate.max_version ?? '';
  const readme = useLoad(
    () =>
      selected
        ? getHtml(`${base}/${encodeURIComponent(selected)}/readme`).catch(() => '')
        : Promise.resolve(''),
    [name, selected],
  );
  const dependencies = useLoad(
    () =>
      selected
        ? get<{ dependencies: Dependency[] }>(`${base}/${encodeURIComponent(selected)}/dependencies`)
        : Promise.resolve({ dependencies: [] }),
    [name, selected],
  );
  const owners = useLoad(() => get<{ users: Owner[] }>(`${base}/owners`), [name]);
  const downloads = useLoad(() => get<Downloads>(`${base}/downloads`), [name]);

  if (crate.loading) return <Loading what={`crate ${name}`} />;
  if (crate.error || !crate.data)
    return (
      <>
        <h1>{name}</h1>
        {crate.error && <Failure error={crate.error} />}
      </>
    );
  const info = crate.data.crate;
  return (
    <>
      <div class="title-row">
        <h1>
          {info.name} <span class="version">v{selected}</span>
        </h1>
        {current?.yanked && <span class="badge yanked">yanked</span>}
      </div>
      {info.description && <p class="lead">{info.description}</p>}
      <div class="columns">
        <div class="primary">
          <section aria-labelledby="readme-heading">
            <h2 id="readme-heading" class="visually-hidden">
              README
            </h2>
            {readme.loading && <Loading what="README" />}
            {!readme.loading && readme.data ? (
              // Rendered and sanitized by the server (crates.io's readme endpoint); the page's CSP
              // runs no script and loads nothing from elsewhere even if something slipped through.
              <article class="readme" dangerouslySetInnerHTML={{ __html: readme.data }} />
            ) : (
              !readme.loading && (
                <EmptyState title="No README">
                  <p>
                    This version has no README. Set <code>readme = "README.md"</code> in{' '}
                    <code>Cargo.toml</code> and publish again.
                  </p>
                </EmptyState>
              )
            )}
          </section>
          <Versions name={name} selected={selected} />
        </div>
        <aside class="secondary" aria-label="Crate details">
          <h2>Install</h2>
          <CopyLine label="cargo add" text={`cargo add ${info.name}@${selected} --registry wharf`} />
          <CopyLine
            label="Cargo.toml"
            text={`${info.name} = { version = "${selected}", registry = "wharf" }`}
          />
          <h2>Details</h2>
          <dl>
            {current?.license && (
              <>
                <dt>License</dt>
                <dd>{current.license}</dd>
              </>
            )}
            {current?.rust_version && (
              <>
                <dt>Rust version</dt>
                <dd>{current.rust_version}</dd>
              </>
            )}
            {current?.edition && (
              <>
                <dt>Edition</dt>
                <dd>{current.edition}</dd>
              </>
            )}
            {current?.crate_size ? (
              <>
                <dt>Size</dt>
                <dd>{formatBytes(current.crate_size)}</dd>
              </>
            ) : null}
            <dt>Downloads</dt>
            <dd>{info.downloads.toLocaleString('en')}</dd>
            {info.repository && (
              <>
                <dt>Repository</dt>
                <dd>
                  <a href={info.repository} rel="noopener noreferrer">
                    {info.repository}
                  </a>
                </dd>
              </>
            )}
            {info.homepage && (
              <>
                <dt>Homepage</dt>
                <dd>
                  <a href={info.homepage} rel="noopener noreferrer">
                    {info.homepage}
                  </a>
                </dd>
              </>
            )}
            {info.documentation && (
              <>
                <dt>Documentation</dt>
                <dd>
                  <a href={info.documentation} rel="noopener noreferrer">
                    {info.documentation}
                  </a>
                </dd>
              </>
            )}
          </dl>
          {(crate.data.keywords?.length ?? 0) > 0 && (
            <>
              <h2>Keywords</h2>
              <ul class="chips">
                {crate.data.keywords?.map((k) => (
                  <li key={k.id}>
                    <a href={`/ui/search?q=${encodeURIComponent(k.keyword)}`}>{k.keyword}</a>
                  </li>
                ))}
              </ul>
            </>
          )}
          <h2>Owners</h2>
          {owners.data ? (
            <ul class="plain">
              {owners.data.users.map((owner) => (
                <li key={owner.login}>
                  {owner.login}
                  {owner.kind === 'team' ? ' (group)' : ''}
                </li>
              ))}
            </ul>
          ) : (
            owners.error && <Failure error={owners.error} />
          )}
          <h2>Downloads</h2>
          {downloads.data && <DownloadsChart downloads={downloads.data} />}
          {downloads.error && <p class="muted">No download counts.</p>}
          <h2>Dependencies</h2>
          {dependencies.data && dependencies.data.dependencies.length === 0 && <p class="muted">None.</p>}
          {dependencies.data && dependencies.data.dependencies.length > 0 && (
            <ul class="plain">
              {dependencies.data.dependencies.map((dependency) => (
                <li key={`${dependency.kind}:${dependency.crate_id}:${dependency.target ?? ''}`}>
                  <a href={`/ui/crates/${encodeURIComponent(dependency.crate_id)}`}>{dependency.crate_id}</a>{' '}
                  <code>{dependency.req}</code>
                  {dependency.kind !== 'normal' && <span class="muted"> ({dependency.kind})</span>}
                  {dependency.optional && <span class="muted"> optional</span>}
                </li>
              ))}
            </ul>
          )}
        </aside>
      </div>
    </>
  );
}
