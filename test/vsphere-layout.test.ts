// The realistic datastore layout (issue 14): every disk is a text descriptor + a data file (-flat.vmdk on VMFS, a
// vsan:// object on vsanDatastore, -rdm(p).vmdk for RDMs). Coffer follows descriptors as ESXi does and never backs
// up what it did not read: an unrecognised .vmdk, a missing extent, a short flat file or a vSAN disk over HTTP is a
// coded error, with the snapshot removed and no restore point.
import assert from 'node:assert/strict';
import { readFileSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { assertNoStack, expectError, expectOk, makeGuestDisk } from './helpers/more-cli.js';
import {
  createSnapshot,
  downloadDisk,
  listSnapshots,
  setChangeTracking,
  startVcsim,
  uploadDisk,
  vcLogin,
  vcRequest,
  type Vcsim,
  type VcSession,
} from './helpers/vsphere.js';

describe('vSphere disk layout (vcsim with descriptors, vSAN, RDMs)', () => {
  const tmp = tempDir('coffer-vsphere-layout-');
  const repo = join(tmp.path, 'repo');
  let vc: Vcsim;
  let s: VcSession;
  let env: Record<string, string>;
  let url: string;
  const points = () => expectOk(coffer(['list', '--repo', repo, '--json'])).length as number;
  const backup = (vm: string, ...extra: string[]) =>
    coffer(['backup', '--repo', repo, `${url}/${vm}`, '--insecure-tls', '--json', ...extra], env);
  const noSnapshots = async (vm: string) =>
    assert.deepEqual(await listSnapshots(s, vc.vm(vm).ref), [], `a snapshot was left on ${vm}`);

  before(async () => {
    vc = await startVcsim({ diskMiB: [2, 1], folderAuth: true });
    s = await vcLogin(vc);
    env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    url = `vsphere://${vc.host}:${vc.port}`;
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
  });
  after(async () => {
    await vc?.stop();
    tmp.cleanup();
  });

  test('the simulator lays disks out as vSphere does', async () => {
    const d = vc.vm('DC0_H0_VM0').disks[0]!;
    const text = readFileSync(d.localPath, 'utf8');
    assert.match(text, /^# Disk DescriptorFile/);
    assert.match(text, /^RW 4096 VMFS "disk1-flat\.vmdk"$/m);
    assert.equal(d.dataPath, 'DC0_H0_VM0/disk1-flat.vmdk');
    const v = vc.vm('DC0_C0_VSAN0').disks[0]!;
    assert.match(readFileSync(v.localPath, 'utf8'), /^RW \d+ VMFS "vsan:\/\/[0-9a-f-]+"$/m);
    assert.equal(v.dataPath, undefined);
    assert.equal(vc.datastores.find((x) => x.name === 'vsanDatastore')?.type, 'vsan');
    // /folder has no -flat.vmdk for a vSAN disk
    const flat = v.path.replace(/\.vmdk$/, '-flat.vmdk');
    const r = await vcRequest(vc, 'GET', `/folder/${flat}?dcPath=DC0&dsName=vsanDatastore`, {
      headers: { authorization: `Basic ${Buffer.from(`${vc.username}:${vc.password}`).toString('base64')}` },
    });
    assert.equal(r.status, 404);
    const layout = vc.vm('DC0_H0_LAYOUT0').disks;
    assert.deepEqual(
      layout.map((x) => [x.backing, x.diskMode]),
      [
        ['flat', 'persistent'],
        ['flat', 'persistent'],
        ['flat', 'independent_persistent'],
        ['rdm-virtual', 'persistent'],
        ['rdm-physical', 'independent_persistent'],
      ],
    );
  });

  test('a VMFS disk is read through its descriptor, byte for byte; an absolute extent path is followed too', async () => {
    const VM = 'DC0_H0_VM1';
    const images = vc.vm(VM).disks.map((d, i) => {
      const img = join(tmp.path, `vmfs${i}.raw`);
      makeGuestDisk(img, d.capacityBytes, `layout-${i}`);
      return readFileSync(img);
    });
    for (const [i, d] of vc.vm(VM).disks.entries()) await uploadDisk(vc, d, images[i]!);
    // disk 2's descriptor names its extent by absolute path, as ESXi may write it
    const d1 = vc.vm(VM).disks[1]!;
    writeFileSync(
      d1.localPath,
      readFileSync(d1.localPath, 'utf8').replace(
        '"disk2-flat.vmdk"',
        `"/vmfs/volumes/LocalDS_0/${VM}/disk2-flat.vmdk"`,
      ),
    );
    const r = expectOk(backup(VM));
    for (const [i, img] of images.entries()) {
      const out = join(tmp.path, `vmfs-r${i}.raw`);
      expectOk(coffer(['restore', '--repo', repo, r.id, '--disk', String(i), '--target', out, '--json']));
      assert.ok(readFileSync(out).equals(img), `disk ${i} differs`);
    }
    await noSnapshots(VM);
  });

  test('a vSAN disk over http: VSPHERE_TRANSPORT naming hot-add and VDDK, no restore point, no snapshot', async () => {
    const before = points();
    const r = backup('DC0_C0_VSAN0', '--transport', 'http');
    const e = expectError(r, 28, 'VSPHERE_TRANSPORT');
    assert.match(e.message, /vSAN/);
    assert.match(e.hint ?? '', /hotadd/);
    assert.match(e.hint ?? '', /nbd/);
    assertNoStack(r);
    assert.equal(points(), before);
    await noSnapshots('DC0_C0_VSAN0');
  });

  test('an empty descriptor beside a full flat file: VSPHERE_DISK_LAYOUT, not a backup of zeros', async () => {
    const VM = 'DC0_C0_RP0_VM1';
    await setChangeTracking(s, vc.vm(VM).ref, true); // (a reconfiguration: the launcher would repair the layout)
    const d = vc.vm(VM).disks[0]!;
    await uploadDisk(vc, d, Buffer.alloc(d.capacityBytes, 7));
    const saved = readFileSync(d.localPath);
    writeFileSync(d.localPath, '');
    const before = points();
    try {
      const r = backup(VM);
      const e = expectError(r, 27, 'VSPHERE_DISK_LAYOUT');
      assert.match(e.message, /neither a VMDK descriptor nor a known sparse header/);
      assertNoStack(r);
      assert.equal(points(), before);
      await noSnapshots(VM);
      // garbage that is not a descriptor either
      writeFileSync(d.localPath, Buffer.alloc(4096, 0x41));
      expectError(backup(VM), 27, 'VSPHERE_DISK_LAYOUT');
      assert.equal(points(), before);
    } finally {
      writeFileSync(d.localPath, saved);
    }
  });

  test('a missing extent and a short flat file: VSPHERE_DISK_LAYOUT, no restore point, no snapshot', async () => {
    const VM = 'DC0_C0_RP0_VM1';
    const d = vc.vm(VM).disks[1]!;
    const data = readFileSync(d.dataLocalPath);
    const before = points();
    try {
      truncateSync(d.dataLocalPath, d.capacityBytes - 65536);
      let e = expectError(backup(VM), 27, 'VSPHERE_DISK_LAYOUT');
      assert.match(e.message, /refusing to back up bytes that were not read/);
      unlinkSync(d.dataLocalPath);
      e = expectError(backup(VM), 27, 'VSPHERE_DISK_LAYOUT');
      assert.match(e.message, /cannot be found/);
      assert.equal(points(), before);
      await noSnapshots(VM);
    } finally {
      writeFileSync(d.dataLocalPath, data);
    }
    // repaired: the backup works again
    expectOk(backup(VM));
    assert.ok((await downloadDisk(vc, d, { start: 0, end: 16 })).length === 16);
  });

  test('independent and physical-mode RDM disks are skipped with a warning; a virtual RDM is not readable over http', async () => {
    const r = backup('DC0_H0_LAYOUT0', '--transport', 'http');
    const e = expectError(r, 28, 'VSPHERE_TRANSPORT');
    assert.match(e.message, /raw device mapping/);
    assert.match(r.stderr, /skipping disk .*independent\.vmdk.*independent disk/);
    assert.match(r.stderr, /skipping disk .*rdm-physical\.vmdk.*physical-mode RDM/);
    await noSnapshots('DC0_H0_LAYOUT0');
  });
});

describe('vSphere snapshot ownership (vcsim)', () => {
  const tmp = tempDir('coffer-vsphere-owner-');
  const repo = join(tmp.path, 'repo');
  let vc: Vcsim;
  let s: VcSession;
  const VM = 'DC0_H0_VM0';
  before(async () => {
    vc = await startVcsim({ diskMiB: [1], layoutVms: false });
    s = await vcLogin(vc);
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
  });
  after(async () => {
    await vc?.stop();
    tmp.cleanup();
  });

  test("a running backup's snapshot is left alone; a dead process's one is removed; ours carries an owner line", async () => {
    const started = new Date().toISOString();
    const live = `coffer-owner: host=${encodeURIComponent(hostname())} pid=${process.pid} job=other started=${started} lease-s=3600`;
    const dead = `coffer-owner: host=${encodeURIComponent(hostname())} pid=999999999 job=gone started=${started} lease-s=3600`;
    await createSnapshot(s, vc.vm(VM).ref, 'coffer-live', { description: live });
    await createSnapshot(s, vc.vm(VM).ref, 'coffer-dead', { description: dead });
    const env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    const r = coffer(
      ['backup', '--repo', repo, `vsphere://${vc.host}:${vc.port}/${VM}`, '--insecure-tls', '--json'],
      env,
    );
    const out = expectOk(r);
    assert.deepEqual(out.vsphere.orphanedSnapshotsRemoved, ['coffer-dead']);
    assert.match(r.stderr, /leaving Coffer snapshot coffer-live alone/);
    assert.deepEqual(await listSnapshots(s, vc.vm(VM).ref), ['coffer-live']);
  });
});
