import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { makeDisk } from './helpers/disks.js';
import { MiB, mkExt, partitionDisk, partitionsOf } from './helpers/fs-images.js';
import { api, makeToken, startServer, until, type RunningServer } from './helpers/coffer-server.js';

/** Screenshots for humans (gitignored): test-artifacts/console/*.png */
const ARTIFACTS = resolve('test-artifacts/console');
const CHROMIUM = '/usr/bin/chromium';

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

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
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
    const admin = makeToken(dataDir, 'admin');
    const p = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'web', repository: 'main', vms: [{ pattern: 'web*' }], rpoHours: 12, schedule: '0 3 * * *' },
    });
    assert.equal(p.status, 201, p.text);
    const u = coffer(['user', 'add', '--data', dataDir, '--name', 'olivia', '--role', 'operator'], {
      COFFER_USER_PASSWORD: 'operator-password',
    });
    assert.equal(u.code, 0, u.stderr);
    browser = await chromium.launch({
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
    await page.fill('#password', 'wrong password');
    await page.fill('#username', 'olivia');
    await page.click('#login-user button[type=submit]');
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

  it('browses restore points per VM and disk and restores one', async () => {
    await page.click('#vm-table tr[data-vm="web01"] a');
    await page.waitForSelector('#points-table tbody tr');
    const rows = await page.$$('#points-table tbody tr');
    assert.equal(rows.length, 1);
    assert.match((await rows[0]!.textContent()) ?? '', /web01.*main.*full.*disk 0: 2\.0 MiB/s);
    await page.screenshot({ path: join(ARTIFACTS, '04-restore-points.png'), fullPage: true });
    await page.click('#points-table button.restore');
    await page.fill('#target', 'from-console.raw');
    await page.click('#restore-form button[type=submit]');
    await page.waitForSelector('#job-status.ok', { timeout: 60_000 });
    assert.ok(readFileSync(join(dataDir, 'restores', 'from-console.raw')).equals(readFileSync(disk)));
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
    const admin = makeToken(dataDir, 'admin', 'console-failure-check');
    const job = (await api(server.url, 'GET', `/api/v1/jobs/${id}`, { token: admin })).body;
    assert.equal(job.status, 'failed');
    assert.equal(job.attempt, 1, 'a missing source is not retried');
    await page.goto(server.url + '/#/jobs');
    await page.waitForSelector(`#jobs-table tr[data-job="${id}"]`);
    assert.match((await page.textContent(`#jobs-table tr[data-job="${id}"] td.job-error`)) ?? '', /SOURCE_UNREADABLE/);
    await page.goto(server.url + '/#/dashboard');
    await page.waitForSelector('#failing-vms');
    assert.match((await page.textContent('#failing-vms')) ?? '', /webgone.*SOURCE_UNREADABLE/s);
    assert.match((await page.textContent('.cards')) ?? '', /Failing VMs1/);
    await page.screenshot({ path: join(ARTIFACTS, '05a-failures.png'), fullPage: true });
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
    await page.goto(server.url + '/#/restore-points?vm=web01');
    await page.waitForSelector('#points-table tbody tr');
    await page.click('#points-table a.browse[data-disk="1"]');
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
    await page.fill('#token', makeToken(dataDir, 'viewer', 'console-viewer'));
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
    assert.deepEqual(
      consoleErrors.filter((e) => !/401/.test(e)),
      [],
    );
  });
});
