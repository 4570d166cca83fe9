import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, before, test } from 'node:test';
import {
  addDisk,
  createSnapshot,
  currentDisks,
  diskChangeId,
  downloadDisk,
  expireSessions,
  failNext,
  forgetChangeIds,
  hookState,
  listDisks,
  powerOff,
  powerOn,
  powerState,
  queryAllChangedAreas,
  queryChangedDiskAreas,
  removeSnapshot,
  retrieveProperties,
  setChangeTracking,
  SoapFault,
  startVcsim,
  uploadDisk,
  vcLogin,
  xmlText,
  type ChangedArea,
  type Vcsim,
  type VcSession,
} from './helpers/vcsim.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;
const CHANGE_ID = /^52( [0-9a-f]{2}){7}-[0-9a-f]{2}( [0-9a-f]{2}){7}\/\d+$/;

let vc: Vcsim;
before(async () => {
  // two disks per VM (4 MiB, 2 MiB); at most 1 MiB a QueryChangedDiskAreas reply, so a 4 MiB disk takes 4 calls
  vc = await startVcsim({ diskMiB: [4, 2], cqdaMaxBytes: MiB, vms: 1 });
});
after(async () => {
  await vc?.stop();
});

async function rejectsFault(p: Promise<unknown>, faultType: string, msg?: RegExp): Promise<SoapFault> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof SoapFault, `expected a SoapFault, got ${String(e)}`);
    assert.equal(e.faultType, faultType, e.message);
    if (msg) assert.match(e.faultString, msg);
    return e;
  }
  assert.fail(`expected SOAP fault ${faultType}`);
}

/** Fills blocks with a pattern derived from (block, salt): non-zero everywhere in the block. */
function fillBlock(buf: Buffer, block: number, salt: number): void {
  for (let i = 0; i < BLOCK; i++) buf[block * BLOCK + i] = ((block * 31 + salt * 7 + i) % 251) + 1;
}

test('vcsim: starts on 127.0.0.1 over https with a pinned certificate; login and RetrieveProperties work', async () => {
  assert.match(vc.url, /^https:\/\/127\.0\.0\.1:\d+\/sdk$/);
  assert.match(vc.thumbprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.match(vc.thumbprintSha1, /^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
  const s = await vcLogin(vc);
  const vm = vc.vm('DC0_H0_VM0');
  const xml = await retrieveProperties(s, 'VirtualMachine', vm.ref, ['name']);
  assert.equal(xmlText(xml, 'val'), 'DC0_H0_VM0');
  assert.deepEqual(
    vm.disks.map((d) => d.capacityBytes),
    [4 * MiB, 2 * MiB],
  );
  assert.deepEqual(
    vm.disks.map((d) => d.path),
    ['DC0_H0_VM0/disk1.vmdk', 'DC0_H0_VM0/disk2.vmdk'],
  );
  const live = await listDisks(s, 'VirtualMachine', vm.ref);
  assert.deepEqual(
    live.map((d) => [d.key, d.capacityBytes]),
    vm.disks.map((d) => [d.key, d.capacityBytes]),
  );
  await assert.rejects(vcLogin(vc, 'user', 'wrong'), /InvalidLogin/);
});

test('vcsim: changed block tracking through QueryChangedDiskAreas', async () => {
  const s = await vcLogin(vc);
  const vm = vc.vm('DC0_H0_VM0');
  const [d1, d2] = vm.disks as [(typeof vm.disks)[0], (typeof vm.disks)[0]];

  // without change tracking: FileFault, as vCenter
  await rejectsFault(
    queryChangedDiskAreas(s, vm.ref, undefined, d1.key, 0, '*'),
    'FileFault',
    /change tracking is not enabled/,
  );
  await setChangeTracking(s, vm.ref, true);

  // guest content: blocks 0-1, 17-18 and 56 (block 16 = 1 MiB)
  const content = Buffer.alloc(d1.capacityBytes);
  for (const b of [0, 1, 17, 18, 56]) fillBlock(content, b, 1);
  await uploadDisk(vc, d1, content);
  assert.deepEqual(
    await downloadDisk(vc, d1, { start: 17 * BLOCK, end: 17 * BLOCK + 100 }),
    content.subarray(17 * BLOCK, 17 * BLOCK + 100),
  );

  const s1 = await createSnapshot(s, vm.ref, 'backup-1');
  const c1 = await diskChangeId(s, 'VirtualMachineSnapshot', s1, d1.key);
  assert.match(c1 ?? '', CHANGE_ID);
  assert.equal(await diskChangeId(s, 'VirtualMachine', vm.ref, d1.key), c1, 'the VM carries the new changeId too');
  const c1b = await diskChangeId(s, 'VirtualMachineSnapshot', s1, d2.key);
  assert.match(c1b ?? '', CHANGE_ID);
  assert.notEqual(c1b, c1);

  // "*": the allocated (non-zero) areas, merged, over 4 pages of 1 MiB
  const first = await queryChangedDiskAreas(s, vm.ref, s1, d1.key, 0, '*');
  assert.deepEqual(first, { startOffset: 0, length: MiB, changedArea: [{ start: 0, length: 2 * BLOCK }] });
  const all = await queryAllChangedAreas(s, vm.ref, s1, d1.key, d1.capacityBytes, '*');
  assert.equal(all.calls, 4);
  assert.deepEqual(all.areas, [
    { start: 0, length: 2 * BLOCK },
    { start: 17 * BLOCK, length: 2 * BLOCK },
    { start: 56 * BLOCK, length: BLOCK },
  ] satisfies ChangedArea[]);
  // an unaligned startOffset is honoured (the first area is clipped)
  const mid = await queryChangedDiskAreas(s, vm.ref, s1, d1.key, BLOCK + 4096, '*');
  assert.deepEqual(mid.changedArea[0], { start: BLOCK + 4096, length: BLOCK - 4096 });
  assert.equal(mid.length, MiB);
  // the untouched second disk has nothing allocated
  assert.deepEqual((await queryAllChangedAreas(s, vm.ref, s1, d2.key, d2.capacityBytes, '*')).areas, []);
  // the snapshot's own changeId: nothing changed since
  assert.deepEqual((await queryAllChangedAreas(s, vm.ref, s1, d1.key, d1.capacityBytes, c1!)).areas, []);
  await removeSnapshot(s, s1);

  // the guest rewrites block 1 and block 40 (was zero) and zeroes block 56; block 17 is rewritten with equal bytes
  const next = Buffer.from(content);
  fillBlock(next, 1, 2);
  fillBlock(next, 40, 2);
  next.fill(0, 56 * BLOCK, 57 * BLOCK);
  await uploadDisk(vc, d1, next);
  const s2 = await createSnapshot(s, vm.ref, 'backup-2');
  const c2 = await diskChangeId(s, 'VirtualMachineSnapshot', s2, d1.key);
  assert.match(c2 ?? '', CHANGE_ID);
  assert.notEqual(c2, c1);
  assert.equal(c2!.split('/')[0], c1!.split('/')[0], 'same CBT epoch, next sequence number');
  const since = await queryAllChangedAreas(s, vm.ref, s2, d1.key, d1.capacityBytes, c1!);
  assert.deepEqual(since.areas, [
    { start: BLOCK, length: BLOCK },
    { start: 40 * BLOCK, length: BLOCK },
    { start: 56 * BLOCK, length: BLOCK },
  ]);
  assert.deepEqual((await queryAllChangedAreas(s, vm.ref, s2, d2.key, d2.capacityBytes, c1b!)).areas, []);

  // faults clients must handle by falling back to a full read
  await rejectsFault(
    queryChangedDiskAreas(s, vm.ref, s2, d1.key, 0, '52 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00/1'),
    'InvalidArgument',
    /changeId/,
  );
  await rejectsFault(queryChangedDiskAreas(s, vm.ref, s2, d1.key, 0, 'garbage'), 'InvalidArgument', /changeId/);
  await rejectsFault(queryChangedDiskAreas(s, vm.ref, s2, d1.key, 0, c1b!), 'InvalidArgument', /changeId/); // the other disk's
  await rejectsFault(
    queryChangedDiskAreas(s, vm.ref, s2, d1.key, d1.capacityBytes, '*'),
    'InvalidArgument',
    /startOffset/,
  );
  await rejectsFault(queryChangedDiskAreas(s, vm.ref, s2, 999999, 0, '*'), 'InvalidArgument', /deviceKey/);
  await rejectsFault(queryChangedDiskAreas(s, vm.ref, 'snapshot-none', d1.key, 0, '*'), 'ManagedObjectNotFound');

  // a CBT reset (hook): old changeIds are unknown, "*" still works, the next snapshot starts a new epoch
  assert.deepEqual(await forgetChangeIds(vc, vm.ref), { disks: 2 });
  await rejectsFault(queryChangedDiskAreas(s, vm.ref, s2, d1.key, 0, c1!), 'InvalidArgument', /changeId/);
  assert.equal((await queryAllChangedAreas(s, vm.ref, s2, d1.key, d1.capacityBytes, '*')).areas.length, 3);
  await removeSnapshot(s, s2);
  const s3 = await createSnapshot(s, vm.ref, 'backup-3');
  const c3 = await diskChangeId(s, 'VirtualMachineSnapshot', s3, d1.key);
  assert.match(c3 ?? '', /\/1$/);
  assert.notEqual(c3!.split('/')[0], c1!.split('/')[0]);
  await removeSnapshot(s, s3);

  // disabling change tracking drops the history and QueryChangedDiskAreas faults again
  await setChangeTracking(s, vm.ref, false);
  await rejectsFault(queryChangedDiskAreas(s, vm.ref, undefined, d1.key, 0, c3!), 'FileFault');
  assert.equal(await diskChangeId(s, 'VirtualMachine', vm.ref, d1.key), undefined);
});

test('vcsim: without a snapshot, changes are computed for a powered-off VM only', async () => {
  const s = await vcLogin(vc);
  const vm = vc.vm('DC0_C0_RP0_VM0');
  const d1 = vm.disks[0]!;
  await setChangeTracking(s, vm.ref, true);
  const buf = Buffer.alloc(d1.capacityBytes);
  fillBlock(buf, 3, 9);
  await uploadDisk(vc, d1, buf);
  assert.equal(await powerState(s, vm.ref), 'poweredOn'); // the model starts VMs powered on
  await rejectsFault(queryChangedDiskAreas(s, vm.ref, undefined, d1.key, 0, '*'), 'FileFault', /snapshot/);
  await powerOff(s, vm.ref);
  assert.equal(await powerState(s, vm.ref), 'poweredOff');
  assert.deepEqual((await queryAllChangedAreas(s, vm.ref, undefined, d1.key, d1.capacityBytes, '*')).areas, [
    { start: 3 * BLOCK, length: BLOCK },
  ]);
  await powerOn(s, vm.ref);
  assert.equal(await powerState(s, vm.ref), 'poweredOn');
});

test('vcsim hooks: failed snapshot tasks, failed removal, expired sessions', async () => {
  const s: VcSession = await vcLogin(vc);
  const vm = vc.vm('DC0_H0_VM0');

  await failNext(vc, 'CreateSnapshot_Task', { fault: 'FileFault', message: 'disk locked' });
  assert.equal(((await hookState(vc)).failures as unknown[]).length, 1);
  await rejectsFault(createSnapshot(s, vm.ref, 'x'), 'FileFault', /disk locked/);
  const snap = await createSnapshot(s, vm.ref, 'y'); // only the next call failed
  await failNext(vc, 'RemoveSnapshot_Task', { this: snap });
  await rejectsFault(removeSnapshot(s, snap), 'SystemError', /injected/);
  await removeSnapshot(s, snap);

  // a non-task method gets a SOAP fault
  await failNext(vc, 'RetrieveProperties', { fault: 'InvalidState' });
  await rejectsFault(retrieveProperties(s, 'VirtualMachine', vm.ref, ['name']), 'InvalidState');
  await assert.rejects(failNext(vc, 'X', { fault: 'NoSuchFault' }), /unknown vim25 type/);

  // faults of the transport, which the simulator cannot produce: a dropped connection, a 503 page, broken XML, a delay
  await failNext(vc, 'RetrieveProperties', { mode: 'drop' });
  await assert.rejects(
    retrieveProperties(s, 'VirtualMachine', vm.ref, ['name']),
    (e: Error) => !(e instanceof SoapFault) && /socket hang up|ECONNRESET/.test(e.message),
  );
  await failNext(vc, 'QueryChangedDiskAreas', { mode: 'http503' });
  await rejectsFault(queryChangedDiskAreas(s, vm.ref, undefined, vm.disks[0]!.key, 0, '*'), 'HTTP 503');
  await failNext(vc, 'RetrieveProperties', { mode: 'garbage' });
  assert.match(await retrieveProperties(s, 'VirtualMachine', vm.ref, ['name']), /<unterminated$/);
  await failNext(vc, 'RetrieveProperties', { mode: 'delay', delayMs: 300 });
  const t0 = Date.now();
  assert.equal(xmlText(await retrieveProperties(s, 'VirtualMachine', vm.ref, ['name']), 'val'), 'DC0_H0_VM0');
  assert.ok(Date.now() - t0 >= 290);
  await failNext(vc, 'QueryChangedDiskAreas', { fault: 'FileFault', message: 'change tracking failed' });
  await rejectsFault(
    queryChangedDiskAreas(s, vm.ref, undefined, vm.disks[0]!.key, 0, '*'),
    'FileFault',
    /change tracking failed/,
  );
  assert.deepEqual((await hookState(vc)).failures, []);

  await expireSessions(vc);
  await rejectsFault(retrieveProperties(s, 'VirtualMachine', vm.ref, ['name']), 'NotAuthenticated');
  await rejectsFault(queryChangedDiskAreas(s, vm.ref, undefined, vm.disks[0]!.key, 0, '*'), 'NotAuthenticated');
  const again = await vcLogin(vc);
  assert.equal(xmlText(await retrieveProperties(again, 'VirtualMachine', vm.ref, ['name']), 'val'), 'DC0_H0_VM0');
});

test('vcsim: a disk added through ReconfigVM_Task is tracked too', async () => {
  const s = await vcLogin(vc);
  const vm = vc.vm('DC0_C0_RP0_VM0');
  const disk = await addDisk(s, vm.ref, 3 * MiB);
  assert.equal(disk.capacityBytes, 3 * MiB);
  const live = await listDisks(s, 'VirtualMachine', vm.ref);
  assert.equal(live.length, 3);
  assert.equal(live.find((d) => d.key === disk.key)?.capacityBytes, 3 * MiB);
  const buf = Buffer.alloc(11 * BLOCK); // shorter than the disk (48 blocks): the launcher pads the file back to the capacity
  fillBlock(buf, 10, 3);
  await uploadDisk(vc, disk, buf);
  assert.equal(statSync(disk.dataLocalPath).size, 3 * MiB);
  assert.deepEqual(await downloadDisk(vc, disk, { start: 3 * MiB - 16, end: 3 * MiB }), Buffer.alloc(16));
  await setChangeTracking(s, vm.ref, true);
  const snap = await createSnapshot(s, vm.ref, 'with-added-disk');
  assert.match((await diskChangeId(s, 'VirtualMachineSnapshot', snap, disk.key)) ?? '', CHANGE_ID);
  assert.deepEqual((await queryAllChangedAreas(s, vm.ref, snap, disk.key, disk.capacityBytes, '*')).areas, [
    { start: 10 * BLOCK, length: BLOCK },
  ]);
  // a child snapshot removed together with its parent is gone for QueryChangedDiskAreas too
  const child = await createSnapshot(s, vm.ref, 'child');
  await queryChangedDiskAreas(s, vm.ref, child, disk.key, 0, '*');
  await removeSnapshot(s, snap, true);
  await rejectsFault(queryChangedDiskAreas(s, vm.ref, child, disk.key, 0, '*'), 'ManagedObjectNotFound');
  await rejectsFault(queryChangedDiskAreas(s, vm.ref, snap, disk.key, 0, '*'), 'ManagedObjectNotFound');
});

test('vcsim: folderAuth makes /folder require a session or Basic credentials, as vCenter', async () => {
  const guarded = await startVcsim({ folderAuth: true, vms: 1, clusters: 0 }); // the default 1 MiB disk
  try {
    assert.equal(guarded.folderAuth, true);
    // every disk file is as long as its disk from the start (vcsim's own are empty files)
    assert.equal(statSync(guarded.vm('DC0_H0_VM0').disks[0]!.dataLocalPath).size, MiB);
    const disk = guarded.vm('DC0_H0_VM0').disks[0]!;
    await assert.rejects(downloadDisk(guarded, disk, { start: 0, end: 16 }, 'none'), /HTTP 401/);
    await assert.rejects(
      downloadDisk(guarded, disk, { start: 0, end: 16 }, { vc: guarded, cookie: 'forged' }),
      /HTTP 401/,
    );
    assert.equal((await downloadDisk(guarded, disk, { start: 0, end: 16 })).length, 16); // Basic by default
    const s = await vcLogin(guarded);
    await uploadDisk(guarded, disk, Buffer.alloc(MiB, 1), s);
    assert.deepEqual(await downloadDisk(guarded, disk, { start: 100, end: 104 }, s), Buffer.alloc(4, 1));
    await expireSessions(guarded);
    await assert.rejects(downloadDisk(guarded, disk, { start: 0, end: 16 }, s), /HTTP 401/);
  } finally {
    await guarded.stop();
  }
});

test('vcsim: removing snapshots never deletes the disk the VM runs on (works around a vcsim bug)', async () => {
  // a simulator of its own: whether vcsim's bug strikes depends on earlier snapshot operations
  const fresh = await startVcsim({ vms: 1, clusters: 0, diskMiB: [1, 1] });
  try {
    const s = await vcLogin(fresh);
    const vm = fresh.vm('DC0_H0_VM0');
    const d1 = vm.disks[0]!;
    const data = Buffer.alloc(d1.capacityBytes);
    fillBlock(data, 5, 5);
    await uploadDisk(fresh, d1, data);
    // vcsim alone deletes disk1.vmdk at the second removal
    const a = await createSnapshot(s, vm.ref, 'a');
    const b = await createSnapshot(s, vm.ref, 'b');
    await removeSnapshot(s, b);
    await removeSnapshot(s, a);
    assert.equal(statSync(d1.dataLocalPath).size, d1.capacityBytes);
    assert.deepEqual(
      await downloadDisk(fresh, d1, { start: 5 * BLOCK, end: 6 * BLOCK }),
      data.subarray(5 * BLOCK, 6 * BLOCK),
    );
  } finally {
    await fresh.stop();
  }
});

test('vcsim deltaDisks: snapshots freeze disk content; removal consolidates as vSphere', async () => {
  const sim = await startVcsim({ vms: 1, clusters: 0, diskMiB: [2], deltaDisks: true });
  try {
    assert.equal(sim.deltaDisks, true);
    const s = await vcLogin(sim);
    const vm = sim.vm('DC0_H0_VM0');
    const key = vm.disks[0]!.key;
    await setChangeTracking(s, vm.ref, true);
    const A = Buffer.alloc(2 * MiB);
    fillBlock(A, 0, 1);
    fillBlock(A, 9, 1);
    await uploadDisk(sim, vm.disks[0]!, A);

    const s1 = await createSnapshot(s, vm.ref, 's1');
    const [snap1] = await currentDisks(s, 'VirtualMachineSnapshot', s1);
    let [cur] = await currentDisks(s, 'VirtualMachine', vm.ref);
    assert.equal(snap1!.fileName, '[LocalDS_0] DC0_H0_VM0/disk1.vmdk');
    assert.equal(cur!.fileName, '[LocalDS_0] DC0_H0_VM0/disk1-000001.vmdk');
    assert.equal(cur!.parentFileName, snap1!.fileName);
    assert.equal(cur!.changeId, snap1!.changeId);

    // the guest writes after the snapshot: the snapshot's disk does not change
    const B = Buffer.from(A);
    fillBlock(B, 9, 2);
    fillBlock(B, 20, 2);
    await uploadDisk(sim, cur!, B);
    assert.deepEqual(await downloadDisk(sim, snap1!), A);
    assert.deepEqual(await downloadDisk(sim, cur!), B);

    const s2 = await createSnapshot(s, vm.ref, 's2');
    const [snap2] = await currentDisks(s, 'VirtualMachineSnapshot', s2);
    [cur] = await currentDisks(s, 'VirtualMachine', vm.ref);
    assert.equal(snap2!.fileName, '[LocalDS_0] DC0_H0_VM0/disk1-000001.vmdk');
    assert.equal(cur!.fileName, '[LocalDS_0] DC0_H0_VM0/disk1-000002.vmdk');
    const since = await queryAllChangedAreas(s, vm.ref, s2, key, 2 * MiB, snap1!.changeId!);
    assert.deepEqual(since.areas, [
      { start: 9 * BLOCK, length: BLOCK },
      { start: 20 * BLOCK, length: BLOCK },
    ]);
    const C = Buffer.from(B);
    fillBlock(C, 30, 3);
    await uploadDisk(sim, cur!, C);

    // removing the older snapshot: s2 keeps its content (now in disk1.vmdk), the VM keeps writing to its delta
    await removeSnapshot(s, s1);
    const [snap2b] = await currentDisks(s, 'VirtualMachineSnapshot', s2);
    [cur] = await currentDisks(s, 'VirtualMachine', vm.ref);
    assert.equal(snap2b!.fileName, '[LocalDS_0] DC0_H0_VM0/disk1.vmdk');
    assert.deepEqual(await downloadDisk(sim, snap2b!), B);
    assert.equal(cur!.fileName, '[LocalDS_0] DC0_H0_VM0/disk1-000002.vmdk');
    assert.equal(cur!.parentFileName, '[LocalDS_0] DC0_H0_VM0/disk1.vmdk');
    assert.deepEqual(await downloadDisk(sim, cur!), C);

    // removing the last snapshot: the VM is back on disk1.vmdk with everything written since
    await removeSnapshot(s, s2);
    [cur] = await currentDisks(s, 'VirtualMachine', vm.ref);
    assert.equal(cur!.fileName, '[LocalDS_0] DC0_H0_VM0/disk1.vmdk');
    assert.equal(cur!.parentFileName, undefined);
    assert.deepEqual(await downloadDisk(sim, cur!), C);
    assert.throws(() => statSync(cur!.localPath.replace('disk1.vmdk', 'disk1-000001.vmdk')));
    assert.throws(() => statSync(cur!.localPath.replace('disk1.vmdk', 'disk1-000002.vmdk')));

    // a parent removed with its children (removeChildren): the VM ends on the base file with its latest content
    const s3 = await createSnapshot(s, vm.ref, 's3');
    [cur] = await currentDisks(s, 'VirtualMachine', vm.ref);
    const D = Buffer.from(C);
    fillBlock(D, 31, 4);
    await uploadDisk(sim, cur!, D);
    await createSnapshot(s, vm.ref, 's4');
    await removeSnapshot(s, s3, true);
    [cur] = await currentDisks(s, 'VirtualMachine', vm.ref);
    assert.equal(cur!.fileName, '[LocalDS_0] DC0_H0_VM0/disk1.vmdk');
    assert.deepEqual(await downloadDisk(sim, cur!), D);
  } finally {
    await sim.stop();
  }
});
