import { useState } from 'preact/hooks';
import { api, session } from '../api/client.js';
import type { Me } from '../api/types.js';
import { ErrorBox } from '../ui/components.js';

/** User and password, or an API token. No menu before login (the app shows only this page). */
export function LoginPage({ onLogin }: { onLogin: (me: Me) => void }) {
  const [error, setError] = useState<Error | undefined>();
  const [busy, setBusy] = useState(false);
  const useToken = async (t: string) => {
    session.set(t);
    try {
      onLogin(await api('get /api/v1/me'));
    } catch {
      session.set(null);
      throw new Error('that token or password was not accepted');
    }
  };
  const submit = (f: (form: HTMLFormElement) => Promise<void>) => async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    setBusy(true);
    setError(undefined);
    try {
      await f(form);
    } catch (x) {
      setError(x as Error);
    } finally {
      setBusy(false);
    }
  };
  const value = (form: HTMLFormElement, name: string) => (form.elements.namedItem(name) as HTMLInputElement).value;
  return (
    <>
      <div class="row login-forms">
        <form
          class="login"
          id="login-user"
          aria-labelledby="login-user-title"
          onSubmit={submit(async (form) => {
            const r = await api('post /api/v1/auth/login', {
              body: { username: value(form, 'username'), password: value(form, 'password') },
            });
            await useToken(r.token);
          })}
        >
          <h2 id="login-user-title">Log in</h2>
          <label for="username">User name</label>
          <input id="username" name="username" autocomplete="username" required />
          <label for="password">Password</label>
          <input id="password" name="password" type="password" autocomplete="current-password" required />
          <p>
            <button type="submit" disabled={busy}>
              Log in
            </button>
          </p>
        </form>
        <form
          class="login"
          id="login-token"
          aria-labelledby="login-token-title"
          onSubmit={submit((form) => useToken(value(form, 'token').trim()))}
        >
          <h2 id="login-token-title">Or use an API token</h2>
          <label for="token">Token</label>
          <input id="token" name="token" type="password" autocomplete="off" required />
          <p>
            <button type="submit" disabled={busy}>
              Use token
            </button>
          </p>
        </form>
      </div>
      <ErrorBox error={error} />
    </>
  );
}
