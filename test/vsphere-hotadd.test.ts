// HotAdd transport against the simulator: the launcher plays the proxy VM's Linux guest (-by-id-dir: a disk
// attached to a VM appears as wwn-0x<uuid> -> its data file, and goes on detach). The proxy's SMBIOS UUID comes
// from a file (COFFER_PRODUCT_UUID_PATH) instead of /sys/class/dmi/id/product_uuid. A vSAN VM, which http cannot
// read, is backed up byte for byte, then incrementally; bad input leaves no snapshot, no attached disk, no restore point.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { assertNoStack, expectError, expectOk, makeGuestDisk } from './helpers/more-cli.js';
import {
  listDisks,
  listSnapshots,
  soapCall,
  startVcsim,
  vcLogin,
  vcRequest,
  waitTask,
  xmlEscape,
  xmlText,
  type Vcsim,
  type VcSession,
} from './helpers/vsphere.js';

describe('vSphere hot-add transport (vcsim playing the proxy guest)', () => {
  const tmp = tempDir('coffer-vsphere-hotadd-');
  const repo = join(tmp.path, 'repo');
  const byId = join(tmp.path, 'by-id');
  const uuidFile = join(tmp.path, 'product_uuid');
  const stateDir = join(tmp.path, 'hotadd-state');
  const PROXY = 'DC0_C0_RP0_VM0';
  const VM = 'DC0_C0_VSAN0';
  let vc: Vcsim;
  let s: VcSession;
  let env: Record<string, string>;
  let url: string;
  const images: Buffer[] = [];
  const points = () => expectOk(coffer(['list', '--repo', repo, '--json'])).length as number;
  const backup = (...extra: string[]) =>
    coffer(
      ['backup', '--repo', repo, `${url}/${VM}`, '--insecure-tls', '--json', '--transport', 'hotadd', ...extra],
      env,
    );
  const clean = async () => {
    assert.deepEqual(await listSnapshots(s, vc.vm(VM).ref), [], 'a snapshot was left');
    assert.equal(
      (await listDisks(s, 'VirtualMachine', vc.vm(PROXY).ref)).length,
      vc.vm(PROXY).disks.length,
      'a disk is still attached to the proxy',
    );
    assert.deepEqual(readdirSync(byId), [], 'a by-id link was left');
  };
  const restoreMatches = (id: string) => {
    for (const [i, img] of images.entries()) {
      const out = join(tmp.path, `r-${id.slice(0, 8)}-${i}.raw`);
      expectOk(coffer(['restore', '--repo', repo, id, '--disk', String(i), '--target', out, '--force', '--json']));
      assert.ok(readFileSync(out).equals(img), `disk ${i} of ${id} differs`);
    }
  };

  before(async () => {
    mkdirSync(byId, { recursive: true });
    vc = await startVcsim({ diskMiB: [3, 2], byIdDir: byId });
    s = await vcLogin(vc);
    writeFileSync(uuidFile, `${vc.vm(PROXY).uuid.toUpperCase()}\n`);
    env = {
      COFFER_VSPHERE_USER: vc.username,
      COFFER_VSPHERE_PASSWORD: vc.password,
      COFFER_PRODUCT_UUID_PATH: uuidFile,
      COFFER_DISK_BY_ID_DIR: byId,
      COFFER_HOTADD_STATE_DIR: stateDir,
    };
    url = `vsphere://${vc.host}:${vc.port}`;
    for (const [i, d] of vc.vm(VM).disks.entries()) {
      const img = join(tmp.path, `src${i}.raw`);
      makeGuestDisk(img, d.capacityBytes, `hotadd-${i}`);
      images.push(readFileSync(img));
      writeFileSync(d.dataLocalPath, images[i]!); // a vSAN object: the guest writes it (no /folder)
    }
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
  });
  after(async () => {
    await vc?.stop();
    tmp.cleanup();
  });

  test('a vSAN VM is backed up over hot-add byte for byte; everything is detached afterwards', async () => {
    const r = expectOk(backup());
    assert.equal(r.vsphere.transport, 'hotadd');
    assert.equal(r.disks.length, 2);
    restoreMatches(r.id);
    await clean();
    const log = readFileSync(vc.logFile, 'utf8');
    assert.match(log, /hot-add: \[vsanDatastore\] DC0_C0_VSAN0\/disk1\.vmdk attached to DC0_C0_RP0_VM0/);
    assert.match(log, /detached from DC0_C0_RP0_VM0/);
  });

  test('the next backup over hot-add is incremental: only the changed 64 KiB blocks are read', async () => {
    const d = vc.vm(VM).disks[0]!;
    images[0]!.fill(0x5a, 65536, 3 * 65536);
    writeFileSync(d.dataLocalPath, images[0]!);
    const r = expectOk(backup());
    assert.equal(r.disks[0].bytesRead, 2 * 65536);
    assert.equal(r.disks[1].bytesRead, 0);
    restoreMatches(r.id);
    await clean();
  });

  test('the proxy VM not found (a machine outside vCenter): VSPHERE_TRANSPORT before any snapshot', async () => {
    const before = points();
    const other = join(tmp.path, 'other_uuid');
    writeFileSync(other, '11111111-2222-3333-4444-555555555555\n');
    const r = coffer(['backup', '--repo', repo, `${url}/${VM}`, '--insecure-tls', '--json', '--transport', 'hotadd'], {
      ...env,
      COFFER_PRODUCT_UUID_PATH: other,
    });
    const e = expectError(r, 28, 'VSPHERE_TRANSPORT');
    assert.match(e.message, /no VM in vCenter has this machine's BIOS UUID/);
    assertNoStack(r);
    expectError(backup('--proxy-vm', 'no-such-proxy'), 28, 'VSPHERE_TRANSPORT');
    assert.equal(points(), before);
    await clean();
  });

  test('a disk that never appears under by-id: timeout, detached again, no restore point', async () => {
    const before = points();
    const h = await vcRequest(vc, 'POST', '/_coffer/hotadd-suppress?count=1');
    assert.equal(h.status, 200);
    const r = coffer(['backup', '--repo', repo, `${url}/${VM}`, '--insecure-tls', '--json', '--transport', 'hotadd'], {
      ...env,
      COFFER_HOTADD_TIMEOUT_MS: '1500',
    });
    const e = expectError(r, 28, 'VSPHERE_TRANSPORT');
    assert.match(e.message, /did not appear/);
    assert.match(e.hint ?? '', /disk\.EnableUUID/);
    assert.equal(points(), before);
    await clean();
  });

  test('a disk a killed Coffer process left attached to the proxy is detached by the next run', async () => {
    // what a process killed mid-backup leaves: the disk attached as Coffer attaches it, and its record (a dead pid)
    const d = vc.vm(VM).disks[1]!;
    const own = await listDisks(s, 'VirtualMachine', vc.vm(PROXY).ref);
    const units = new Set(own.map((x) => x.unitNumber));
    let unit = 0;
    while (units.has(unit) || unit === 7) unit++;
    const spec =
      '<spec><deviceChange><operation>add</operation><device xsi:type="VirtualDisk"><key>-100</key>' +
      `<backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>${xmlEscape(d.fileName)}</fileName><diskMode>independent_nonpersistent</diskMode></backing>` +
      `<controllerKey>${own[0]!.controllerKey}</controllerKey><unitNumber>${unit}</unitNumber><capacityInKB>${d.capacityBytes / 1024}</capacityInKB></device></deviceChange></spec>`;
    await waitTask(
      s,
      xmlText(await soapCall(vc, s, 'ReconfigVM_Task', 'VirtualMachine', vc.vm(PROXY).ref, spec), 'returnval')!,
    );
    mkdirSync(stateDir, { recursive: true });
    const record = join(stateDir, `${createHash('sha256').update(d.fileName).digest('hex').slice(0, 32)}.json`);
    writeFileSync(
      record,
      JSON.stringify({
        host: hostname(),
        pid: 999999999,
        proxy: PROXY,
        fileName: d.fileName,
        at: new Date().toISOString(),
      }),
    );
    assert.equal(readdirSync(byId).length, 1, 'the launcher shows the stale disk in the guest');
    const r = coffer(
      ['backup', '--repo', repo, `${url}/${VM}`, '--insecure-tls', '--json', '--transport', 'hotadd'],
      env,
    );
    const out = expectOk(r);
    assert.match(
      r.stderr,
      /detaching \[vsanDatastore\] DC0_C0_VSAN0\/disk2\.vmdk from DC0_C0_RP0_VM0: left by Coffer process 999999999/,
    );
    assert.equal(existsSync(record), false);
    restoreMatches(out.id);
    await clean();
  });
});
