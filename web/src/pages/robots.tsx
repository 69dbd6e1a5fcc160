import { useState } from 'preact/hooks';
import { call, get } from '../api.ts';
import { useAppState } from '../state.ts';
import type { Robot } from '../types.ts';
import { age, CopyLine, EmptyState, Failure, Loading, TableHead, useLoad } from '../ui.tsx';
import { SignInFirst } from './tokens.tsx';

/** Robot accounts (`namespace+name`) of the user's namespace or of a group namespace it belongs to. */
export function RobotsPage() {
  const { me, settings } = useAppState();
  const [namespace, setNamespace] = useState(me?.username ?? '');
  const own = namespace === me?.username;
  const base = own ? '/api/v1/user/robots' : `/api/v1/organization/${encodeURIComponent(namespace)}/robots`;
  const robots = useLoad(
    () => (me ? get<{ robots: Robot[] }>(base) : Promise.resolve({ robots: [] })),
    [base, me?.username],
  );
  const [created, setCreated] = useState<{ name: string; token: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  if (!me) return <SignInFirst what="robot accounts" />;
  const create = async (event: SubmitEvent) => {
    event.preventDefault();
    const element = event.currentTarget as HTMLFormElement;
    const form = new FormData(element);
    setError(null);
    try {
      const answer = await call<{ name: string; token: string }>(
        'PUT',
        `${base}/${encodeURIComponent(String(form.get('name') ?? ''))}`,
        { description: String(form.get('description') ?? '') },
      );
      setCreated(answer);
      element.reset();
      robots.reload();
    } catch (failure) {
      setError((failure as Error).message);
    }
  };
  const act = async (robot: Robot, action: 'regenerate' | 'delete') => {
    const short = robot.name.slice(robot.name.indexOf('+') + 1);
    if (action === 'delete' && !window.confirm(`Delete robot ${robot.name}?`)) return;
    try {
      if (action === 'delete') await call('DELETE', `${base}/${encodeURIComponent(short)}`);
      else setCreated(await call('POST', `${base}/${encodeURIComponent(short)}/regenerate`));
      robots.reload();
    } catch (failure) {
      setError((failure as Error).message);
    }
  };
  const namespaces = [me.username, ...me.organizations.map((o) => o.name)];
  const list = robots.data?.robots ?? [];
  return (
    <>
      <h1>Robot accounts</h1>
      <p class="muted">
        Robots are accounts for machines (CI, clusters) in a namespace: give them a role on repositories, and
        they log in with <code>docker login -u namespace+name</code> and their token.
      </p>
      {namespaces.length > 1 && (
        <div class="inline-form">
          <label for="robot-namespace">Namespace</label>
          <select
            id="robot-namespace"
            value={namespace}
            onChange={(event) => setNamespace((event.currentTarget as HTMLSelectElement).value)}
          >
            {namespaces.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </div>
      )}
      {created && (
        <section class="created" aria-labelledby="robot-created">
          <h2 id="robot-created">Robot {created.name}: its token</h2>
          <p>Copy it now: it will not be shown again.</p>
          <CopyLine label="robot token" text={created.token} />
          <CopyLine
            label="docker login"
            text={`docker login ${settings?.registryHost} -u '${created.name}'`}
          />
          <button type="button" onClick={() => setCreated(null)}>
            Done
          </button>
        </section>
      )}
      <section aria-labelledby="new-robot">
        <h2 id="new-robot">New robot in {namespace}</h2>
        <form class="inline-form" onSubmit={create}>
          <label for="robot-name">Name</label>
          <input id="robot-name" name="name" required pattern="[a-z][a-z0-9_]{1,254}" placeholder="ci" />
          <label for="robot-description">Description</label>
          <input id="robot-description" name="description" maxLength={1024} />
          <button type="submit">Create robot</button>
        </form>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </section>
      <section aria-labelledby="robot-list">
        <h2 id="robot-list">Robots of {namespace}</h2>
        {robots.loading && <Loading what="robots" />}
        {robots.error && <Failure error={robots.error} />}
        {!robots.loading && list.length === 0 && (
          <EmptyState title="No robots yet">
            <p>Create one above, then give it a role on a repository (its Permissions tab).</p>
          </EmptyState>
        )}
        {list.length > 0 && (
          <table>
            <TableHead columns={['Robot', 'Description', 'Created']} />
            <tbody>
              {list.map((robot) => (
                <tr key={robot.name}>
                  <th scope="row">{robot.name}</th>
                  <td>{robot.description}</td>
                  <td>{age(robot.created)}</td>
                  <td class="actions">
                    <button type="button" class="small" onClick={() => act(robot, 'regenerate')}>
                      New token<span class="visually-hidden"> for {robot.name}</span>
                    </button>
                    <button type="button" class="small danger" onClick={() => act(robot, 'delete')}>
                      Delete<span class="visually-hidden"> {robot.name}</span>
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}
