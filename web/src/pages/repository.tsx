import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { call, get, query, repoPath } from '../api.ts';
import { navigate, useLocation } from '../router.ts';
import { useAppState } from '../state.ts';
import type { Platform, RepositorySummary, Tag, TagDetail, TagPage } from '../types.ts';
import {
  age,
  CopyLine,
  EmptyState,
  Failure,
  formatBytes,
  Loading,
  Pager,
  shortDigest,
  TableHead,
  useLoad,
} from '../ui.tsx';

const TAGS_PER_PAGE = 50;

function platformName(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

function platforms(tag: Tag): string {
  if (!tag.platforms?.length) return tag.is_manifest_list ? 'index' : '—';
  return tag.platforms.map(platformName).join(', ');
}

/** One tag: its pull lines (built by the server from the public URL), platforms, labels and referrers. */
function TagDetails({ name, tag }: { name: string; tag: string }) {
  const details = useLoad(
    () => get<TagDetail>(`/api/v1/repository/${repoPath(name)}/tag/${encodeURIComponent(tag)}`),
    [name, tag],
  );
  if (details.loading) return <Loading what={`tag ${tag}`} />;
  if (details.error || !details.data) return details.error ? <Failure error={details.error} /> : null;
  const info = details.data;
  const labels = Object.entries(info.labels ?? {});
  const referrers = info.referrers ?? [];
  return (
    <div class="tag-details">
      {info.pull?.docker && <CopyLine label="docker pull" text={info.pull.docker} />}
      {info.pull_by_digest?.docker && <CopyLine label="pull by digest" text={info.pull_by_digest.docker} />}
      {info.pull?.skopeo && <CopyLine label="skopeo copy" text={info.pull.skopeo} />}
      <dl>
        <dt>Media type</dt>
        <dd>{info.media_type}</dd>
        {info.created && (
          <>
            <dt>Created</dt>
            <dd>{new Date(info.created).toISOString().replace('T', ' ').slice(0, 19)} UTC</dd>
          </>
        )}
        {info.platform && (
          <>
            <dt>Platform</dt>
            <dd>{platformName(info.platform)}</dd>
          </>
        )}
        {info.artifact_type && (
          <>
            <dt>Artifact type</dt>
            <dd>{info.artifact_type}</dd>
          </>
        )}
      </dl>
      {(info.platforms?.length ?? 0) > 0 && (
        <>
          <h3>Platforms</h3>
          <ul class="plain">
            {info.platforms?.map((entry) => (
              <li key={entry.digest}>
                {platformName(entry.platform)} <code title={entry.digest}>{shortDigest(entry.digest)}</code>{' '}
                <span class="muted">{formatBytes(entry.size)}</span>
              </li>
            ))}
          </ul>
        </>
      )}
      {labels.length > 0 && (
        <>
          <h3>Labels</h3>
          <dl>
            {labels.map(([key, value]) => (
              <Fragment key={key}>
                <dt>{key}</dt>
                <dd>{value}</dd>
              </Fragment>
            ))}
          </dl>
        </>
      )}
      <h3>Referrers</h3>
      {referrers.length === 0 ? (
        <p class="muted">No signatures, SBOMs or attestations refer to this manifest.</p>
      ) : (
        <ul class="plain">
          {referrers.map((referrer) => (
            <li key={referrer.digest}>
              <span class="badge">{referrerKind(referrer.artifact_type ?? referrer.media_type ?? '')}</span>{' '}
              {referrer.artifact_type ?? referrer.media_type}{' '}
              <code title={referrer.digest}>{shortDigest(referrer.digest)}</code>
              {referrer.size !== undefined && <span class="muted"> · {formatBytes(referrer.size)}</span>}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** What a referrer is, from its artifact type: cosign and notation signatures, SPDX and CycloneDX SBOMs, in-toto. */
function referrerKind(type: string): string {
  if (/sig|signature|notary/i.test(type)) return 'signature';
  if (/spdx|cyclonedx|sbom|syft/i.test(type)) return 'SBOM';
  if (/in-toto|attestation|provenance|slsa/i.test(type)) return 'attestation';
  return 'artifact';
}

/** Loaded beside the repository's own record (not after it): the first page of tags is what people wait for. */
function Tags({ name, canWrite }: { name: string; canWrite: boolean }) {
  const { settings } = useAppState();
  const { params } = useLocation();
  const page = Number(params.get('page') ?? 1) || 1;
  const [open, setOpen] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const tags = useLoad(
    () => get<TagPage>(`/api/v1/repository/${repoPath(name)}/tag/${query({ page, limit: TAGS_PER_PAGE })}`),
    [name, page],
  );
  const remove = async (tag: string) => {
    if (!window.confirm(`Delete tag ${tag} of ${name}?`)) return;
    try {
      await call('DELETE', `/api/v1/repository/${repoPath(name)}/tag/${encodeURIComponent(tag)}`);
      setMessage(`Tag ${tag} deleted.`);
      tags.reload();
    } catch (error) {
      setMessage((error as Error).message);
    }
  };
  const host = settings?.registryHost ?? '';
  if (tags.loading && !tags.data) return <Loading what="tags" />;
  if (tags.error) return <Failure error={tags.error} />;
  const list = tags.data?.tags ?? [];
  return (
    <section aria-labelledby="tags-heading">
      <h2 id="tags-heading">Tags{tags.data?.total !== undefined ? ` (${tags.data.total})` : ''}</h2>
      <p role="status" class="muted">
        {message}
      </p>
      {list.length === 0 && page === 1 ? (
        <EmptyState title="No tags yet">
          <p>Push the first image:</p>
          <CopyLine label="docker push" text={`docker push ${host}/${name}:latest`} />
          <CopyLine
            label="skopeo copy"
            text={`skopeo copy docker-archive:image.tar docker://${host}/${name}:latest`}
          />
        </EmptyState>
      ) : (
        <div class="table-wrap">
          <table class="tags">
            <TableHead columns={['Tag', 'Digest', 'Size', 'Age', 'Platforms']} />
            <tbody>
              {list.map((tag) => (
                <Fragment key={tag.name}>
                  <tr>
                    <th scope="row">{tag.name}</th>
                    <td>
                      <code title={tag.manifest_digest ?? ''}>{shortDigest(tag.manifest_digest)}</code>
                    </td>
                    <td>{formatBytes(tag.size)}</td>
                    <td>{age(tag.start_ts ?? tag.last_modified)}</td>
                    <td>{platforms(tag)}</td>
                    <td class="actions">
                      <button
                        type="button"
                        class="small"
                        aria-expanded={open === tag.name}
                        onClick={() => setOpen(open === tag.name ? null : tag.name)}
                      >
                        Details<span class="visually-hidden"> of {tag.name}</span>
                      </button>
                      {canWrite && (
                        <button type="button" class="small danger" onClick={() => remove(tag.name)}>
                          Delete<span class="visually-hidden"> tag {tag.name}</span>
                        </button>
                      )}
                    </td>
                  </tr>
                  {open === tag.name && (
                    <tr class="details">
                      <td colSpan={6}>
                        <TagDetails name={name} tag={tag.name} />
                      </td>
                    </tr>
                  )}
                </Fragment>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager
        page={page}
        hasNext={tags.data?.has_additional ?? false}
        onPage={(next) => navigate(`/ui/repository/${name}${query({ page: next })}`)}
        label="Tags"
      />
    </section>
  );
}

interface Grant {
  name: string;
  role: string;
  is_robot?: boolean;
}

function Permissions({ name }: { name: string }) {
  const base = `/api/v1/repository/${repoPath(name)}/permissions`;
  const users = useLoad(() => get<{ permissions: Record<string, Grant> }>(`${base}/user/`), [name]);
  const teams = useLoad(() => get<{ permissions: Record<string, Grant> }>(`${base}/team/`), [name]);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const change = async (kind: 'user' | 'team', who: string, role: string | null) => {
    setError(null);
    try {
      if (role) await call('PUT', `${base}/${kind}/${encodeURIComponent(who)}`, { role });
      else await call('DELETE', `${base}/${kind}/${encodeURIComponent(who)}`);
      setStatus(role ? `${who} now has ${role}.` : `${who} removed.`);
      users.reload();
      teams.reload();
    } catch (failure) {
      setError((failure as Error).message);
    }
  };
  const add = (event: SubmitEvent) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    void change(
      form.get('kind') as 'user' | 'team',
      String(form.get('who') ?? '').trim(),
      String(form.get('role')),
    );
  };
  const rows = [
    ...Object.values(users.data?.permissions ?? {}).map((grant) => ({ ...grant, kind: 'user' as const })),
    ...Object.values(teams.data?.permissions ?? {}).map((grant) => ({ ...grant, kind: 'team' as const })),
  ];
  return (
    <section aria-labelledby="permissions-heading">
      <h2 id="permissions-heading">Permissions</h2>
      <p class="muted">
        The owner of the namespace is an admin of every repository in it. Give others <em>read</em> (pull),{' '}
        <em>write</em> (push, delete tags) or <em>admin</em> (permissions, visibility).
      </p>
      {rows.length === 0 ? (
        <p class="muted">Nobody else has a role here yet.</p>
      ) : (
        <table>
          <TableHead columns={['Who', 'Kind', 'Role']} />
          <tbody>
            {rows.map((row) => (
              <tr key={`${row.kind}:${row.name}`}>
                <th scope="row">{row.name}</th>
                <td>{row.kind === 'team' ? 'group' : row.is_robot ? 'robot' : 'user'}</td>
                <td>
                  <label class="visually-hidden" for={`role-${row.kind}-${row.name}`}>
                    Role of {row.name}
                  </label>
                  <select
                    id={`role-${row.kind}-${row.name}`}
                    value={row.role}
                    onChange={(event) =>
                      change(row.kind, row.name, (event.currentTarget as HTMLSelectElement).value)
                    }
                  >
                    <option value="read">read</option>
                    <option value="write">write</option>
                    <option value="admin">admin</option>
                  </select>
                </td>
                <td>
                  <button type="button" class="small danger" onClick={() => change(row.kind, row.name, null)}>
                    Remove<span class="visually-hidden"> {row.name}</span>
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="inline-form" onSubmit={add} aria-label="Add a permission">
        <label for="grant-kind">Kind</label>
        <select id="grant-kind" name="kind">
          <option value="user">user or robot</option>
          <option value="team">group</option>
        </select>
        <label for="grant-who">Name</label>
        <input id="grant-who" name="who" required placeholder="alice, team+robot, developers" />
        <label for="grant-role">Role</label>
        <select id="grant-role" name="role">
          <option value="read">read</option>
          <option value="write">write</option>
          <option value="admin">admin</option>
        </select>
        <button type="submit">Add</button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <p role="status" class="muted">
        {status}
      </p>
    </section>
  );
}

function Settings({
  name,
  repository,
  onChange,
}: {
  name: string;
  repository: RepositorySummary;
  onChange: () => void;
}) {
  const [error, setError] = useState<string | null>(null);
  const save = async (event: SubmitEvent) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    try {
      await call('PUT', `/api/v1/repository/${repoPath(name)}`, {
        description: String(form.get('description') ?? ''),
      });
      const visibility = form.get('visibility');
      if (repository.can_admin && visibility && (visibility === 'public') !== repository.is_public)
        await call('POST', `/api/v1/repository/${repoPath(name)}/changevisibility`, { visibility });
      onChange();
    } catch (failure) {
      setError((failure as Error).message);
    }
  };
  return (
    <section aria-labelledby="settings-heading">
      <h2 id="settings-heading">Settings</h2>
      <form class="stack" onSubmit={save}>
        <label for="description">Description</label>
        <textarea
          id="description"
          name="description"
          rows={3}
          maxLength={4096}
          defaultValue={repository.description}
        />
        {repository.can_admin && (
          <fieldset>
            <legend>Visibility</legend>
            <label>
              <input type="radio" name="visibility" value="public" defaultChecked={repository.is_public} />{' '}
              public: anyone signed in may pull
            </label>
            <label>
              <input type="radio" name="visibility" value="private" defaultChecked={!repository.is_public} />{' '}
              private: only people with a role
            </label>
          </fieldset>
        )}
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit">Save</button>
      </form>
    </section>
  );
}

/** The tag the page's pull lines name: `latest` when there is one, else the newest; null for none. */
async function tagToPull(name: string): Promise<string | null> {
  const base = `/api/v1/repository/${repoPath(name)}/tag/`;
  const latest = await get<TagPage>(`${base}${query({ specificTag: 'latest', limit: 1 })}`);
  if (latest.tags.length > 0) return 'latest';
  return (await get<TagPage>(`${base}${query({ limit: 1 })}`)).tags[0]?.name ?? null;
}

export function RepositoryPage({ name }: { name: string }) {
  const { settings, me } = useAppState();
  const { params } = useLocation();
  const tab = params.get('tab') ?? 'tags';
  const repository = useLoad(
    () => get<RepositorySummary>(`/api/v1/repository/${repoPath(name)}`),
    [name, me?.username],
  );
  const pullTag = useLoad(() => tagToPull(name), [name, me?.username]);
  if (repository.error)
    return (
      <>
        <h1>{name}</h1>
        <Failure error={repository.error} />
        {!me && (
          <p>
            Private repositories need you to <a href={`/ui/signin?next=/ui/repository/${name}`}>sign in</a>.
          </p>
        )}
      </>
    );
  // One tree whether or not the record has arrived, so the tags (loaded meanwhile) stay mounted.
  const info = repository.data;
  const host = settings?.registryHost ?? '';
  const short = name.slice(name.indexOf('/') + 1);
  // Over plain HTTP skopeo must be told (docker needs the host in its insecure-registries).
  const insecure = settings?.baseUrl.startsWith('http:') ?? false;
  const tabs = [
    ['tags', 'Tags'],
    ...(info?.can_admin ? [['permissions', 'Permissions']] : []),
    ...(info?.can_write ? [['settings', 'Settings']] : []),
  ];
  return (
    <>
      <div class="title-row">
        <h1>
          <a href={`/ui/namespace/${encodeURIComponent(name.split('/')[0] as string)}`}>
            {name.split('/')[0]}
          </a>
          /{short}
        </h1>
        {info && (
          <span class={`badge ${info.is_public ? 'public' : 'private'}`}>
            {info.is_public ? 'public' : 'private'}
          </span>
        )}
      </div>
      {info?.description ? (
        <p class="lead">{info.description}</p>
      ) : (
        <p class="muted">{info ? 'No description.' : ''}</p>
      )}
      {pullTag.data && (
        <>
          <CopyLine label="docker pull" text={`docker pull ${host}/${name}:${pullTag.data}`} />
          <CopyLine
            label="skopeo copy"
            text={`skopeo copy${insecure ? ' --src-tls-verify=false' : ''} docker://${host}/${name}:${pullTag.data} oci:${short.split('/').pop()}:${pullTag.data}`}
          />
        </>
      )}
      <nav class="tabs" aria-label="Repository sections">
        {tabs.map(([id, label]) => (
          <a
            key={id}
            href={`/ui/repository/${name}${id === 'tags' ? '' : `?tab=${id}`}`}
            aria-current={tab === id ? 'page' : undefined}
          >
            {label}
          </a>
        ))}
      </nav>
      {tab === 'tags' && <Tags name={name} canWrite={info?.can_write ?? false} />}
      {tab === 'permissions' && info?.can_admin && <Permissions name={name} />}
      {tab === 'settings' && info?.can_write && (
        <Settings name={name} repository={info} onChange={repository.reload} />
      )}
    </>
  );
}
