// Quiesce modes (--quiesce auto|app|fs|none, --quiesce-required) against vcsim-coffer. vcsim's guests never run
// VMware Tools and its snapshots ignore `quiesce`; the launcher models both (check.go): /_coffer/guest-tools sets
// guest.toolsRunningStatus, a quiesced CreateSnapshot_Task without running Tools fails with ToolsUnavailable, and
// /_coffer/fail-quiesce makes quiesced snapshots fail with ApplicationQuiesceFault. The mode obtained is recorded
// in the restore point's vmConfig (FORMAT.md §6.1) and shown by `coffer show`.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { expectError, expectOk, makeGuestDisk } from './helpers/more-cli.js';
import { readFileSync } from 'node:fs';
import {
  listSnapshots,
  soapCall,
  startVcsim,
  uploadDisk,
  vcLogin,
  vcRequest,
  waitTask,
  xmlText,
  type Vcsim,
  type VcSession,
} from './helpers/vsphere.js';

async function hook(vc: Vcsim, path: string): Promise<void> {
  const r = await vcRequest(vc, 'POST', `/_coffer/${path}`);
  assert.equal(r.status, 200, r.body.toString());
}

describe('vSphere quiesce modes and fallback (vcsim)', () => {
  const tmp = tempDir('coffer-vsphere-quiesce-');
  const repo = join(tmp.path, 'repo');
  let vc: Vcsim;
  let session: VcSession;
  let env: Record<string, string>;
  const VM = 'DC0_H0_VM0';
  let vmRef = '';
  const backup = (...extra: string[]) =>
    coffer(
      ['backup', '--repo', repo, `vsphere://${vc.host}:${vc.port}/${VM}`, '--insecure-tls', '--json', ...extra],
      env,
    );
  const points = () => expectOk(coffer(['list', '--repo', repo, '--json'])).length as number;
  const manifest = (id: string) => expectOk(coffer(['show', '--repo', repo, id, '--json']));
  const tools = (running: boolean) =>
    hook(vc, `guest-tools?vm=${vmRef}&status=${running ? 'guestToolsRunning' : 'guestToolsNotRunning'}`);

  before(async () => {
    vc = await startVcsim({ diskMiB: [1], vms: 1 });
    session = await vcLogin(vc);
    vmRef = vc.vm(VM).ref;
    env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    const img = join(tmp.path, 'src.raw');
    makeGuestDisk(img, vc.vm(VM).disks[0]!.capacityBytes, 'quiesce');
    await uploadDisk(vc, vc.vm(VM).disks[0]!, readFileSync(img));
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
  });
  after(async () => {
    await vc?.stop();
    tmp.cleanup();
  });

  test('Tools not running: auto falls back to crash-consistent; --quiesce-required fails with exit 30', async () => {
    const r = backup();
    const out = expectOk(r);
    assert.match(r.stderr, /VMware Tools is not running; the snapshot is crash-consistent/);
    assert.equal(out.vsphere.quiesceMode, 'crash');
    const m = manifest(out.id);
    assert.equal(m.vmConfig.quiesceMode, 'crash');
    assert.equal(m.vmConfig.quiesceRequested, 'auto');
    assert.deepEqual(m.consistency, { snapshot: true, quiesced: false });
    const shown = coffer(['show', '--repo', repo, out.id]);
    assert.match(shown.stdout, /capture +snapshot, crash-consistent; --quiesce auto/);

    const before = points();
    const e = expectError(backup('--quiesce', 'fs', '--quiesce-required'), 30, 'VSPHERE_QUIESCE');
    assert.match(e.message, /VMware Tools is not running/);
    assert.equal(points(), before, 'no restore point');
    assert.deepEqual(await listSnapshots(session, vmRef), []);
  });

  test('Tools running on a Linux guest: app falls back to fs (frozen file systems); fs obtains fs', async () => {
    await tools(true);
    try {
      const r = backup('--quiesce', 'app');
      const out = expectOk(r);
      assert.match(r.stderr, /has no VSS: asking for a file-system-consistent snapshot/);
      assert.equal(out.vsphere.quiesceMode, 'fs');
      assert.equal(out.vsphere.quiesced, true);
      const m = manifest(out.id);
      assert.equal(m.vmConfig.quiesceMode, 'fs');
      assert.equal(m.vmConfig.quiesceRequested, 'app');
      assert.deepEqual(m.consistency, { snapshot: true, quiesced: true });
      assert.match(coffer(['show', '--repo', repo, out.id]).stdout, /file-system-consistent \(fs\); --quiesce app/);
      // required app on Linux: refused before any snapshot
      expectError(backup('--quiesce', 'app', '--quiesce-required'), 30, 'VSPHERE_QUIESCE');
      assert.equal(expectOk(backup('--quiesce', 'fs', '--quiesce-required')).vsphere.quiesceMode, 'fs');
      // none: crash-consistent although Tools runs
      assert.equal(expectOk(backup('--quiesce', 'none')).vsphere.quiesceMode, 'crash');
      assert.equal(expectOk(backup('--no-quiesce')).vsphere.quiesceMode, 'crash');
    } finally {
      await tools(false);
    }
    assert.deepEqual(await listSnapshots(session, vmRef), []);
  });

  test('a failing quiesced snapshot: auto falls back to crash-consistent; required fails, nothing left', async () => {
    await tools(true);
    try {
      await hook(vc, 'fail-quiesce?count=1');
      const r = backup();
      const out = expectOk(r);
      assert.match(r.stderr, /quiesced \(fs\) snapshot failed .*falling back to crash/);
      assert.equal(out.vsphere.quiesceMode, 'crash');
      assert.equal(out.vsphere.quiesceFallbacks.length, 1);
      assert.equal(manifest(out.id).vmConfig.quiesceMode, 'crash');

      const before = points();
      await hook(vc, 'fail-quiesce?count=1');
      const e = expectError(backup('--quiesce-required'), 30, 'VSPHERE_QUIESCE');
      assert.match(e.message, /quiesced snapshot failed/);
      assert.equal(points(), before);
      assert.deepEqual(await listSnapshots(session, vmRef), []);
    } finally {
      await tools(false);
    }
  });

  test('a Windows guest with Tools: app-consistent (VSS)', async () => {
    const t = await soapCall(
      vc,
      session,
      'ReconfigVM_Task',
      'VirtualMachine',
      vmRef,
      '<spec><guestId>windows9Server64Guest</guestId></spec>',
    );
    await waitTask(session, xmlText(t, 'returnval')!);
    await tools(true);
    try {
      const out = expectOk(backup('--quiesce', 'app', '--quiesce-required'));
      assert.equal(out.vsphere.quiesceMode, 'app');
      assert.equal(manifest(out.id).vmConfig.quiesceMode, 'app');
      assert.match(coffer(['show', '--repo', repo, out.id]).stdout, /application-consistent \(app\)/);
    } finally {
      await tools(false);
    }
  });
});
