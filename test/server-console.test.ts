import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { makeDisk } from './helpers/disks.js';
import { api, makeToken, startServer, type RunningServer } from './helpers/coffer-server.js';

/** Screenshots for humans (gitignored): test-artifacts/console/*.png */
const ARTIFACTS = resolve('test-artifacts/console');
const CHROMIUM = '/usr/bin/chromium';

describe('web console in headless Chromium', { skip: existsSync(CHROMIUM) ? false : 'chromium is not installed (scripts/setup.sh)' }, () => {
  const tmp = tempDir('coffer-console-');
  const dir = tmp.path;
  const dataDir = join(dir, 'data');
  const repo = join(dir, 'repo');
  const disk = join(dir, 'web01.raw');
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    makeDisk(disk, 2 * 1024 * 1024, 'web01');
    assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024']).code, 0);
    writeFileSync(join(dir, 'pw'), TEST_PASSWORD);
    server = await startServer({
      dir,
      dataDir,
      config: { repositories: [{ name: 'main', location: repo, passwordFile: join(dir, 'pw') }], inventory: [{ name: 'web01', disks: [disk] }, { name: 'db01', disks: [disk] }] },
    });
    const admin = makeToken(dataDir, 'admin');
    const p = await api(server.url, 'POST', '/api/v1/policies', { token: admin, body: { name: 'web', repository: 'main', vms: [{ pattern: 'web*' }], rpoHours: 12, schedule: '0 3 * * *' } });
    assert.equal(p.status, 201, p.text);
    const u = coffer(['user', 'add', '--data', dataDir, '--name', 'olivia', '--role', 'operator'], { COFFER_USER_PASSWORD: 'operator-password' });
    assert.equal(u.code, 0, u.stderr);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(e.message));
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
    assert.match(await page.textContent('.error') ?? '', /UNAUTHENTICATED/);
    await page.fill('#password', 'operator-password');
    await page.click('#login-user button[type=submit]');
    await page.waitForSelector('#vm-table tr[data-vm="web01"]');
    assert.match(await page.textContent('#who') ?? '', /user:olivia \(operator\)/);
    const row = await page.textContent('#vm-table tr[data-vm="web01"]');
    assert.match(row ?? '', /web/);
    assert.match(await page.textContent('#vm-table tr[data-vm="db01"]') ?? '', /unprotected/);
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
    await page.screenshot({ path: join(ARTIFACTS, '02-job.png'), fullPage: true });
    await page.goto(server.url + '/#/dashboard');
    await page.waitForSelector('#vm-table tr[data-vm="web01"] td.last-result.ok');
    assert.match(await page.textContent('#vm-table tr[data-vm="web01"] td.rpo') ?? '', /compliant \(12 h\)/);
    await page.screenshot({ path: join(ARTIFACTS, '03-dashboard-after-backup.png'), fullPage: true });
  });

  it('browses restore points per VM and disk and restores one', async () => {
    await page.click('#vm-table tr[data-vm="web01"] a');
    await page.waitForSelector('#points-table tbody tr');
    const rows = await page.$$('#points-table tbody tr');
    assert.equal(rows.length, 1);
    assert.match(await rows[0]!.textContent() ?? '', /web01.*main.*full.*disk 0: 2\.0 MiB/s);
    await page.screenshot({ path: join(ARTIFACTS, '04-restore-points.png'), fullPage: true });
    await page.click('#points-table button.restore');
    await page.fill('#target', 'from-console.raw');
    await page.click('#restore-form button[type=submit]');
    await page.waitForSelector('#job-status.ok', { timeout: 60_000 });
    assert.ok(readFileSync(join(dataDir, 'restores', 'from-console.raw')).equals(readFileSync(disk)));
    await page.screenshot({ path: join(ARTIFACTS, '05-restore-job.png'), fullPage: true });
  });

  it('shows repositories and policies, and accepts an API token instead of a password', async () => {
    await page.goto(server.url + '/#/repositories');
    await page.waitForSelector('#repos-table tbody tr');
    assert.match(await page.textContent('#repos-table tbody tr') ?? '', /main.*1/);
    await page.goto(server.url + '/#/policies');
    await page.waitForSelector('#policies-table tbody tr');
    assert.match(await page.textContent('#policies-table tbody tr') ?? '', /web.*web01.*0 3 \* \* \*/);
    await page.screenshot({ path: join(ARTIFACTS, '06-policies.png'), fullPage: true });
    await page.click('#logout');
    await page.waitForSelector('#login-token');
    await page.fill('#token', makeToken(dataDir, 'viewer', 'console-viewer'));
    await page.click('#login-token button[type=submit]');
    await page.waitForSelector('#vm-table tr[data-vm="web01"]');
    assert.equal(await page.$('button.backup-now'), null, 'a viewer gets no backup button');
    assert.deepEqual(consoleErrors.filter((e) => !/401/.test(e)), []);
  });
});
