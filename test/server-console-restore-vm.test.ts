// The console's restore wizard for whole VMs and instant recovery, in headless Chromium against a real server whose
// vCenter is the simulator keeping NFC uploads (test/fixtures/vcsim): the dry run shows the plan (network map row from
// the stored NIC, NICs disconnected) and creates nothing; the restore is only offered for the settings of the plan
// shown; a real restore-vm job creates the VM with its disks byte for byte; a vCenter error of the dry run shows its
// code; instant recovery starts (nbd:// URI shown) and stops. Screenshots: test-artifacts/console/2x-*.png.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { api, makeToken, startServer, type RunningServer } from './helpers/coffer-server.js';
import { expectOk, makeGuestDisk } from './helpers/more-cli.js';
import { dataLocalPathOf, listDisks, startVcsim, uploadDisk, vcLogin, type Vcsim } from './helpers/vsphere.js';

const ARTIFACTS = resolve('test-artifacts/console');
const CHROMIUM = '/usr/bin/chromium';

/** The form controls of the page that have no label (a <label for>, a wrapping label, or aria-label): none may. */
const unlabelled = (p: Page) =>
  p.$$eval('input:not([type=hidden]), select, textarea', (els: any[]) =>
    els.filter((e) => !e.labels?.length && !e.getAttribute('aria-label')).map((e) => e.id || e.outerHTML),
  );

describe('console restore wizard: whole VM to vCenter and instant recovery (headless Chromium, vcsim)', {
  skip: existsSync(CHROMIUM) ? false : 'chromium is not installed (scripts/setup.sh)',
}, () => {
  const tmp = tempDir('coffer-console-rvm-');
  const dir = tmp.path;
  const dataDir = join(dir, 'data');
  const repo = join(dir, 'repo');
  const VM = 'DC0_H0_VM1';
  const images: Buffer[] = [];
  let vc: Vcsim;
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  let env: Record<string, string>;
  let url: string;
  const consoleErrors: string[] = [];

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const launching = chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-sync'],
    });
    vc = await startVcsim({ diskMiB: [2], folderAuth: true, layoutVms: false });
    for (const [i, d] of vc.vm(VM).disks.entries()) {
      const img = join(dir, `src${i}.raw`);
      makeGuestDisk(img, d.capacityBytes, `console-rvm-${i}`);
      images.push(readFileSync(img));
      await uploadDisk(vc, d, images[i]!);
    }
    env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    url = `vsphere://${vc.host}:${vc.port}`;
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    expectOk(coffer(['backup', '--repo', repo, `${url}/${VM}`, '--insecure-tls', '--json'], env));
    writeFileSync(join(dir, 'pw'), TEST_PASSWORD);
    server = await startServer({
      dir,
      dataDir,
      env: { VC_USER: vc.username, VC_PASS: vc.password },
      config: {
        repositories: [{ name: 'main', location: repo, passwordFile: join(dir, 'pw') }],
        vcenters: [{ name: 'lab', url, userEnv: 'VC_USER', passwordEnv: 'VC_PASS', thumbprint: vc.thumbprint }],
        retries: { maxAttempts: 1, backoffSeconds: 0 },
      },
    });
    const admin = makeToken(dataDir, 'admin');
    const u = await api(server.url, 'POST', '/api/v1/users', {
      token: admin,
      body: { username: 'rita', password: 'restore-password', role: 'restore-operator' },
    });
    assert.equal(u.status, 201, u.text);
    browser = await launching;
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(e.message));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await vc?.stop();
    tmp.cleanup();
  });

  const vmsNamed = (name: string) =>
    expectOk(coffer(['vsphere', 'inventory', url, '--insecure-tls', '--json'], env)).vms.filter(
      (v: { name: string }) => v.name === name,
    );

  const openWizard = async (mode: string) => {
    await page.goto(`${server.url}/#/restore-points?vm=${VM}`);
    await page.click('#points-table a.restore');
    await page.waitForSelector('fieldset.modes');
    assert.equal(await page.isDisabled(`#mode-${mode}`), false);
    await page.check(`#mode-${mode}`);
    await page.click('#wizard-next');
  };

  it('a restore operator logs in; a dry run shows the plan and creates nothing; the restore runs the plan', async () => {
    await page.goto(`${server.url}/`);
    await page.getByLabel('User name').fill('rita');
    await page.getByLabel('Password').fill('restore-password');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#nav');
    await openWizard('vm-new');
    await page.waitForSelector('#restore-vm-form');
    assert.deepEqual(await unlabelled(page), []);
    // the form starts from the stored configuration: the vCenter, the datastore, one network-map row per NIC
    assert.equal(await page.inputValue('#vm-vcenter'), 'lab');
    assert.equal(await page.inputValue('#vm-datastore'), 'LocalDS_0');
    const nicLabel = (await page.textContent('label[for="vm-net-0"]')) ?? '';
    assert.match(nicLabel, /NIC 0 \(.+\) on DC0_DVPG0/);
    assert.equal(await page.isDisabled('#vm-restore'), true, 'the restore is offered only after a dry run');
    // form validation: a name with a slash is refused before anything is sent
    await page.getByLabel('New VM name').fill('a/b');
    assert.match((await page.textContent('#vm-name-error')) ?? '', /plain VM name/);
    await page.click('#vm-dry-run');
    assert.match((await page.textContent('#restore-vm-error')) ?? '', /VM name: a plain VM name/);
    // keyboard: the name field, then the network map row and the checkbox by their labels
    await page.getByLabel('New VM name').fill('');
    await page.getByLabel('New VM name').focus();
    await page.keyboard.type('console-vm');
    await page.getByLabel(nicLabel).fill('VM Network');
    await page.getByLabel('NICs disconnected at power-on').check();
    await page.click('#vm-dry-run');
    await page.waitForSelector('#restore-vm-plan');
    const plan = (await page.textContent('#restore-vm-plan')) ?? '';
    assert.match(plan, /Plan: new VM \(NFC import\) console-vm/);
    assert.match(plan, /datacenter DC0, datastore LocalDS_0/);
    assert.match(plan, /disk 0: 2\.0 MiB/);
    assert.match(plan, /NIC .* on VM Network .*disconnected/);
    assert.equal(vmsNamed('console-vm').length, 0, 'the dry run created the VM');
    await page.screenshot({ path: join(ARTIFACTS, '20-restore-vm-plan.png'), fullPage: true });
    // another setting: the plan shown is no longer that of the form, the restore waits for a new dry run
    await page.getByLabel('Power on when restored').check();
    assert.equal(await page.$('#restore-vm-plan'), null);
    assert.equal(await page.isDisabled('#vm-restore'), true);
    // back to the settings of the plan: that plan is shown again, the restore offered
    await page.getByLabel('Power on when restored').uncheck();
    await page.waitForSelector('#restore-vm-plan');
    assert.equal(await page.isDisabled('#vm-restore'), false);
    await page.click('#vm-restore');
    await page.waitForSelector('#job-status.ok', { timeout: 60_000 });
    await page.screenshot({ path: join(ARTIFACTS, '21-restore-vm-job.png'), fullPage: true });
    const made = vmsNamed('console-vm');
    assert.equal(made.length, 1);
    const disks = await listDisks(await vcLogin(vc), 'VirtualMachine', made[0].moref);
    assert.equal(disks.length, 1);
    assert.ok(readFileSync(dataLocalPathOf(vc, disks[0]!.fileName)).equals(images[0]!), 'the restored disk differs');
  });

  it("a dry run that vCenter refuses shows the job's coded error", async () => {
    await openWizard('vm-new');
    await page.waitForSelector('#restore-vm-form');
    await page.getByLabel('New VM name').fill('console-nods');
    await page.getByLabel('Datastore').fill('NoSuchDS');
    await page.click('#vm-dry-run');
    await page.waitForSelector('#restore-vm-error');
    assert.match((await page.textContent('#restore-vm-error')) ?? '', /NOT_FOUND: .*NoSuchDS/);
    assert.equal(await page.isDisabled('#vm-restore'), true);
    await page.screenshot({ path: join(ARTIFACTS, '22-restore-vm-error.png'), fullPage: true });
  });

  it('instant recovery starts (its nbd:// URI shown) and stops', async () => {
    await openWizard('instant');
    await page.waitForSelector('#instant-form');
    assert.deepEqual(await unlabelled(page), []);
    await page.click('#ir-start');
    await page.waitForSelector('#ir-running .ir-uri');
    assert.match((await page.textContent('#ir-running')) ?? '', /disk 0: nbd:\/\/127\.0\.0\.1:\d+\/.*\(read-only\)/);
    await page.screenshot({ path: join(ARTIFACTS, '23-instant-recovery.png'), fullPage: true });
    await page.click('#ir-running .ir-stop');
    await page.waitForSelector('#ir-running', { state: 'detached' });
    const left = await api(server.url, 'GET', '/api/v1/instant-recoveries', {
      token: makeToken(dataDir, 'viewer', 'check'),
    });
    assert.deepEqual(left.body.items, []);
    assert.deepEqual(consoleErrors, []);
  });
});
