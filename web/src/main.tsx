import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, session } from './api/client.js';
import type { Me } from './api/types.js';
import { AuditPage } from './pages/audit.js';
import { DashboardPage } from './pages/dashboard.js';
import { FilesPage } from './pages/files.js';
import { JobPage } from './pages/job.js';
import { JobsPage } from './pages/jobs.js';
import { LoginPage } from './pages/login.js';
import { PoliciesPage } from './pages/policies.js';
import { PolicyFormPage } from './pages/policy-form.js';
import { ProxiesPage } from './pages/proxies.js';
import { RepositoriesPage } from './pages/repositories.js';
import { RestorePointsPage } from './pages/restore-points.js';
import { RestoreWizard } from './pages/restore-wizard.js';
import { UsersPage } from './pages/users.js';
import { VmsPage } from './pages/vms.js';
import { MeContext } from './ui/hooks.js';
import { go, type Route, useRoute } from './ui/router.js';

const MENU: [string, string, ((me: Me) => boolean)?][] = [
  ['/dashboard', 'Dashboard'],
  ['/vms', 'VMs'],
  ['/restore-points', 'Restore points'],
  ['/jobs', 'Jobs'],
  ['/policies', 'Policies'],
  ['/repositories', 'Repositories'],
  ['/proxies', 'Proxies'],
  ['/users', 'Users & tokens', (me) => me.role === 'admin'],
  ['/audit', 'Audit log', (me) => me.role === 'admin'],
];

function Page({ route }: { route: Route }) {
  const { path, params } = route;
  const job = /^\/jobs\/(\d+)$/.exec(path);
  if (job) return <JobPage id={Number(job[1])} />;
  switch (path) {
    case '/vms':
      return <VmsPage />;
    case '/restore-points':
      return <RestorePointsPage params={params} />;
    case '/restore':
      return <RestoreWizard params={params} />;
    case '/files':
      return <FilesPage params={params} />;
    case '/jobs':
      return <JobsPage params={params} />;
    case '/policies':
      return <PoliciesPage />;
    case '/policies/edit':
      return <PolicyFormPage id={params.get('id')} />;
    case '/repositories':
      return <RepositoriesPage />;
    case '/proxies':
      return <ProxiesPage />;
    case '/users':
      return <UsersPage />;
    case '/audit':
      return <AuditPage params={params} />;
    default:
      return <DashboardPage />;
  }
}

function TopBar({ me, path, onLogout }: { me: Me; path: string; onLogout: () => void }) {
  const [open, setOpen] = useState(false);
  useEffect(() => setOpen(false), [path]);
  return (
    <header>
      <h1>
        <a href="#/dashboard">Coffer</a>
      </h1>
      <button
        type="button"
        class="menu-toggle secondary"
        aria-expanded={open}
        aria-controls="nav"
        onClick={() => setOpen(!open)}
      >
        Menu
      </button>
      <nav id="nav" aria-label="main" class={open ? 'open' : ''}>
        {MENU.filter(([, , allowed]) => !allowed || allowed(me)).map(([to, label]) => (
          <a
            key={to}
            href={`#${to}`}
            class={path.startsWith(to) ? 'active' : ''}
            aria-current={path.startsWith(to) ? 'page' : undefined}
          >
            {label}
          </a>
        ))}
        <span id="who">
          {me.actor} ({me.role})
        </span>
        <button id="logout" type="button" class="secondary" onClick={onLogout}>
          Log out
        </button>
      </nav>
    </header>
  );
}

function App() {
  const route = useRoute();
  const [me, setMe] = useState<Me | null>(null);
  const [checked, setChecked] = useState(false);

  const logout = () => {
    // revoke the session on the server (not just forget it here); the answer does not matter
    const t = session.token;
    if (t) fetch('/api/v1/auth/logout', { method: 'POST', headers: { authorization: `Bearer ${t}` } }).catch(() => {});
    session.set(null);
    setMe(null);
    go('/login');
  };
  useEffect(() => {
    session.onExpired(() => {
      session.set(null);
      setMe(null);
    });
    if (!session.token) return setChecked(true);
    api('get /api/v1/me')
      .then(setMe, () => session.set(null))
      .finally(() => setChecked(true));
  }, []);

  if (!checked) return <p class="muted">Loading…</p>;
  if (!me)
    return (
      <>
        <header>
          <h1>Coffer</h1>
        </header>
        <main id="main">
          <LoginPage
            onLogin={(m) => {
              setMe(m);
              if (route.path === '/login') go('/dashboard');
            }}
          />
        </main>
      </>
    );
  return (
    <MeContext.Provider value={me}>
      <button type="button" class="skip" onClick={() => document.getElementById('main')?.focus()}>
        Skip to content
      </button>
      <TopBar me={me} path={route.path} onLogout={logout} />
      <main id="main" tabIndex={-1}>
        <Page key={`${route.path}?${route.params}`} route={route} />
      </main>
    </MeContext.Provider>
  );
}

render(<App />, document.getElementById('root')!);
