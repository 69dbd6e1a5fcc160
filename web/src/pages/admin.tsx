import { useState } from 'preact/hooks';
import { call, get } from '../api.ts';
import { useAppState } from '../state.ts';
import type { RepositorySummary } from '../types.ts';
import { EmptyState, Failure, Loading, Pager, TableHead, useLoad } from '../ui.tsx';
import { AccountSessionMissing, SignInFirst } from './tokens.tsx';

interface User {
  username: string;
  admin: boolean;
  disabled: boolean;
  hasPassword: boolean;
  tokens: unknown[];
}
interface Group {
  name: string;
  users: string[];
  subgroups: string[];
}
interface Service {
  name: string;
  permissions: string[];
  source?: string;
}

const USERS_PER_PAGE = 50;

function useAction(after: () => void) {
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const run = async (done: string, action: () => Promise<unknown>) => {
    setError(null);
    try {
      await action();
      setStatus(done);
      after();
    } catch (failure) {
      setError((failure as Error).message);
    }
  };
  const messages = (
    <>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <p class="muted" role="status">
        {status}
      </p>
    </>
  );
  return { run, messages };
}

function Users() {
  const [page, setPage] = useState(1);
  const users = useLoad(async () => {
    const names = (await get<{ users: string[] }>('/auth/api/v1/users')).users.sort();
    const shown = names.slice((page - 1) * USERS_PER_PAGE, page * USERS_PER_PAGE);
    const details = await Promise.all(
      shown.map((name) => get<User>(`/auth/api/v1/users/${encodeURIComponent(name)}`)),
    );
    return { total: names.length, details };
  }, [page]);
  const { run, messages } = useAction(users.reload);
  const create = (event: SubmitEvent) => {
    event.preventDefault();
    const element = event.currentTarget as HTMLFormElement;
    const form = new FormData(element);
    const username = String(form.get('username') ?? '');
    const password = String(form.get('password') ?? '');
    void run(`User ${username} created.`, async () => {
      await call('POST', '/auth/api/v1/users', {
        username,
        ...(password ? { password } : {}),
        admin: form.get('admin') === 'on',
      });
      element.reset();
    });
  };
  const patch = (user: User, change: Partial<User>, done: string) =>
    run(done, () => call('PATCH', `/auth/api/v1/users/${encodeURIComponent(user.username)}`, change));
  return (
    <section aria-labelledby="users-heading">
      <h2 id="users-heading">Users</h2>
      <form class="inline-form" onSubmit={create} aria-label="New user">
        <label for="new-username">User name</label>
        <input id="new-username" name="username" required autocomplete="off" />
        <label for="new-password">Password (empty: OpenID only)</label>
        <input id="new-password" name="password" type="password" autocomplete="new-password" />
        <label class="check">
          <input type="checkbox" name="admin" /> administrator
        </label>
        <button type="submit">Create user</button>
      </form>
      {messages}
      {users.loading && <Loading what="users" />}
      {users.error && <Failure error={users.error} />}
      {users.data && (
        <div class="table-wrap">
          <table>
            <TableHead columns={['User', 'Sign-in', 'Tokens', 'State']} />
            <tbody>
              {users.data.details.map((user) => (
                <tr key={user.username}>
                  <th scope="row">
                    {user.username} {user.admin && <span class="badge">admin</span>}
                  </th>
                  <td>{user.hasPassword ? 'password' : 'OpenID only'}</td>
                  <td>{user.tokens.length}</td>
                  <td>{user.disabled ? <span class="badge yanked">disabled</span> : 'active'}</td>
                  <td class="actions">
                    <button
                      type="button"
                      class="small"
                      onClick={() =>
                        patch(
                          user,
                          { disabled: !user.disabled },
                          `${user.username} ${user.disabled ? 'enabled' : 'disabled'}.`,
                        )
                      }
                    >
                      {user.disabled ? 'Enable' : 'Disable'}
                      <span class="visually-hidden"> {user.username}</span>
                    </button>
                    <button
                      type="button"
                      class="small"
                      onClick={() => patch(user, { admin: !user.admin }, `${user.username} updated.`)}
                    >
                      {user.admin ? 'Remove admin' : 'Make admin'}
                      <span class="visually-hidden"> {user.username}</span>
                    </button>
                    <button
                      type="button"
                      class="small danger"
                      onClick={() =>
                        window.confirm(`Delete user ${user.username}?`) &&
                        run(`${user.username} deleted.`, () =>
                          call('DELETE', `/auth/api/v1/users/${encodeURIComponent(user.username)}`),
                        )
                      }
                    >
                      Delete<span class="visually-hidden"> {user.username}</span>
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {users.data && (
        <Pager
          page={page}
          hasNext={page * USERS_PER_PAGE < users.data.total}
          onPage={setPage}
          label="Users"
        />
      )}
    </section>
  );
}

function Groups() {
  const groups = useLoad(() => get<{ groups: Group[] }>('/auth/api/v1/groups'), []);
  const { run, messages } = useAction(groups.reload);
  const create = (event: SubmitEvent) => {
    event.preventDefault();
    const element = event.currentTarget as HTMLFormElement;
    const name = String(new FormData(element).get('name') ?? '');
    void run(`Group ${name} created.`, async () => {
      await call('POST', '/auth/api/v1/groups', { name });
      element.reset();
    });
  };
  const addMember = (group: string) => (event: SubmitEvent) => {
    event.preventDefault();
    const element = event.currentTarget as HTMLFormElement;
    const user = String(new FormData(element).get('user') ?? '');
    void run(`${user} added to ${group}.`, async () => {
      await call('PUT', `/auth/api/v1/groups/${encodeURIComponent(group)}/users/${encodeURIComponent(user)}`);
      element.reset();
    });
  };
  const list = groups.data?.groups ?? [];
  return (
    <section aria-labelledby="groups-heading">
      <h2 id="groups-heading">Groups</h2>
      <p class="muted">
        Members of a group own its namespace (repositories, robots) and act for it on crates owned by{' '}
        <code>group:NAME</code>.
      </p>
      <form class="inline-form" onSubmit={create} aria-label="New group">
        <label for="new-group">Group name</label>
        <input id="new-group" name="name" required />
        <button type="submit">Create group</button>
      </form>
      {messages}
      {groups.loading && <Loading what="groups" />}
      {groups.error && <Failure error={groups.error} />}
      {!groups.loading && list.length === 0 && (
        <EmptyState title="No groups yet">
          <p>Create a group for each team, add its people, then give the group roles on repositories.</p>
        </EmptyState>
      )}
      {list.map((group) => (
        <article class="card" key={group.name} aria-labelledby={`group-${group.name}`}>
          <h3 id={`group-${group.name}`}>{group.name}</h3>
          <ul class="chips">
            {group.users.map((user) => (
              <li key={user}>
                {user}{' '}
                <button
                  type="button"
                  class="small link"
                  onClick={() =>
                    run(`${user} removed from ${group.name}.`, () =>
                      call(
                        'DELETE',
                        `/auth/api/v1/groups/${encodeURIComponent(group.name)}/users/${encodeURIComponent(user)}`,
                      ),
                    )
                  }
                >
                  remove
                  <span class="visually-hidden">
                    {' '}
                    {user} from {group.name}
                  </span>
                </button>
              </li>
            ))}
            {group.users.length === 0 && <li class="muted">no members</li>}
          </ul>
          <form
            class="inline-form"
            onSubmit={addMember(group.name)}
            aria-label={`Add a member to ${group.name}`}
          >
            <label for={`member-${group.name}`}>Add user</label>
            <input id={`member-${group.name}`} name="user" required />
            <button type="submit">Add</button>
            <button
              type="button"
              class="danger"
              onClick={() =>
                window.confirm(`Delete group ${group.name}?`) &&
                run(`Group ${group.name} deleted.`, () =>
                  call('DELETE', `/auth/api/v1/groups/${encodeURIComponent(group.name)}`),
                )
              }
            >
              Delete group<span class="visually-hidden"> {group.name}</span>
            </button>
          </form>
        </article>
      ))}
    </section>
  );
}

function Services() {
  const services = useLoad(() => get<{ services: Service[] }>('/auth/api/v1/services'), []);
  const [password, setPassword] = useState<string | null>(null);
  const { run, messages } = useAction(services.reload);
  const save = (event: SubmitEvent) => {
    event.preventDefault();
    const element = event.currentTarget as HTMLFormElement;
    const form = new FormData(element);
    const name = String(form.get('name') ?? '');
    const permissions = String(form.get('permissions') ?? '')
      .split(/[\s,]+/)
      .filter(Boolean);
    void run(`Service ${name} saved.`, async () => {
      const answer = await call<{ password?: string }>(
        'PUT',
        `/auth/api/v1/services/${encodeURIComponent(name)}`,
        {
          permissions,
        },
      );
      setPassword(answer.password ? `${name}: ${answer.password}` : null);
      element.reset();
    });
  };
  const list = services.data?.services ?? [];
  return (
    <section aria-labelledby="services-heading">
      <h2 id="services-heading">RestAuth services</h2>
      <p class="muted">Services are other programs that check wharf accounts over the RestAuth API.</p>
      <form class="inline-form" onSubmit={save} aria-label="New service">
        <label for="service-name">Name</label>
        <input id="service-name" name="name" required />
        <label for="service-permissions">Permissions</label>
        <input
          id="service-permissions"
          name="permissions"
          placeholder="users_list, user_verify_password"
          required
        />
        <button type="submit">Save service</button>
      </form>
      {password && (
        <p class="created" role="status">
          Generated password (shown once): <code>{password}</code>
        </p>
      )}
      {messages}
      {services.loading && <Loading what="services" />}
      {services.error && <Failure error={services.error} />}
      {list.length === 0 && !services.loading && <p class="muted">No services.</p>}
      {list.length > 0 && (
        <table>
          <TableHead columns={['Service', 'Permissions']} />
          <tbody>
            {list.map((service) => (
              <tr key={service.name}>
                <th scope="row">{service.name}</th>
                <td>{service.permissions.join(', ')}</td>
                <td>
                  {service.source === 'config' ? (
                    <span class="muted">from the configuration</span>
                  ) : (
                    <button
                      type="button"
                      class="small danger"
                      onClick={() =>
                        run(`Service ${service.name} deleted.`, () =>
                          call('DELETE', `/auth/api/v1/services/${encodeURIComponent(service.name)}`),
                        )
                      }
                    >
                      Delete<span class="visually-hidden"> {service.name}</span>
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** What a registry superuser (`registry.superusers`) may use: every repository, and its permissions. */
function RegistrySuperuser() {
  const all = useLoad(
    () => get<{ repositories: RepositorySummary[] }>('/api/v1/superuser/repositories/'),
    [],
  );
  const list = all.data?.repositories ?? [];
  return (
    <section aria-labelledby="superuser-heading">
      <h2 id="superuser-heading">Registry superuser</h2>
      <p>
        You are a superuser of this registry: you can read, push to and manage every repository, and give
        people roles on each under its Permissions tab.
      </p>
      {all.loading && <Loading what="repositories" />}
      {all.error && <Failure error={all.error} />}
      {!all.loading && !all.error && list.length === 0 && <p class="muted">There are no repositories yet.</p>}
      {list.length > 0 && (
        <ul class="plain">
          {list.map((repository) => (
            <li key={`${repository.namespace}/${repository.name}`}>
              <a href={`/ui/repository/${repository.namespace}/${repository.name}`}>
                {repository.namespace}/{repository.name}
              </a>{' '}
              <span class="muted">{repository.is_public ? 'public' : 'private'}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function AdminPage({ section }: { section: string }) {
  const { me, account } = useAppState();
  if (!me) return <SignInFirst what="users, groups and services" />;
  if (!account) return <AccountSessionMissing />;
  if (!account.admin)
    return (
      <>
        <h1>Administration</h1>
        <p>Only administrators of the AuthService manage users, groups and services.</p>
        {me.super_user && <RegistrySuperuser />}
      </>
    );
  const tabs = [
    ['users', 'Users'],
    ['groups', 'Groups'],
    ['services', 'Services'],
  ];
  return (
    <>
      <h1>Administration</h1>
      <nav class="tabs" aria-label="Administration sections">
        {tabs.map(([id, label]) => (
          <a key={id} href={`/ui/admin/${id}`} aria-current={section === id ? 'page' : undefined}>
            {label}
          </a>
        ))}
      </nav>
      {section === 'users' && <Users />}
      {section === 'groups' && <Groups />}
      {section === 'services' && <Services />}
    </>
  );
}
