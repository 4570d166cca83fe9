import { useState } from 'preact/hooks';
import { api } from '../api/client.js';
import type { Role } from '../api/types.js';
import { ErrorBox, Field, Loaded, Table, Title } from '../ui/components.js';
import { when } from '../ui/format.js';
import { useAsync } from '../ui/hooks.js';

const ROLES: Role[] = ['viewer', 'restore-operator', 'operator', 'admin'];

function RoleSelect({ id, value, onChange }: { id: string; value: Role; onChange: (r: Role) => void }) {
  return (
    <select id={id} value={value} onChange={(e) => onChange(e.currentTarget.value as Role)}>
      {ROLES.map((r) => (
        <option key={r} value={r}>
          {r}
        </option>
      ))}
    </select>
  );
}

/** Users (log in with a password) and API tokens (for scripts): create, delete, revoke. Admins only. */
export function UsersPage() {
  return (
    <>
      <Title>Users and API tokens</Title>
      <Users />
      <Tokens />
    </>
  );
}

function Users() {
  const list = useAsync(() => api('get /api/v1/users'), []);
  const [error, setError] = useState<Error | undefined>();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [confirm, setConfirm] = useState<string | undefined>();
  const add = async (e: Event) => {
    e.preventDefault();
    if (password.length < 8) return setError(new Error('the password needs 8 characters at least'));
    try {
      await api('post /api/v1/users', { body: { username, password, role } });
      setUsername('');
      setPassword('');
      setError(undefined);
      list.reload();
    } catch (x) {
      setError(x as Error);
    }
  };
  return (
    <section aria-labelledby="users-title">
      <h3 id="users-title">Users</h3>
      <Loaded state={list}>
        {(r) => (
          <Table id="users-table" caption="users" head={['User', 'Role', 'Created', '']}>
            {r.items.map((u) => (
              <tr key={u.username} data-user={u.username}>
                <td>{u.username}</td>
                <td>{u.role}</td>
                <td>{when(u.createdAt)}</td>
                <td>
                  {confirm === u.username ? (
                    <button
                      type="button"
                      class="danger confirm-delete"
                      onClick={() =>
                        api('delete /api/v1/users/{id}', { path: { id: u.username } }).then(list.reload, setError)
                      }
                    >
                      Really delete {u.username}?
                    </button>
                  ) : (
                    <button type="button" class="secondary delete" onClick={() => setConfirm(u.username)}>
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </Table>
        )}
      </Loaded>
      <form class="stack row-form" id="user-form" onSubmit={add}>
        <Field id="new-username" label="User name">
          <input id="new-username" required value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
        </Field>
        <Field id="new-password" label="Password (8 characters at least)">
          <input
            id="new-password"
            type="password"
            autocomplete="new-password"
            required
            minLength={8}
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </Field>
        <Field id="new-role" label="Role">
          <RoleSelect id="new-role" value={role} onChange={setRole} />
        </Field>
        <button type="submit">Add user</button>
      </form>
      <ErrorBox error={error} />
    </section>
  );
}

function Tokens() {
  const list = useAsync(() => api('get /api/v1/tokens'), []);
  const [error, setError] = useState<Error | undefined>();
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [days, setDays] = useState('');
  const [secret, setSecret] = useState<string | undefined>();
  const add = async (e: Event) => {
    e.preventDefault();
    try {
      const t = await api('post /api/v1/tokens', {
        body: { name, role, ...(days ? { expiresInDays: Number(days) } : {}) },
      });
      setSecret(t.token);
      setName('');
      setError(undefined);
      list.reload();
    } catch (x) {
      setError(x as Error);
    }
  };
  return (
    <section aria-labelledby="tokens-title">
      <h3 id="tokens-title">API tokens</h3>
      <Loaded state={list}>
        {(r) => (
          <Table
            id="tokens-table"
            caption="API tokens"
            head={['Name', 'Role', 'Created', 'By', 'Expires', 'Last used', '']}
          >
            {r.items.map((t) => (
              <tr key={t.id} data-token={t.name}>
                <td>
                  {t.name} <span class="muted mono">{t.id}</span>
                </td>
                <td>{t.role}</td>
                <td>{when(t.createdAt)}</td>
                <td>{t.createdBy}</td>
                <td>{t.expiresAt ? when(t.expiresAt) : 'never'}</td>
                <td>{when(t.lastUsedAt)}</td>
                <td>
                  <button
                    type="button"
                    class="secondary revoke"
                    onClick={() =>
                      api('delete /api/v1/tokens/{id}', { path: { id: t.id } }).then(list.reload, setError)
                    }
                  >
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </Table>
        )}
      </Loaded>
      <form class="stack row-form" id="token-form" onSubmit={add}>
        <Field id="token-name" label="Name">
          <input id="token-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field id="token-role" label="Role">
          <RoleSelect id="token-role" value={role} onChange={setRole} />
        </Field>
        <Field id="token-days" label="Expires in days (empty: never)">
          <input
            id="token-days"
            type="number"
            min="1"
            max="3650"
            value={days}
            onInput={(e) => setDays(e.currentTarget.value)}
          />
        </Field>
        <button type="submit">Create token</button>
      </form>
      {secret ? (
        <p class="secret" role="status">
          New token (shown once, copy it now): <code id="new-token">{secret}</code>
        </p>
      ) : null}
      <ErrorBox error={error} />
    </section>
  );
}
