// Backup of a vSphere VM against the real vCenter simulator (vcsim from Debian's govmomi with Coffer's CBT emulation):
// full backup of a VM with 2 disks holding guest content, changed blocks, CBT incremental, snapshot lifecycle.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { prng } from './helpers/disks.js';
import { expectOk, makeGuestDisk } from './helpers/more-cli.js';
import {
  createSnapshot,
  listSnapshots,
  uploadDisk,
  vcLogin,
  type Vcsim,
  type VcSession,
  startVcsim,
} from './helpers/vsphere.js';

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;

describe('coffer backup vsphere://HOST/VM (vcsim)', () => {
  const tmp = tempDir('coffer-vsphere-backup-');
  const repo = join(tmp.path, 'repo');
  let vc: Vcsim;
  let session: VcSession;
  let env: Record<string, string>;
  let url: string;
  const VM = 'DC0_H0_VM0';
  const images: Buffer[] = [];
  let fullResult: any;

  before(async () => {
    vc = await startVcsim({ diskMiB: [4, 6], folderAuth: true });
    session = await vcLogin(vc);
    env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    url = `vsphere://${vc.host}:${vc.port}`;
    // guest content: a guest-like disk (random, text, holes) per disk, uploaded through /folder like any client would
    for (const [i, d] of vc.vm(VM).disks.entries()) {
      const img = join(tmp.path, `src${i}.raw`);
      makeGuestDisk(img, d.capacityBytes, `vsphere-${i}`);
      images.push(readFileSync(img));
      await uploadDisk(vc, d, images[i]!);
    }
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
  });
  after(async () => {
    await vc?.stop();
    tmp.cleanup();
  });

  const restoreAndCompare = (id: string, expected: Buffer[]) => {
    for (const [i, img] of expected.entries()) {
      const out = join(tmp.path, `restored-${id.slice(0, 8)}-${i}.raw`);
      expectOk(coffer(['restore', '--repo', repo, id, '--disk', String(i), '--target', out, '--force', '--json']));
      assert.ok(readFileSync(out).equals(img), `disk ${i} of ${id} differs from the VM's disk`);
    }
  };

  test('full backup: one restore point with both disks in device order, CBT turned on, snapshot removed', async () => {
    const r = expectOk(
      coffer(['backup', '--repo', repo, `${url}/${VM}`, '--thumbprint', vc.thumbprint, '--json'], env),
    );
    fullResult = r;
    assert.equal(r.vm, VM);
    assert.equal(r.mode, 'full');
    assert.equal(r.disks.length, 2);
    assert.deepEqual(
      r.disks.map((d: any) => d.sizeBytes),
      vc.vm(VM).disks.map((d) => d.capacityBytes),
    );
    assert.equal(r.vsphere.cbtEnabledNow, true);
    assert.equal(r.vsphere.snapshotRemoved, true);
    assert.match(r.vsphere.snapshot, /^coffer-[0-9a-f-]{36}$/);
    assert.equal(r.vsphere.transport, 'http');
    for (const d of r.disks) assert.ok(d.changeToken, 'each disk has a changeId from the snapshot');
    // the allocated-areas query ("*") let the full backup skip the holes of the guest disks
    assert.ok(
      r.bytesRead < vc.vm(VM).disks.reduce((a, d) => a + d.capacityBytes, 0),
      `read ${r.bytesRead}: holes were not skipped`,
    );
    assert.deepEqual(await listSnapshots(session, vc.vm(VM).ref), [], 'no snapshot left on the VM');
    restoreAndCompare(r.id, images);
    const m = expectOk(coffer(['show', '--repo', repo, r.id, '--json']));
    assert.equal(m.vm.id, vc.vm(VM).ref);
    assert.deepEqual(m.consistency, { snapshot: true, quiesced: false });
    assert.equal(m.vmConfig.kind, 'vsphere-vm');
    assert.equal(m.vmConfig.name, VM);
    assert.deepEqual(
      m.vmConfig.disks.map((d: any) => d.key),
      vc.vm(VM).disks.map((d) => d.key),
    );
    assert.ok(m.vmConfig.controllers.length > 0);
    assert.ok(m.vmConfig.numCPU >= 1 && m.vmConfig.memoryMB >= 1);
    assert.deepEqual(
      m.disks.map((d: any) => d.changeToken),
      r.disks.map((d: any) => d.changeToken),
    );
  });

  test('incremental: only the changed areas are read (CBT), the result restores byte for byte', async () => {
    assert.ok(fullResult, 'needs the full backup');
    // change 3 blocks on disk 0 and 1 block on disk 1 (64 KiB each, the CBT granularity)
    const changes: [number, number][] = [
      [0, 0],
      [0, 17 * CHUNK],
      [0, 40 * CHUNK + 5],
      [1, 3 * MiB],
    ];
    for (const [disk, off] of changes) prng(`change-${disk}-${off}`, 1000).copy(images[disk]!, off);
    for (const [i, d] of vc.vm(VM).disks.entries()) await uploadDisk(vc, d, images[i]!);
    const r = expectOk(
      coffer(['backup', '--repo', repo, `${url}/${VM}`, '--thumbprint', vc.thumbprint, '--json'], env),
    );
    assert.equal(r.mode, 'incremental');
    assert.equal(r.parent, fullResult.id);
    assert.equal(r.vsphere.cbtEnabledNow, false);
    assert.deepEqual(
      r.disks.map((d: any) => d.mode),
      ['incremental', 'incremental'],
    );
    // exactly the changed chunks were read: 3 on disk 0, 1 on disk 1
    assert.deepEqual(
      r.disks.map((d: any) => d.bytesRead),
      [3 * CHUNK, CHUNK],
    );
    assert.deepEqual(
      r.disks.map((d: any) => d.changedBytes),
      [3 * CHUNK, CHUNK],
    );
    assert.notDeepEqual(
      r.disks.map((d: any) => d.changeToken),
      fullResult.disks.map((d: any) => d.changeToken),
    );
    assert.deepEqual(await listSnapshots(session, vc.vm(VM).ref), []);
    restoreAndCompare(r.id, images);
    // nothing changed: an incremental that reads nothing
    const idle = expectOk(
      coffer(['backup', '--repo', repo, `${url}/${VM}`, '--thumbprint', vc.thumbprint, '--json'], env),
    );
    assert.equal(idle.mode, 'incremental');
    assert.equal(idle.bytesRead, 0);
    restoreAndCompare(idle.id, images);
  });

  test('an orphaned coffer snapshot (a killed backup) is removed by the next backup', async () => {
    const vmRef = vc.vm(VM).ref;
    await createSnapshot(session, vmRef, 'coffer-00000000-dead-beef-0000-000000000000');
    const r = expectOk(coffer(['backup', '--repo', repo, `${url}/${VM}`, '--insecure-tls', '--json'], env));
    assert.deepEqual(r.vsphere.orphanedSnapshotsRemoved, ['coffer-00000000-dead-beef-0000-000000000000']);
    assert.deepEqual(await listSnapshots(session, vmRef), []);
    restoreAndCompare(r.id, images);
  });

  test('human output names the VM, the snapshot and its removal; --vm overrides the restore point group', () => {
    const r = coffer(
      ['backup', '--repo', repo, `${url}/${vc.vm(VM).ref}`, '--insecure-tls', '--vm', 'renamed', '-q'],
      env,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /restore point [0-9a-f]{32} of VM renamed \(full\)/);
    assert.match(r.stdout, /snapshot coffer-[0-9a-f-]+ crash-consistent, removed/);
  });
});
