import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { makeDisk } from './helpers/disks.js';
import { MiB, mkExt, partitionDisk, partitionsOf } from './helpers/fs-images.js';
import { api, makeToken, startServer, until, waitJob, type RunningServer } from './helpers/coffer-server.js';

// The web console (web/src, Preact, built into web/dist by `npm run build`) against a real server with a real
// repository, in headless Chromium: every page renders real data, a restore through the wizard, a policy through the
// form, a failed job with its error and no Cancel, lists paged beyond 100, a narrow screen (issue 20 item 1).

/** the page's document, in the callbacks Playwright runs in the browser (this file compiles without the DOM lib) */
declare const document: any;

/** Screenshots for humans (gitignored): test-artifacts/console/*.png */
const ARTIFACTS = resolve('test-artifacts/console');
const CHROMIUM = '/usr/bin/chromium';

/** The form controls of the page that have no label (a <label for>, a wrapping label, or aria-label): none may. */
const unlabelled = (p: Page) =>
  p.$$eval('input:not([type=hidden]), select, textarea', (els: any[]) =>
    els.filter((e) => !e.labels?.length && !e.getAttribute('aria-label')).map((e) => e.id || e.outerHTML),
  );

describe('web console in headless Chromium', {
  skip: existsSync(CHROMIUM) ? false : 'chromium is not installed (scripts/setup.sh)',
}, () => {
  const tmp = tempDir('coffer-console-');
  const dir = tmp.path;
  const dataDir = join(dir, 'data');
  const repo = join(dir, 'repo');
  const disk = join(dir, 'web01.raw');
  const extDisk = join(dir, 'web01-data.raw'); // MBR with one ext4 partition: browsed in the console
  /** would be markup if a console built HTML from names */
  const HOSTILE = '<img src=x onerror=alert(1)>.txt';
  const dialogs: string[] = [];
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];
  /** the admin token of the fixture (the one token made by the CLI; the rest through the API, faster) */
  let admin: string;
  const token = async (role: string, name: string): Promise<string> => {
    const r = await api(server.url, 'POST', '/api/v1/tokens', { token: admin, body: { name, role } });
    assert.equal(r.status, 201, r.text);
    return r.body.token as string;
  };

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    // Chromium starts while the fixture is made (2 cores: it is most of this file's set-up time)
    const launching = chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    makeDisk(disk, 2 * 1024 * 1024, 'web01');
    const src = join(dir, 'guest');
    mkdirSync(join(src, 'etc'), { recursive: true });
    writeFileSync(join(src, 'etc/hostname'), 'web01.example\n');
    writeFileSync(join(src, HOSTILE), 'x\n');
    partitionDisk(extDisk, 12 * MiB, 'label: dos\nstart=2048, size=10M, type=83\n');
    const p0 = partitionsOf(extDisk)[0]!;
    mkExt(extDisk, 'ext4', src, p0.size, p0.start);
    assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024']).code, 0);
    writeFileSync(join(dir, 'pw'), TEST_PASSWORD);
    server = await startServer({
      dir,
      dataDir,
      config: {
        repositories: [{ name: 'main', location: repo, passwordFile: join(dir, 'pw') }],
        inventory: [
          { name: 'web01', disks: [disk, extDisk] },
          { name: 'db01', disks: [disk] },
          // selected by the policy, its disk is gone: a backup fails at once (no retry) and shows as failing
          { name: 'webgone', disks: [join(dir, 'gone.raw')] },
        ],
      },
    });
    admin = makeToken(dataDir, 'admin');
    const p = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'web', repository: 'main', vms: [{ pattern: 'web*' }], rpoHours: 12, schedule: '0 3 * * *' },
    });
    assert.equal(p.status, 201, p.text);
    const u = await api(server.url, 'POST', '/api/v1/users', {
      token: admin,
      body: { username: 'olivia', password: 'operator-password', role: 'operator' },
    });
    assert.equal(u.status, 201, u.text);
    // more than 100 audit records: the audit page pages beyond its first 100
    for (let i = 0; i < 55; i++) {
      const t = await api(server.url, 'POST', '/api/v1/tokens', {
        token: admin,
        body: { name: `bulk-${i}`, role: 'viewer' },
      });
      assert.equal(t.status, 201, t.text);
    }
    browser = await launching;
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    tmp.cleanup();
  });

  it('logs in with user and password and shows the dashboard with the VM', async () => {
    await page.goto(server.url + '/');
    await page.waitForSelector('#login-user');
    assert.equal(await page.$('#nav'), null, 'no menu before login');
    assert.equal(await page.$('#logout'), null);
    // keyboard only: labels name the fields, Tab moves between them, Enter submits
    await page.getByLabel('User name').focus();
    await page.keyboard.type('olivia');
    await page.keyboard.press('Tab');
    await page.keyboard.type('wrong password');
    await page.keyboard.press('Enter');
    await page.waitForSelector('.error');
    assert.match((await page.textContent('.error')) ?? '', /UNAUTHENTICATED/);
    await page.fill('#password', 'operator-password');
    await page.click('#login-user button[type=submit]');
    await page.waitForSelector('#vm-table tr[data-vm="web01"]');
    assert.match((await page.textContent('#who')) ?? '', /user:olivia \(operator\)/);
    const row = await page.textContent('#vm-table tr[data-vm="web01"]');
    assert.match(row ?? '', /web/);
    assert.match((await page.textContent('#vm-table tr[data-vm="db01"]')) ?? '', /unprotected/);
    assert.ok(await page.$('#trend-chart'));
    assert.ok(await page.$('#nav'), 'the menu after login');
    assert.equal(await page.$('#nav a[href="#/users"]'), null, 'an operator gets no users page in the menu');
    assert.match((await page.textContent('.cards')) ?? '', /Protected VMs0 \/ 3/);
    assert.match((await page.textContent('#last-day')) ?? '', /No jobs in the last 24 hours/);
    await page.screenshot({ path: join(ARTIFACTS, '01-dashboard.png'), fullPage: true });
  });

  it('starts a backup and follows it live to completion', async () => {
    await page.click('#vm-table tr[data-vm="web01"] button.backup-now');
    await page.waitForSelector('#job-status');
    await page.waitForSelector('#job-status.ok', { timeout: 60_000 });
    const log = await page.textContent('#job-log');
    assert.match(log ?? '', /restore point [0-9a-f]{32}/);
    assert.match(log ?? '', /succeeded/);
    assert.equal(await page.$('#job-cancel'), null, 'a finished job offers no Cancel');
    await page.screenshot({ path: join(ARTIFACTS, '02-job.png'), fullPage: true });
    await page.goto(server.url + '/#/dashboard');
    await page.waitForSelector('#vm-table tr[data-vm="web01"] td.last-result.ok');
    assert.match((await page.textContent('#vm-table tr[data-vm="web01"] td.rpo')) ?? '', /compliant \(12 h\)/);
    // the "new data stored per day" chart shows the backup's stored bytes (it said "max 1 B" with data stored)
    const today = new Date().toISOString().slice(0, 10);
    const bar = (await page.textContent(`#trend-chart rect[data-day="${today}"] title`)) ?? '';
    assert.match(bar, /KiB|MiB/, bar);
    assert.doesNotMatch((await page.textContent('#trend-chart')) ?? '', /max 1 B/);
    await page.screenshot({ path: join(ARTIFACTS, '03-dashboard-after-backup.png'), fullPage: true });
  });

  it('lists restore points with stored size, verification and anomaly state, and restores a disk in the wizard', async () => {
    await page.click('#vm-table tr[data-vm="web01"] a');
    await page.waitForSelector('#points-table tbody tr');
    const rows = await page.$$('#points-table tbody tr');
    assert.equal(rows.length, 1);
    assert.match((await rows[0]!.textContent()) ?? '', /web01.*main.*full.*disk 0: 2\.0 MiB/s);
    assert.match((await page.textContent('#points-table td.stored')) ?? '', /KiB|MiB/);
    assert.match((await page.textContent('#points-table td.verification')) ?? '', /not verified/);
    assert.match((await page.textContent('#points-table td.anomaly')) ?? '', /clean/);
    await page.screenshot({ path: join(ARTIFACTS, '04-restore-points.png'), fullPage: true });
    await page.click('#points-table a.restore');
    await page.waitForSelector('fieldset.modes');
    // kinds of restore this server's API lacks are shown with the reason, and cannot be chosen
    // (this server has no vCenter configured: no whole-VM restore; instant recovery it has)
    assert.equal(await page.isDisabled('#mode-vm-new'), true);
    assert.equal(await page.isDisabled('#mode-instant'), false);
    assert.match((await page.textContent('label[for="mode-vm-new"]')) ?? '', /not available: .*restore-vm/);
    assert.equal(await page.isDisabled('#mode-disk'), false);
    await page.screenshot({ path: join(ARTIFACTS, '04a-wizard-kind.png'), fullPage: true });
    await page.getByLabel('Single disk to a file').check();
    await page.click('#wizard-next');
    await page.waitForSelector('#restore-form');
    await page.selectOption('#disk', '0');
    await page.getByLabel("Target file (below the server's restore directory)").fill('from-console.raw');
    // the overwrite checkbox sits with its label: one clickable unit
    await page.getByLabel('Overwrite an existing file').check();
    assert.equal(await page.isChecked('#force'), true);
    await page.screenshot({ path: join(ARTIFACTS, '04b-wizard-options.png'), fullPage: true });
    assert.deepEqual(await unlabelled(page), []);
    await page.click('#restore-form button[type=submit]');
    await page.waitForSelector('#job-status.ok', { timeout: 60_000 });
    assert.ok(readFileSync(join(dataDir, 'restores', 'from-console.raw')).equals(readFileSync(disk)));
    assert.equal(await page.$('#job-cancel'), null, 'a finished restore offers no Cancel');
    await page.screenshot({ path: join(ARTIFACTS, '05-restore-job.png'), fullPage: true });
  });

  it('a backup that cannot succeed fails at once: failure column, dashboard failures, unprotected, no Cancel', async () => {
    await page.goto(server.url + '/#/dashboard');
    await page.waitForSelector('#vm-table tr[data-vm="webgone"]');
    assert.match(
      (await page.textContent('#vm-table tr[data-vm="webgone"]')) ?? '',
      /unprotected: no restore point yet \(web\)/,
    );
    await page.click('#vm-table tr[data-vm="webgone"] button.backup-now');
    await page.waitForSelector('#job-status.bad', { timeout: 60_000 });
    assert.match((await page.textContent('#job-error')) ?? '', /SOURCE_UNREADABLE/);
    assert.equal(await page.$('#job-cancel'), null, 'a failed job offers no Cancel');
    const id = Number(/#\/jobs\/(\d+)/.exec(page.url())![1]);
    const job = (await api(server.url, 'GET', `/api/v1/jobs/${id}`, { token: admin })).body;
    assert.equal(job.status, 'failed');
    assert.equal(job.attempt, 1, 'a missing source is not retried');
    await page.goto(server.url + '/#/jobs');
    await page.waitForSelector(`#jobs-table tr[data-job="${id}"]`);
    assert.match((await page.textContent(`#jobs-table tr[data-job="${id}"] td.job-error`)) ?? '', /SOURCE_UNREADABLE/);
    assert.equal(await page.$(`#jobs-table tr[data-job="${id}"] button.cancel`), null, 'no Cancel on a failed job');
    assert.ok(await page.$(`#jobs-table tr[data-job="${id}"] button.retry`), 'a failed job can be retried');
    // filters: status, kind, VM (kept in the URL)
    await page.selectOption('#job-status-filter', 'failed');
    await page.waitForURL(/status=failed/);
    await page.waitForSelector('#jobs-table tbody tr');
    const failed = await page.$$eval('#jobs-table tbody tr', (r) => r.map((x) => x.getAttribute('data-status')));
    assert.deepEqual([...new Set(failed)], ['failed']);
    await page.selectOption('#job-status-filter', '');
    await page.selectOption('#job-kind-filter', 'restore');
    await page.waitForURL(/kind=restore/);
    await page.waitForFunction(() => document.querySelectorAll('#jobs-table tbody tr').length === 1);
    assert.match((await page.textContent('#jobs-table tbody tr')) ?? '', /restore.*web01.*succeeded/);
    await page.selectOption('#job-kind-filter', '');
    await page.fill('#job-vm-filter', 'webgone');
    await page.press('#job-vm-filter', 'Enter');
    await page.waitForURL(/vm=webgone/);
    await page.waitForFunction(() => document.querySelectorAll('#jobs-table tbody tr').length === 1);
    await page.screenshot({ path: join(ARTIFACTS, '05-jobs-filtered.png'), fullPage: true });
    await page.goto(server.url + '/#/dashboard');
    await page.waitForSelector('#failing-vms');
    assert.match((await page.textContent('#failing-vms')) ?? '', /webgone.*SOURCE_UNREADABLE/s);
    assert.match((await page.textContent('.cards')) ?? '', /Failing VMs1/);
    await page.screenshot({ path: join(ARTIFACTS, '05a-failures.png'), fullPage: true });
    // Retry: a new job with the same arguments (it fails the same way: the disk is still gone)
    await page.click('#failing-vms a');
    await page.waitForSelector('#job-retry');
    await page.click('#job-retry');
    await page.waitForURL((u) => /#\/jobs\/\d+$/.test(u.hash) && u.hash !== `#/jobs/${id}`);
    await page.waitForSelector('#job-status.bad', { timeout: 60_000 });
    const again = Number(/#\/jobs\/(\d+)/.exec(page.url())![1]);
    assert.ok(again > id);
    const retried = (await api(server.url, 'GET', `/api/v1/jobs/${again}`, { token: admin })).body;
    assert.deepEqual([retried.kind, retried.vm, retried.status], ['backup', 'webgone', 'failed']);
  });

  it('browses the files of a disk: partitions, directories with breadcrumbs, hostile names as text, a download', async () => {
    await page.goto(server.url + '/#/restore-points?vm=web01');
    await page.waitForSelector('#points-table tbody tr');
    await page.click('#points-table a.browse[data-disk="1"]');
    await page.waitForSelector('#partitions-table tbody tr[data-partition="1"]');
    assert.match(
      (await page.textContent('#partitions-table tbody tr[data-partition="1"]')) ?? '',
      /partition 1.*10\.0 MiB.*0x83.*ext/s,
    );
    await page.click('#partitions-table a.open-partition');
    await page.waitForSelector('#files-table tr[data-name="etc"]');
    // the hostile name is shown as text; no element was made from it and no script ran
    const names = await page.$$eval('#files-table tbody tr', (rows) => rows.map((r) => r.getAttribute('data-name')));
    assert.ok(names.includes(HOSTILE), JSON.stringify(names));
    assert.match((await page.textContent('#files-table')) ?? '', /<img src=x onerror=alert\(1\)>\.txt/);
    assert.equal(await page.$('#files-table img'), null);
    await page.click('#files-table tr[data-name="etc"] a.open-dir');
    await page.waitForSelector('#files-table tr[data-name="hostname"]');
    assert.match((await page.textContent('#breadcrumbs')) ?? '', /disk 1 › partition 1 \/ › etc/);
    assert.match((await page.textContent('#files-table tr[data-name="hostname"]')) ?? '', /hostname-rw-r--r--14 B/);
    await page.screenshot({ path: join(ARTIFACTS, '05b-files.png'), fullPage: true });
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('#files-table tr[data-name="hostname"] button.download'),
    ]);
    assert.equal(download.suggestedFilename(), 'hostname');
    assert.equal(readFileSync((await download.path())!, 'utf8'), 'web01.example\n');
    await page.click('#breadcrumbs a:nth-of-type(2)');
    await page.waitForSelector(`#files-table tr[data-name="${HOSTILE.replace(/"/g, '\\"')}"]`);
    await page.screenshot({ path: join(ARTIFACTS, '05c-files-hostile-name.png'), fullPage: true });
    assert.deepEqual(dialogs, []);
  });

  it('searches the file browser: a name or glob, results link to their directory; hostile names stay text', async () => {
    // reached through the restore wizard's "Files and folders"
    await page.goto(server.url + '/#/restore-points?vm=web01');
    await page.waitForSelector('#points-table tbody tr');
    await page.click('#points-table a.restore');
    await page.getByLabel('Files and folders').check();
    await page.click('#wizard-next');
    await page.click('#wizard-files a.browse:text("disk 1")');
    await page.click('#partitions-table a.open-partition');
    await page.waitForSelector('#files-table tr[data-name="etc"]');
    await page.fill('#find-pattern', 'host*');
    await page.click('#find-go');
    await page.waitForSelector('#find-table tr[data-path="/etc/hostname"]');
    const found = await page.$$eval('#find-table tbody tr', (rows) => rows.map((r) => r.getAttribute('data-path')));
    assert.deepEqual(found, ['/etc/hostname']);
    assert.match((await page.textContent('#find-results')) ?? '', /1 match for \/\*\*\/host\*/);
    await page.fill('#find-pattern', '/*.txt');
    await page.click('#find-go');
    await page.waitForSelector('#find-table tbody tr');
    assert.match((await page.textContent('#find-table')) ?? '', /<img src=x onerror=alert\(1\)>\.txt/);
    assert.equal(await page.$('#find-results img'), null);
    await page.fill('#find-pattern', '/etc/host?ame');
    await page.click('#find-go');
    await page.waitForSelector('#find-table tr[data-path="/etc/hostname"]');
    await page.screenshot({ path: join(ARTIFACTS, '05d-files-search.png'), fullPage: true });
    await page.click('#find-table tr[data-path="/etc/hostname"] a.open-found');
    await page.waitForSelector('#files-table tr[data-name="hostname"]');
    assert.match((await page.textContent('#breadcrumbs')) ?? '', /partition 1 \/ › etc/);
    assert.deepEqual(dialogs, []);
  });

  it('creates a policy through the form: validation, what it selects, edit, disable, run now, delete', async () => {
    await page.goto(server.url + '/#/policies');
    await page.waitForSelector('#policies-table tbody tr');
    await page.click('#new-policy');
    await page.waitForSelector('#policy-form');
    // nothing filled in that matters: the form says what is wrong, by field, and sends nothing
    await page.click('#policy-save');
    await page.waitForSelector('#policy-name-error');
    assert.match((await page.textContent('#policy-vms-error')) ?? '', /at least one VM/);
    assert.equal(await page.getAttribute('#policy-name', 'aria-invalid'), 'true');
    await page.getByLabel('Name').fill('nightly db');
    await page.fill('#sel-value-0', 'db*');
    await page.waitForFunction(() =>
      /Selects 1 VM.*db01/.test(document.querySelector('#vm-preview')?.textContent ?? ''),
    );
    await page.getByLabel('Keep the newest N restore points').fill('3');
    await page.getByLabel('Backup schedule (cron; empty: on demand only)').fill('every night');
    await page.click('#policy-save');
    await page.waitForSelector('#policy-schedule-error');
    await page.getByLabel('Backup schedule (cron; empty: on demand only)').fill('30 1 * * *');
    await page.screenshot({ path: join(ARTIFACTS, '06a-policy-form.png'), fullPage: true });
    assert.deepEqual(await unlabelled(page), [], 'every field of the policy form has a label');
    await page.click('#policy-save');
    const row = '#policies-table tr[data-policy="nightly db"]';
    await page.waitForSelector(row);
    assert.match((await page.textContent(row)) ?? '', /nightly db.*main.*db01.*30 1 \* \* \*/s);
    assert.match((await page.textContent(`${row} td.retention`)) ?? '', /3/);
    const created = (await api(server.url, 'GET', '/api/v1/policies/nightly%20db', { token: admin })).body;
    assert.deepEqual(created.vms, [{ pattern: 'db*' }]);
    assert.equal(created.retention.keepLast, 3);
    // edit: the form comes back filled in; the RPO changes
    await page.click(`${row} a.edit`);
    await page.waitForSelector('#policy-form');
    assert.equal(await page.inputValue('#policy-name'), 'nightly db');
    await page.getByLabel('RPO in hours').fill('30');
    await page.click('#policy-save');
    await page.waitForSelector(row);
    assert.match((await page.textContent(row)) ?? '', /30 h/);
    // disable, enable, run now (one job: db01), delete (asks first, in the page)
    await page.click(`${row} button.toggle`);
    await page.waitForFunction((r) => /\(disabled\)/.test(document.querySelector(r)?.textContent ?? ''), row);
    assert.equal(await page.isDisabled(`${row} button.run-now`), true);
    await page.click(`${row} button.toggle`);
    await page.waitForFunction((r) => !/\(disabled\)/.test(document.querySelector(r)?.textContent ?? ''), row);
    await page.click(`${row} button.run-now`);
    await page.waitForSelector('#job-status.ok', { timeout: 60_000 });
    assert.match((await page.textContent('h2')) ?? '', /backup of db01/);
    await page.goto(server.url + '/#/policies');
    await page.click(`${row} button.delete`);
    await page.click(`${row} button.confirm-delete`);
    await page.waitForSelector(row, { state: 'detached' });
    assert.equal((await api(server.url, 'GET', '/api/v1/policies/nightly%20db', { token: admin })).status, 404);
    assert.deepEqual(dialogs, []);
  });

  it('shows repositories and policies, and accepts an API token instead of a password', async () => {
    await page.goto(server.url + '/#/repositories');
    await page.waitForSelector('#repos-table tbody tr');
    assert.match((await page.textContent('#repos-table tbody tr')) ?? '', /main.*1/);
    // an operator starts a prune (garbage collection) of the repository and follows it
    await page.click('#repos-table tr[data-repo="main"] button.prune');
    await page.waitForSelector('#job-status.ok', { timeout: 60_000 });
    assert.match(
      (await page.textContent('#job-log')) ?? '',
      /prune: \d+ restore points, \d+ chunks referenced; deleted \d+ chunks/,
    );
    await page.goto(server.url + '/#/policies');
    await page.waitForSelector('#policies-table tbody tr');
    assert.match((await page.textContent('#policies-table tbody tr')) ?? '', /web.*web01.*0 3 \* \* \*/);
    await page.screenshot({ path: join(ARTIFACTS, '06-policies.png'), fullPage: true });
    const session = (await page.evaluate('sessionStorage.getItem("coffer-token")')) as string | null;
    assert.ok(session);
    assert.equal((await api(server.url, 'GET', '/api/v1/me', { token: session })).status, 200);
    await page.click('#logout');
    await page.waitForSelector('#login-token');
    // the console's logout revokes the session on the server
    await until(
      'session revoked',
      async () => (await api(server.url, 'GET', '/api/v1/me', { token: session })).status === 401,
    );
    await page.fill('#token', await token('viewer', 'console-viewer'));
    await page.click('#login-token button[type=submit]');
    await page.waitForSelector('#vm-table tr[data-vm="web01"]');
    assert.equal(await page.$('button.backup-now'), null, 'a viewer gets no backup button');
    await page.goto(server.url + '/#/repositories');
    await page.waitForSelector('#repos-table tbody tr');
    assert.equal(await page.$('button.prune'), null, 'a viewer gets no prune button');
    // a viewer browses files but gets no download button (content needs restore-operator or higher)
    await page.goto(server.url + '/#/restore-points?vm=web01');
    await page.click('#points-table a.browse[data-disk="1"]');
    await page.click('#partitions-table a.open-partition');
    await page.click('#files-table tr[data-name="etc"] a.open-dir');
    await page.waitForSelector('#files-table tr[data-name="hostname"]');
    assert.equal(await page.$('#files-table button.download'), null, 'a viewer gets no download button');
  });

  it('an admin sees users and tokens, the audit log paged beyond 100, proxies, VMs', async () => {
    await page.click('#logout');
    await page.waitForSelector('#login-token');
    await page.fill('#token', await token('admin', 'console-admin'));
    await page.click('#login-token button[type=submit]');
    await page.waitForSelector('#nav a[href="#/users"]');
    await page.click('#nav a[href="#/users"]');
    await page.waitForSelector('#users-table tr[data-user="olivia"]');
    assert.match((await page.textContent('#users-table tr[data-user="olivia"]')) ?? '', /operator/);
    await page.waitForSelector('#tokens-table tr[data-token="bulk-0"]');
    await page.getByLabel('User name').fill('victor');
    await page.getByLabel('Password (8 characters at least)').fill('viewer-password');
    await page.selectOption('#new-role', 'viewer');
    await page.click('#user-form button[type=submit]');
    await page.waitForSelector('#users-table tr[data-user="victor"]');
    const login = await api(server.url, 'POST', '/api/v1/auth/login', {
      body: { username: 'victor', password: 'viewer-password' },
    });
    assert.equal(login.status, 200, login.text);
    await page.fill('#token-name', 'from-console');
    await page.selectOption('#token-role', 'viewer');
    await page.click('#token-form button[type=submit]');
    await page.waitForSelector('#new-token');
    const secret = (await page.textContent('#new-token')) ?? '';
    assert.equal((await api(server.url, 'GET', '/api/v1/me', { token: secret })).body.role, 'viewer');
    await page.waitForSelector('#tokens-table tr[data-token="from-console"]');
    await page.screenshot({ path: join(ARTIFACTS, '07-users-tokens.png'), fullPage: true });
    assert.deepEqual(await unlabelled(page), []);
    await page.click('#tokens-table tr[data-token="from-console"] button.revoke');
    await page.waitForSelector('#tokens-table tr[data-token="from-console"]', { state: 'detached' });
    assert.equal((await api(server.url, 'GET', '/api/v1/me', { token: secret })).status, 401);

    await page.click('#nav a[href="#/audit"]');
    await page.waitForFunction(() => document.querySelectorAll('#audit-table tbody tr').length === 100);
    const first = await page.$$eval('#audit-table tbody tr', (r) => r.map((x) => x.getAttribute('data-audit')));
    await page.click('#audit-pager button.next');
    await page.waitForSelector('#audit-pager .muted:text("page 2")');
    await page.waitForFunction(
      (f) => document.querySelector('#audit-table tbody tr')?.getAttribute('data-audit') !== f,
      first[0],
    );
    const second = await page.$$eval('#audit-table tbody tr', (r) => r.map((x) => x.getAttribute('data-audit')));
    assert.ok(second.length > 0);
    assert.ok(Number(second[0]) < Number(first[first.length - 1]), 'page 2 is older than page 1');
    assert.match((await page.textContent('#audit-table')) ?? '', /POST \/api\/v1\/tokens/);
    await page.screenshot({ path: join(ARTIFACTS, '08-audit.png'), fullPage: true });

    await page.click('#nav a[href="#/proxies"]');
    // the server's built-in proxy: its state, load and version; drained from the console and put back
    await page.waitForSelector('#proxies-table tr[data-state="online"]');
    const builtIn = (await api(server.url, 'GET', '/api/v1/proxies', { token: admin })).body.items[0];
    assert.equal(builtIn.local, true);
    const row = `#proxies-table tr[data-proxy="${builtIn.name}"]`;
    assert.match((await page.textContent(row)) ?? '', /built-in/);
    assert.match((await page.textContent(row)) ?? '', new RegExp(`${builtIn.running} / ${builtIn.concurrency}`));
    await page.click(`${row} button:has-text("Drain")`);
    await page.waitForSelector(`${row}[data-state="drained"], ${row}[data-state="draining"]`);
    const drained = (await api(server.url, 'GET', '/api/v1/proxies', { token: admin })).body.items[0];
    assert.equal(drained.drained, true, 'drained through the console');
    await page.screenshot({ path: join(ARTIFACTS, '09-proxies.png'), fullPage: true });
    await page.click(`${row} button:has-text("Undrain")`);
    await page.waitForSelector(`${row}[data-state="online"]`);

    await page.click('#nav a[href="#/vms"]');
    await page.waitForSelector('#vm-table tr[data-vm="db01"]');
    assert.equal((await page.$$('#vm-table tbody tr')).length, 3);
    await page.click('#nav a[href="#/repositories"]');
    await page.waitForSelector('#repos-table tr[data-repo="main"] td.usage');
    assert.match((await page.textContent('#repos-table tr[data-repo="main"] td.usage')) ?? '', /KiB|MiB/);
  });

  it('works on a narrow screen: the top bar does not overflow, the menu opens from a button', async () => {
    // the admin's session of the test before, on a phone-sized screen
    const narrow = page;
    await narrow.setViewportSize({ width: 375, height: 760 });
    await narrow.goto(server.url + '/#/dashboard');
    await narrow.waitForSelector('#vm-table tr[data-vm="web01"]');
    const width = () => narrow.evaluate(() => document.documentElement.scrollWidth);
    assert.ok((await width()) <= 375, `page is ${await width()} px wide`);
    const header = await narrow.evaluate(() => document.querySelector('header')!.scrollWidth);
    assert.ok(header <= 375, `top bar is ${header} px wide`);
    assert.equal(await narrow.isVisible('#nav'), false);
    await narrow.click('button.menu-toggle');
    assert.equal(await narrow.isVisible('#nav a[href="#/jobs"]'), true);
    assert.ok((await width()) <= 375);
    await narrow.screenshot({ path: join(ARTIFACTS, '10-narrow.png'), fullPage: true });
    await narrow.click('#nav a[href="#/jobs"]');
    await narrow.waitForSelector('#jobs-table');
    assert.equal(await narrow.isVisible('#nav'), false, 'the menu closes on navigation');
    // the browser logs every 401 and 404 answer (a revoked session)
    assert.deepEqual(
      consoleErrors.filter((e) => !/401|status of 404/.test(e)),
      [],
    );
  });

  it('shows the boot part of a check in the restore point row: outcome and why (issue 18)', {
    skip:
      spawnSync('qemu-system-x86_64', ['-version'], { stdio: 'ignore' }).status === 0
        ? false
        : 'qemu-system-x86_64 is not installed (scripts/setup.sh installs qemu-system-x86)',
  }, async () => {
    // last in this file: the failed check makes web01's point "failed" and adds a failed job
    await page.setViewportSize({ width: 1280, height: 900 });
    const listed = await api(server.url, 'GET', '/api/v1/restore-points?vm=web01', { token: admin });
    const point = listed.body.items[0];
    // disk 0 of web01 is pseudo-random data: no boot sector, so the boot fails before QEMU starts (no TCG wait)
    const j = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'check', repository: 'main', pointId: point.id, boot: { marker: 'login:', timeoutSeconds: 30 } },
    });
    assert.equal(j.status, 202, j.text);
    const job = await waitJob(server.url, admin, j.body.items[0].id, 120_000);
    assert.equal(job.status, 'failed', JSON.stringify(job.logs));
    const after = (await api(server.url, 'GET', '/api/v1/restore-points?vm=web01', { token: admin })).body.items.find(
      (p: any) => p.id === point.id,
    );
    // the catalog carries the boot part of the check, not only ok/failed
    assert.equal(after.status.check.ok, false);
    assert.equal(after.status.check.boot.ok, false);
    assert.equal(after.status.check.boot.signal, 'marker');
    assert.equal(after.status.check.boot.ended, 'not-run');
    assert.match(after.status.check.boot.note, /disk 0 has no BIOS boot sector/);
    assert.equal(after.status.check.boot.script, null);
    // this server has no bootScriptsDir: a check naming a boot script is refused before it is queued
    const noScripts = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'check', repository: 'main', pointId: point.id, boot: { script: 'smoke.sh' } },
    });
    assert.equal(noScripts.status, 400, noScripts.text);
    assert.match(noScripts.body.error.message, /no bootScriptsDir/);
    await page.goto(`${server.url}/#/restore-points?vm=web01`);
    const row = `#points-table tr[data-point="${point.id}"]`;
    await page.waitForSelector(`${row} .boot`);
    assert.equal(await page.getAttribute(`${row} .boot`, 'data-boot'), 'failed');
    assert.match((await page.textContent(`${row} .boot`)) ?? '', /boot failed.*disk 0 has no BIOS boot sector/s);
    assert.match((await page.textContent(`${row} td.anomaly`)) ?? '', /check failed/);
    await page.screenshot({ path: join(ARTIFACTS, '11-boot-check.png'), fullPage: true });
  });
});
