// Coffer web console: a dependency-free single-page app over the REST API (/api/openapi.json).
// Everything is built with DOM calls (never innerHTML with data), so names from the API cannot inject markup.

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let token = sessionStorage.getItem('coffer-token');
let me = null;
let liveAbort = null;

/** h('td', {class: 'ok'}, 'text', child...) */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat())
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}
const svg = (tag, attrs = {}, ...children) => {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
};

function bytes(n) {
  if (n === null || n === undefined) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}
const when = (s) => (s ? new Date(s).toLocaleString() : '-');
const ago = (sec) =>
  sec === null || sec === undefined
    ? '-'
    : sec < 120
      ? `${sec} s ago`
      : sec < 7200
        ? `${Math.round(sec / 60)} min ago`
        : sec < 172800
          ? `${Math.round(sec / 3600)} h ago`
          : `${Math.round(sec / 86400)} d ago`;
const statusClass = (s) =>
  s === 'succeeded' ? 'ok' : s === 'failed' ? 'bad' : s === 'cancelled' || s === 'retrying' ? 'warn' : 'muted';
/** a job that has ended: nothing to cancel any more */
const FINISHED = ['succeeded', 'failed', 'cancelled'];
/** a job's failure in one line: `CODE: message` */
const failureText = (e) => (e ? `${e.code}: ${e.message}` : '');

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const data = await r.json().catch(() => ({}));
  if (r.status === 401 && path !== '/api/v1/auth/login') {
    logout();
    throw new Error('session expired: please log in again');
  }
  if (!r.ok) throw new Error(data.error ? `${data.error.code}: ${data.error.message}` : `HTTP ${r.status}`);
  return data;
}

function show(...nodes) {
  if (liveAbort) {
    liveAbort.abort();
    liveAbort = null;
  }
  main.replaceChildren(...nodes);
}
const errorBox = (e) => h('p', { class: 'error', role: 'alert' }, e.message ?? String(e));

function logout() {
  // revoke the session on the server (not just forget it here); the answer does not matter
  if (token)
    fetch('/api/v1/auth/logout', { method: 'POST', headers: { authorization: `Bearer ${token}` } }).catch(() => {});
  token = null;
  me = null;
  sessionStorage.removeItem('coffer-token');
  nav.hidden = true;
  location.hash = '#/login';
  route();
}

// ---- login

function loginView() {
  nav.hidden = true;
  const err = h('div');
  const userForm = h(
    'form',
    {
      class: 'login',
      id: 'login-user',
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          const r = await api('POST', '/api/v1/auth/login', {
            username: userForm.username.value,
            password: userForm.password.value,
          });
          await loggedIn(r.token);
        } catch (e) {
          err.replaceChildren(errorBox(e));
        }
      },
    },
    h('h2', {}, 'Log in'),
    h('label', { for: 'username' }, 'User name'),
    h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true }),
    h('label', { for: 'password' }, 'Password'),
    h('input', {
      id: 'password',
      name: 'password',
      type: 'password',
      autocomplete: 'current-password',
      required: true,
    }),
    h('p', {}, h('button', { type: 'submit' }, 'Log in')),
  );
  const tokenForm = h(
    'form',
    {
      class: 'login',
      id: 'login-token',
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await loggedIn(tokenForm.token.value.trim());
        } catch (e) {
          err.replaceChildren(errorBox(e));
        }
      },
    },
    h('h2', {}, 'Or use an API token'),
    h('label', { for: 'token' }, 'Token'),
    h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true }),
    h('p', {}, h('button', { type: 'submit' }, 'Use token')),
  );
  show(h('div', { class: 'row' }, userForm, tokenForm), err);
}

async function loggedIn(t) {
  token = t;
  try {
    me = await api('GET', '/api/v1/me');
  } catch (_e) {
    token = null;
    throw new Error('that token or password was not accepted');
  }
  sessionStorage.setItem('coffer-token', t);
  location.hash = '#/dashboard';
  route();
}

// ---- dashboard

function trendChart(trend) {
  const days = [];
  for (let i = 13; i >= 0; i--) days.push(new Date(Date.now() - i * 86400000).toISOString().slice(0, 10));
  const by = Object.fromEntries(trend.map((t) => [t.day, t]));
  const W = 560,
    H = 160,
    pad = 30,
    bw = (W - pad * 2) / days.length;
  const max = Math.max(1, ...days.map((d) => by[d]?.bytesStored ?? 0));
  const bars = days.map((d, i) => {
    const v = by[d]?.bytesStored ?? 0;
    const bh = (v / max) * (H - pad * 2);
    return svg(
      'rect',
      {
        class: 'bar',
        x: pad + i * bw + 2,
        y: H - pad - bh,
        width: bw - 4,
        height: Math.max(bh, v ? 1 : 0),
        'data-day': d,
      },
      svg('title', {}, `${d}: ${bytes(v)} stored, ${by[d]?.points ?? 0} restore points`),
    );
  });
  return svg(
    'svg',
    {
      class: 'chart',
      id: 'trend-chart',
      viewBox: `0 0 ${W} ${H}`,
      width: W,
      height: H,
      role: 'img',
      'aria-label': 'new data stored per day, last 14 days',
    },
    svg('line', { class: 'axis', x1: pad, y1: H - pad, x2: W - pad, y2: H - pad }),
    svg('text', { x: pad, y: 14 }, `new data stored per day (max ${bytes(max)})`),
    svg('text', { x: pad, y: H - 10 }, days[0]),
    svg('text', { x: W - pad - 60, y: H - 10 }, days[days.length - 1]),
    bars,
  );
}

async function dashboardView() {
  const [d, vms] = await Promise.all([api('GET', '/api/v1/dashboard'), api('GET', '/api/v1/vms?limit=500')]);
  const stored = d.repositories.reduce((a, r) => a + r.storedBytes, 0);
  const ratios = d.repositories.filter((r) => r.dedupRatio !== null);
  const card = (label, value, cls) =>
    h('div', { class: 'card' }, h('div', { class: 'label' }, label), h('div', { class: `value ${cls ?? ''}` }, value));
  show(
    h('h2', {}, 'Dashboard'),
    h(
      'div',
      { class: 'cards' },
      card('Protected VMs', `${d.vms.protected} / ${d.vms.total}`, d.vms.unprotected ? '' : 'ok'),
      card('Unprotected VMs', `${d.vms.unprotected}`, d.vms.unprotected ? 'bad' : ''),
      card('Failing VMs', `${d.vms.failing}`, d.vms.failing ? 'bad' : ''),
      card('RPO compliant', `${d.vms.compliant}`, d.vms.breached ? '' : 'ok'),
      card('RPO breached', `${d.vms.breached}`, d.vms.breached ? 'bad' : ''),
      card('Storage used', bytes(stored)),
      card('Dedup ratio', ratios.length ? `${ratios.map((r) => r.dedupRatio.toFixed(2)).join(' / ')}×` : '-'),
    ),
    failuresPanel(d),
    trendChart(d.trend),
    h('h3', {}, 'Virtual machines'),
    vmTable(vms.items),
  );
}

/** the VMs whose newest backup failed, and failed jobs per day (the dashboard API's failures) */
function failuresPanel(d) {
  const days = (d.failures ?? []).filter((f) => f.failed > 0);
  if (!d.failingVms?.length && !days.length) return h('p', { id: 'failures', class: 'ok' }, 'No failed backups.');
  return h(
    'section',
    { id: 'failures' },
    h('h3', {}, 'Failures'),
    d.failingVms?.length
      ? h(
          'ul',
          { id: 'failing-vms' },
          d.failingVms.map((f) =>
            h(
              'li',
              { class: 'bad' },
              h('a', { href: `#/jobs/${f.job}` }, f.name),
              ` ${when(f.finishedAt)}: ${failureText(f.error)}`,
            ),
          ),
        )
      : '',
    days.length
      ? h('p', { class: 'muted', id: 'failures-by-day' }, days.map((f) => `${f.day}: ${f.failed} failed`).join(' · '))
      : '',
  );
}

function vmTable(vms) {
  return h(
    'table',
    { id: 'vm-table' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['VM', 'Protection', 'Last result', 'Newest restore point', 'RPO', ''].map((t) => h('th', {}, t)),
      ),
    ),
    h(
      'tbody',
      {},
      vms.map((v) =>
        h(
          'tr',
          { 'data-vm': v.name },
          h('td', {}, h('a', { href: `#/restore-points?vm=${encodeURIComponent(v.name)}` }, v.name)),
          h(
            'td',
            {},
            v.protected
              ? v.policies.join(', ')
              : h(
                  'span',
                  { class: 'warn' },
                  v.covered ? `unprotected: no restore point yet (${v.policies.join(', ')})` : 'unprotected',
                ),
          ),
          h(
            'td',
            { class: `last-result ${statusClass(v.lastJob?.status)}`, title: failureText(v.lastJob?.error) },
            v.lastJob ? h('a', { href: `#/jobs/${v.lastJob.id}` }, v.lastJob.status) : '-',
            v.lastJob?.error ? h('div', { class: 'muted small' }, v.lastJob.error.code) : '',
          ),
          h('td', {}, v.lastPoint ? `${when(v.lastPoint.endTime)} (${ago(v.ageSeconds)})` : '-'),
          h(
            'td',
            { class: `rpo ${v.rpoCompliant === true ? 'ok' : v.rpoCompliant === false ? 'bad' : 'muted'}` },
            v.rpoCompliant === null ? '-' : `${v.rpoCompliant ? 'compliant' : 'breached'} (${v.rpoHours} h)`,
          ),
          h(
            'td',
            {},
            v.covered && me && ['admin', 'operator'].includes(me.role)
              ? h('button', { class: 'backup-now', onclick: () => startBackup(v) }, 'Back up now')
              : '',
          ),
        ),
      ),
    ),
  );
}

async function startBackup(v) {
  try {
    const r = await api('POST', '/api/v1/jobs', { kind: 'backup', policy: v.policies[0], vm: v.name });
    location.hash = `#/jobs/${r.items[0].id}`;
  } catch (e) {
    main.prepend(errorBox(e));
  }
}

// ---- restore points

async function restorePointsView(params) {
  const vm = params.get('vm') ?? '';
  const [vms, points] = await Promise.all([
    api('GET', '/api/v1/vms?limit=500'),
    api('GET', `/api/v1/restore-points?limit=100${vm ? `&vm=${encodeURIComponent(vm)}` : ''}`),
  ]);
  const select = h(
    'select',
    {
      id: 'vm-filter',
      onchange: () =>
        (location.hash = `#/restore-points${select.value ? `?vm=${encodeURIComponent(select.value)}` : ''}`),
    },
    h('option', { value: '' }, 'all VMs'),
    vms.items.map((v) => h('option', { value: v.name, selected: v.name === vm }, v.name)),
  );
  const canRestore = me && ['admin', 'operator', 'restore-operator'].includes(me.role);
  const err = h('div');
  show(
    h('h2', {}, 'Restore points'),
    h('p', { class: 'row' }, 'VM ', select),
    err,
    h(
      'table',
      { id: 'points-table' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Time', 'VM', 'Repository', 'Mode', 'Disks', 'Verified'].map((t) => h('th', {}, t)),
        ),
      ),
      h(
        'tbody',
        {},
        points.items.map((p) =>
          h(
            'tr',
            { 'data-point': p.id },
            h('td', {}, when(p.time), h('div', { class: 'muted' }, p.id.slice(0, 12))),
            h('td', {}, p.vm),
            h('td', {}, p.repository),
            h('td', {}, p.mode),
            h(
              'td',
              {},
              p.disks.map((d) =>
                h(
                  'div',
                  { class: 'row disk' },
                  `disk ${d.index}: ${bytes(d.sizeBytes)}`,
                  h(
                    'a',
                    {
                      class: 'button secondary browse',
                      'data-disk': d.index,
                      href: filesHref({ point: p.id, repository: p.repository, disk: d.index }),
                    },
                    'Browse files',
                  ),
                  canRestore
                    ? h('button', { class: 'secondary restore', onclick: () => restoreForm(p, d, err) }, 'Restore…')
                    : '',
                ),
              ),
            ),
            h(
              'td',
              {},
              p.verification
                ? h('span', { class: p.verification.ok ? 'ok' : 'bad' }, p.verification.ok ? 'ok' : 'failed')
                : '-',
            ),
          ),
        ),
      ),
    ),
  );
}

function restoreForm(p, d, where) {
  const form = h(
    'form',
    {
      class: 'stack',
      id: 'restore-form',
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          const r = await api('POST', '/api/v1/jobs', {
            kind: 'restore',
            repository: p.repository,
            pointId: p.id,
            disk: d.index,
            target: form.elements.namedItem('target').value,
            force: form.elements.namedItem('force').checked,
          });
          location.hash = `#/jobs/${r.items[0].id}`;
        } catch (e) {
          form.append(errorBox(e));
        }
      },
    },
    h('h3', {}, `Restore disk ${d.index} of ${p.vm} (${when(p.time)})`),
    h('label', { for: 'target' }, "Target file (below the server's restore directory)"),
    h('input', {
      id: 'target',
      name: 'target',
      value: `${p.vm}-${p.id.slice(0, 8)}-disk${d.index}.raw`,
      required: true,
    }),
    h('label', {}, h('input', { type: 'checkbox', name: 'force' }), ' overwrite an existing file'),
    h('p', {}, h('button', { type: 'submit' }, 'Start restore')),
  );
  where.replaceChildren(form);
}

// ---- file browsing (guest names are untrusted: they only ever become text nodes or attribute values)

function filesHref(o) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null) q.set(k, String(v));
  return `#/files?${q}`;
}

const TYPE_CHAR = { file: '-', dir: 'd', symlink: 'l', chardev: 'c', blockdev: 'b', fifo: 'p', socket: 's' };
function modeString(type, mode) {
  const rwx = (b, special, ch) =>
    (b & 4 ? 'r' : '-') + (b & 2 ? 'w' : '-') + (special ? (b & 1 ? ch : ch.toUpperCase()) : b & 1 ? 'x' : '-');
  return (
    (TYPE_CHAR[type] ?? '?') +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't')
  );
}

async function filesView(params) {
  const point = params.get('point') ?? '';
  const repository = params.get('repository') ?? '';
  const disk = params.get('disk') ?? '0';
  const partition = params.get('partition');
  const path = params.get('path') ?? '/';
  const base = `/api/v1/restore-points/${encodeURIComponent(point)}/disks/${encodeURIComponent(disk)}/files`;
  const loc = { point, repository, disk };
  const repoQ = repository ? `&repository=${encodeURIComponent(repository)}` : '';
  const title = h('h2', {}, `Files of disk ${disk} of restore point ${point.slice(0, 12)}`);
  const back = h('p', {}, h('a', { href: '#/restore-points' }, '← restore points'));
  if (partition === null) {
    const t = await api('GET', `${base}?${repoQ.slice(1)}`);
    show(
      title,
      back,
      h(
        'p',
        { class: 'muted' },
        `${bytes(t.sizeBytes)}, ${t.scheme === 'none' ? 'no partition table' : `${t.scheme.toUpperCase()} partition table`}`,
      ),
      h(
        'table',
        { id: 'partitions-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['#', 'Start', 'Size', 'Type', 'Filesystem', 'Name / problem'].map((x) => h('th', {}, x)),
          ),
        ),
        h(
          'tbody',
          {},
          t.items.map((p) =>
            h(
              'tr',
              { 'data-partition': p.number },
              h(
                'td',
                {},
                p.filesystem && !p.problem && !p.container
                  ? h(
                      'a',
                      { class: 'open-partition', href: filesHref({ ...loc, partition: p.number, path: '/' }) },
                      `partition ${p.number}`,
                    )
                  : `partition ${p.number}`,
              ),
              h('td', {}, String(p.startBytes)),
              h('td', {}, bytes(p.sizeBytes)),
              h('td', {}, p.type),
              h('td', {}, p.filesystem ?? (p.container ? '(extended)' : '-')),
              h('td', {}, [p.name ?? '', p.problem ? h('span', { class: 'bad' }, ` ${p.problem}`) : '']),
            ),
          ),
        ),
      ),
    );
    return;
  }
  const canDownload = me && ['admin', 'operator', 'restore-operator'].includes(me.role);
  const err = h('div');
  const tbody = h('tbody');
  const more = h('p');
  // breadcrumbs: / > etc > app, each a link to that directory
  const parts = path.split('/').filter(Boolean);
  const crumbs = h(
    'div',
    { id: 'breadcrumbs', class: 'row', role: 'navigation', 'aria-label': 'path' },
    h('a', { href: filesHref(loc) }, `disk ${disk}`),
    ' › ',
    h('a', { href: filesHref({ ...loc, partition, path: '/' }) }, `partition ${partition} /`),
    parts.flatMap((name, i) => [
      ' › ',
      h('a', { href: filesHref({ ...loc, partition, path: '/' + parts.slice(0, i + 1).join('/') }) }, name),
    ]),
  );
  const row = (e) =>
    h(
      'tr',
      { 'data-name': e.name },
      h(
        'td',
        { class: 'name' },
        e.type === 'dir'
          ? h('a', { class: 'open-dir', href: filesHref({ ...loc, partition, path: e.path }) }, e.name)
          : e.name,
        e.type === 'symlink' && e.linkTarget !== undefined ? h('span', { class: 'muted' }, ` → ${e.linkTarget}`) : '',
        e.error ? h('div', { class: 'bad' }, `${e.error.code}: ${e.error.message}`) : '',
      ),
      h('td', { class: 'mode' }, e.error ? '?' : modeString(e.type, e.mode)),
      h('td', { class: 'size' }, e.type === 'file' ? bytes(e.size) : ''),
      h('td', {}, when(e.mtime)),
      h(
        'td',
        {},
        e.type === 'file' && canDownload && !e.error
          ? h(
              'button',
              { class: 'secondary download', onclick: () => downloadFile(base, repoQ, partition, e, err) },
              'Download',
            )
          : '',
      ),
    );
  const load = async (cursor) => {
    const r = await api(
      'GET',
      `${base}?partition=${encodeURIComponent(partition)}&path=${encodeURIComponent(path)}&limit=200${repoQ}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    tbody.append(...(r.kind === 'directory' ? r.items : [r.entry]).map(row));
    more.replaceChildren(
      r.nextCursor
        ? h(
            'button',
            {
              class: 'secondary',
              id: 'more',
              onclick: () => load(r.nextCursor).catch((e) => err.replaceChildren(errorBox(e))),
            },
            `Show more (${tbody.children.length} of ${r.total})`,
          )
        : '',
    );
    return r;
  };
  const first = await load(null);
  const tools =
    first.kind === 'directory' ? searchAndDiff({ point, disk, partition, path, repoQ, loc, canDownload, err }) : '';
  show(
    title,
    back,
    crumbs,
    h(
      'p',
      { class: 'muted' },
      `${first.filesystem}${first.kind === 'directory' ? `, ${first.total} ${first.total === 1 ? 'entry' : 'entries'}` : ''}`,
    ),
    first.warnings.length ? h('p', { class: 'warn' }, first.warnings.join('; ')) : '',
    err,
    tools,
    h(
      'table',
      { id: 'files-table' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Name', 'Mode', 'Size', 'Modified', ''].map((x) => h('th', {}, x)),
        ),
      ),
      tbody,
    ),
    more,
  );
}

/**
 * The file browser's tools for the directory shown: search (a path or glob, from this directory down unless it starts
 * with /), compare with another restore point (diff of this directory), and download of the directory as tar.
 */
function searchAndDiff({ point, disk, partition, path, repoQ, loc, canDownload, err }) {
  const disks = `/api/v1/restore-points/${encodeURIComponent(point)}/disks/${encodeURIComponent(disk)}`;
  const pattern = h('input', {
    id: 'find-pattern',
    type: 'search',
    placeholder: 'find: name, glob (*.conf) or /full/path/**',
    'aria-label': 'find files',
  });
  const results = h('div', { id: 'find-results' });
  const find = async () => {
    const v = pattern.value.trim();
    if (!v) return;
    const full = v.startsWith('/') ? v : `${path === '/' ? '' : path}/**/${v}`;
    results.replaceChildren(h('p', { class: 'muted' }, 'searching…'));
    try {
      const r = await api(
        'GET',
        `${disks}/find?partition=${encodeURIComponent(partition)}&pattern=${encodeURIComponent(full)}${repoQ}`,
      );
      results.replaceChildren(
        h(
          'p',
          { class: 'muted' },
          `${r.items.length} match${r.items.length === 1 ? '' : 'es'} for ${full}, ${r.entriesWalked} entries walked`,
        ),
        r.notes.length ? h('p', { class: 'warn', id: 'find-notes' }, r.notes.join('; ')) : '',
        h(
          'table',
          { id: 'find-table' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['Path', 'Size', 'Modified'].map((x) => h('th', {}, x)),
            ),
          ),
          h(
            'tbody',
            {},
            r.items.map((m) => {
              const dirOf = m.type === 'dir' ? m.path : m.path.slice(0, m.path.lastIndexOf('/')) || '/';
              return h(
                'tr',
                { 'data-path': m.path },
                h(
                  'td',
                  {},
                  h('a', { class: 'open-found', href: filesHref({ ...loc, partition, path: dirOf }) }, m.path),
                ),
                h('td', {}, m.type === 'file' ? bytes(m.size) : m.type),
                h('td', {}, when(m.mtime)),
              );
            }),
          ),
        ),
      );
    } catch (e) {
      results.replaceChildren(errorBox(e));
    }
  };
  pattern.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') void find();
  });
  const other = h('input', {
    id: 'diff-other',
    placeholder: 'other restore point id',
    'aria-label': 'compare with restore point',
  });
  const diffOut = h('div', { id: 'diff-results' });
  const diff = async () => {
    const o = other.value.trim();
    if (!o) return;
    diffOut.replaceChildren(h('p', { class: 'muted' }, 'comparing…'));
    try {
      const r = await api(
        'GET',
        `${disks}/diff?other=${encodeURIComponent(o)}&partition=${encodeURIComponent(partition)}&path=${encodeURIComponent(path)}${repoQ}`,
      );
      const sign = { added: '+', removed: '−', changed: '~' };
      const changes = r.volumes.flatMap((v) => v.changes);
      diffOut.replaceChildren(
        h(
          'p',
          { class: 'muted' },
          `${r.counts.added} added, ${r.counts.removed} removed, ${r.counts.changed} changed from ${r.a.id.slice(0, 12)} to ${r.b.id.slice(0, 12)}`,
        ),
        r.notes.length ? h('p', { class: 'warn' }, r.notes.join('; ')) : '',
        h(
          'table',
          { id: 'diff-table' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['', 'Path', 'Size', 'What'].map((x) => h('th', {}, x)),
            ),
          ),
          h(
            'tbody',
            {},
            changes.map((c) =>
              h(
                'tr',
                { 'data-path': c.path, 'data-change': c.change },
                h('td', {}, sign[c.change]),
                h('td', {}, c.path),
                h(
                  'td',
                  {},
                  c.change === 'added'
                    ? bytes(c.sizeB)
                    : c.change === 'removed'
                      ? bytes(c.sizeA)
                      : c.sizeA === c.sizeB
                        ? bytes(c.sizeB)
                        : `${bytes(c.sizeA)} → ${bytes(c.sizeB)}`,
                ),
                h('td', {}, (c.fields ?? []).join(', ')),
              ),
            ),
          ),
        ),
      );
    } catch (e) {
      diffOut.replaceChildren(errorBox(e));
    }
  };
  const archive = async () => {
    try {
      const r = await fetch(
        `${disks}/files/archive?partition=${encodeURIComponent(partition)}&path=${encodeURIComponent(path)}${repoQ}`,
        { headers: { authorization: `Bearer ${token}` } },
      );
      if (!r.ok) {
        const data = await r.json().catch(() => ({}));
        throw new Error(data.error ? `${data.error.code}: ${data.error.message}` : `HTTP ${r.status}`);
      }
      const url = URL.createObjectURL(await r.blob());
      const a = h('a', {
        href: url,
        download: `${path.split('/').filter(Boolean).at(-1) ?? 'root'}.tar`,
        hidden: true,
      });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (x) {
      err.replaceChildren(errorBox(x));
    }
  };
  return h(
    'div',
    { id: 'file-tools' },
    h(
      'div',
      { class: 'row' },
      pattern,
      h('button', { id: 'find-go', class: 'secondary', onclick: () => void find() }, 'Find'),
      other,
      h('button', { id: 'diff-go', class: 'secondary', onclick: () => void diff() }, 'Compare'),
      canDownload
        ? h(
            'button',
            { id: 'download-tar', class: 'secondary', onclick: () => void archive() },
            'Download directory (tar)',
          )
        : '',
    ),
    results,
    diffOut,
  );
}

/** Fetches a file with the bearer token (never in the URL) and hands it to the browser as a blob download. */
async function downloadFile(base, repoQ, partition, e, where) {
  try {
    const r = await fetch(
      `${base}/content?partition=${encodeURIComponent(partition)}&path=${encodeURIComponent(e.path)}${repoQ}`,
      { headers: { authorization: `Bearer ${token}` } },
    );
    if (!r.ok) {
      const data = await r.json().catch(() => ({}));
      throw new Error(data.error ? `${data.error.code}: ${data.error.message}` : `HTTP ${r.status}`);
    }
    const url = URL.createObjectURL(await r.blob());
    const a = h('a', { href: url, download: e.name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (x) {
    where.replaceChildren(errorBox(x));
  }
}

// ---- jobs

async function jobsView() {
  const jobs = await api('GET', '/api/v1/jobs?limit=100');
  show(
    h('h2', {}, 'Jobs'),
    h(
      'table',
      { id: 'jobs-table' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['#', 'Kind', 'VM', 'Status', 'Failure', 'Trigger', 'Created', 'Finished'].map((t) => h('th', {}, t)),
        ),
      ),
      h(
        'tbody',
        {},
        jobs.items.map((j) =>
          h(
            'tr',
            { 'data-job': j.id },
            h('td', {}, h('a', { href: `#/jobs/${j.id}` }, j.id)),
            h('td', {}, j.kind),
            h('td', {}, j.vm ?? '-'),
            h(
              'td',
              { class: `job-status ${statusClass(j.status)}` },
              j.status === 'retrying' ? `retrying (${when(j.retryAt)})` : j.status,
            ),
            h('td', { class: 'job-error' }, failureText(j.error)),
            h('td', {}, j.trigger),
            h('td', {}, when(j.createdAt)),
            h('td', {}, when(j.finishedAt)),
          ),
        ),
      ),
    ),
  );
}

async function jobView(id) {
  const job = await api('GET', `/api/v1/jobs/${id}`);
  const status = h('span', { id: 'job-status', class: statusClass(job.status) }, job.status);
  const bar = h('progress', { id: 'job-progress', max: 1, value: 0 });
  const pct = h('span', { class: 'muted' });
  const log = h('pre', { class: 'log', id: 'job-log' });
  const err = h('div', { id: 'job-error' });
  const setProgress = (p) => {
    if (!p?.bytesTotal) return;
    bar.max = p.bytesTotal;
    bar.value = p.bytesDone;
    pct.textContent = ` ${Math.floor((100 * p.bytesDone) / p.bytesTotal)} % (${bytes(p.bytesDone)} of ${bytes(p.bytesTotal)})`;
  };
  const cancel =
    me && ['admin', 'operator'].includes(me.role) && !FINISHED.includes(job.status)
      ? h(
          'button',
          {
            id: 'job-cancel',
            class: 'secondary',
            onclick: () => api('POST', `/api/v1/jobs/${id}/cancel`).catch((e) => err.replaceChildren(errorBox(e))),
          },
          'Cancel',
        )
      : '';
  show(
    h('h2', {}, `Job ${job.id}: ${job.kind}${job.vm ? ` of ${job.vm}` : ''}`),
    h('p', { class: 'row' }, 'Status: ', status, bar, pct, cancel),
    h(
      'p',
      { class: 'muted' },
      `repository ${job.repository}, requested by ${job.requestedBy}, attempt ${job.attempt} of ${job.maxAttempts}`,
    ),
    err,
    log,
  );
  if (job.error) err.replaceChildren(errorBox(new Error(failureText(job.error))));
  setProgress(job.progress);
  // live log over Server-Sent Events, read with fetch so the token goes in a header (not in the URL)
  liveAbort = new AbortController();
  try {
    const r = await fetch(`/api/v1/jobs/${id}/events`, {
      headers: { authorization: `Bearer ${token}` },
      signal: liveAbort.signal,
    });
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (!ev || !data) continue;
        const d = JSON.parse(data);
        if (ev === 'log') log.append(`${d.time.slice(11, 19)} ${d.level.padEnd(5)} ${d.message}\n`);
        else if (ev === 'progress') setProgress(d);
        else if (ev === 'status') {
          status.textContent = d.status;
          status.className = statusClass(d.status);
          if (d.status === 'succeeded') {
            bar.value = bar.max;
          }
          if (FINISHED.includes(d.status) && cancel) cancel.remove();
          if (d.error) err.replaceChildren(errorBox(new Error(`${d.error.code}: ${d.error.message}`)));
        }
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError') err.replaceChildren(errorBox(e));
  }
}

// ---- repositories, policies

async function repositoriesView() {
  const r = await api('GET', '/api/v1/repositories');
  const canOperate = me && ['admin', 'operator'].includes(me.role);
  show(
    h('h2', {}, 'Repositories'),
    h(
      'table',
      { id: 'repos-table' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Name', 'Location', 'Restore points', 'Storage used', 'Data referenced', 'Dedup ratio', 'Updated', ''].map(
            (t) => h('th', {}, t),
          ),
        ),
      ),
      h(
        'tbody',
        {},
        r.items.map((x) =>
          h(
            'tr',
            { 'data-repo': x.name },
            h('td', {}, x.name),
            h('td', {}, x.location),
            h('td', {}, x.points),
            h('td', {}, bytes(x.storedBytes)),
            h('td', {}, bytes(x.logicalBytes)),
            h('td', {}, x.dedupRatio ? `${x.dedupRatio.toFixed(2)}×` : '-'),
            h('td', {}, x.error ? h('span', { class: 'bad' }, x.error) : when(x.updatedAt)),
            h(
              'td',
              {},
              canOperate
                ? h(
                    'button',
                    {
                      class: 'prune secondary',
                      title: 'garbage collection: delete chunks no restore point uses',
                      onclick: () => startPrune(x.name),
                    },
                    'Prune',
                  )
                : '',
            ),
          ),
        ),
      ),
    ),
  );
}

async function startPrune(repository) {
  try {
    const r = await api('POST', '/api/v1/jobs', { kind: 'prune', repository });
    location.hash = `#/jobs/${r.items[0].id}`;
  } catch (e) {
    main.prepend(errorBox(e));
  }
}

async function policiesView() {
  const p = await api('GET', '/api/v1/policies?limit=500');
  const canEdit = me && ['admin', 'operator'].includes(me.role);
  const example = {
    name: 'daily',
    repository: 'main',
    vms: [{ pattern: '*' }],
    schedule: '0 2 * * *',
    rpoHours: 26,
    retention: { keepDaily: 7, keepWeekly: 4 },
  };
  const form = h(
    'form',
    {
      class: 'stack',
      id: 'policy-form',
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await api('POST', '/api/v1/policies', JSON.parse(form.spec.value));
          route();
        } catch (e) {
          form.append(errorBox(e));
        }
      },
    },
    h('h3', {}, 'New policy (JSON)'),
    h('textarea', { name: 'spec', rows: 8 }, JSON.stringify(example, null, 2)),
    h(
      'p',
      { class: 'muted', id: 'retention-help' },
      'Retention: keepLast N keeps the N newest restore points ("keep N restore points"); keepHourly/Daily/Weekly/' +
        'Monthly/Yearly N keep the newest point of each of the last N periods (GFS: one a period, earlier points ' +
        'of the same period go). A point any rule keeps stays. Only points this policy made are touched, unless ' +
        'removeOtherPoints is true; held and locked points always stay.',
    ),
    h('p', {}, h('button', { type: 'submit' }, 'Create policy')),
  );
  show(
    h('h2', {}, 'Policies'),
    h(
      'table',
      { id: 'policies-table' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Name', 'Repository', 'VMs', 'Schedule', 'Next run', 'RPO', 'Retention', 'Verify'].map((t) =>
            h('th', {}, t),
          ),
        ),
      ),
      h(
        'tbody',
        {},
        p.items.map((x) =>
          h(
            'tr',
            {},
            h('td', {}, x.name, x.enabled ? '' : h('span', { class: 'muted' }, ' (disabled)')),
            h('td', {}, x.repository),
            h(
              'td',
              {},
              x.resolvedVms.vms.map((v) => v.name).join(', ') || '-',
              x.resolvedVms.missing.length
                ? h('div', { class: 'bad' }, `missing: ${x.resolvedVms.missing.join(', ')}`)
                : '',
            ),
            h('td', {}, x.schedule ?? 'on demand'),
            h('td', {}, when(x.nextRuns.backup)),
            h('td', {}, `${x.rpoHours} h`),
            h(
              'td',
              { class: 'retention' },
              x.retention
                ? h(
                    'ul',
                    { class: 'keeps' },
                    (x.retentionKeeps ?? []).map((k) => h('li', {}, k)),
                    h('li', { class: 'muted' }, x.retentionStatus.status),
                  )
                : '-',
            ),
            h('td', {}, x.verify ? x.verify.schedule : '-'),
          ),
        ),
      ),
    ),
    canEdit ? form : '',
  );
}

// ---- router

async function route() {
  const [path, qs] = location.hash.replace(/^#/, '').split('?');
  if (!token) return loginView();
  if (!me) {
    try {
      me = await api('GET', '/api/v1/me');
    } catch {
      return;
    }
  }
  nav.hidden = false;
  document.getElementById('who').textContent = `${me.actor} (${me.role})`;
  for (const a of nav.querySelectorAll('a'))
    a.classList.toggle('active', path.startsWith(a.getAttribute('href').slice(1)));
  try {
    const job = /^\/jobs\/(\d+)$/.exec(path);
    if (job) return await jobView(Number(job[1]));
    if (path === '/restore-points') return await restorePointsView(new URLSearchParams(qs ?? ''));
    if (path === '/files') return await filesView(new URLSearchParams(qs ?? ''));
    if (path === '/jobs') return await jobsView();
    if (path === '/repositories') return await repositoriesView();
    if (path === '/policies') return await policiesView();
    return await dashboardView();
  } catch (e) {
    show(errorBox(e));
  }
}

document.getElementById('logout').addEventListener('click', () => logout());
window.addEventListener('hashchange', route);
route();
