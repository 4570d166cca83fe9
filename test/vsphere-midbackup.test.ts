// Things that happen to a VM while Coffer reads it (issue 14), against vcsim-coffer: the launcher's /_coffer/pause
// holds one datastore read (GET /folder) until /_coffer/resume, so the test can act in the middle of a backup without
// timing: someone removes Coffer's snapshot (the backup must fail with VSPHERE_CAPTURE_LOST, exit 31, and make no
// restore point - vcsim keeps serving the files, so only Coffer's check before the commit can notice), or vMotions
// the VM to another host (the backup completes, correct, and says so). Also: leftover snapshots cleaned by the next
// run, and ConsolidateVMDisks when vCenter reports consolidationNeeded (modelled by the launcher, check.go).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, cofferAsync, tempDir } from './helpers/cli.js';
import { expectError, expectOk, makeGuestDisk } from './helpers/more-cli.js';
import {
  failNext,
  listSnapshots,
  retrieveProperties,
  soapCall,
  startVcsim,
  uploadDisk,
  vcLogin,
  vcRequest,
  waitTask,
  xmlAll,
  xmlText,
  type Vcsim,
  type VcSession,
} from './helpers/vsphere.js';

async function hook(vc: Vcsim, path: string, method = 'POST'): Promise<any> {
  const r = await vcRequest(vc, method, `/_coffer/${path}`);
  assert.equal(r.status, 200, r.body.toString());
  return JSON.parse(r.body.toString());
}

/** Waits until the launcher holds the paused call (bounded polling; no timing assertion). */
async function held(vc: Vcsim): Promise<void> {
  for (let i = 0; i < 2400; i++) {
    if ((await hook(vc, 'state', 'GET')).check.held > 0) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('the paused call never arrived');
}

describe('vSphere: snapshot removed and vMotion mid-backup, leftovers, consolidation (vcsim)', () => {
  const tmp = tempDir('coffer-vsphere-midbackup-');
  const repo = join(tmp.path, 'repo');
  let vc: Vcsim;
  let session: VcSession;
  let env: Record<string, string>;
  const VM = 'DC0_C0_RP0_VM0';
  let vmRef = '';
  let image: Buffer;
  const args = (...extra: string[]) => [
    'backup',
    '--repo',
    repo,
    `vsphere://${vc.host}:${vc.port}/${VM}`,
    '--insecure-tls',
    '--json',
    '--transport',
    'http',
    ...extra,
  ];
  const points = () => expectOk(coffer(['list', '--repo', repo, '--json'])).length as number;
  const restored = (id: string) => {
    const out = join(tmp.path, `r-${id.slice(0, 8)}.raw`);
    expectOk(coffer(['restore', '--repo', repo, id, '--disk', '0', '--target', out, '--force', '--json']));
    return readFileSync(out);
  };
  const snapshotRefs = async () =>
    [
      ...(await retrieveProperties(session, 'VirtualMachine', vmRef, ['snapshot'])).matchAll(
        /<snapshot type="VirtualMachineSnapshot">([^<]+)<\/snapshot>/g,
      ),
    ].map((m) => m[1]!);

  before(async () => {
    vc = await startVcsim({ diskMiB: [2], vms: 1, layoutVms: false });
    session = await vcLogin(vc);
    vmRef = vc.vm(VM).ref;
    env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    const img = join(tmp.path, 'src.raw');
    makeGuestDisk(img, vc.vm(VM).disks[0]!.capacityBytes, 'midbackup');
    image = readFileSync(img);
    await uploadDisk(vc, vc.vm(VM).disks[0]!, image);
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
  });
  after(async () => {
    await hook(vc, 'resume').catch(() => undefined);
    await vc?.stop();
    tmp.cleanup();
  });

  test('the snapshot removed by someone else mid-read: VSPHERE_CAPTURE_LOST (exit 31), no restore point', async () => {
    const before = points();
    // open reads the descriptor and probes the extent (2 GETs); the third GET is the first data read
    await hook(vc, 'pause?method=GET%20/folder&skip=2');
    const run = cofferAsync(args(), env);
    await held(vc);
    const [snap] = await snapshotRefs();
    assert.ok(snap, 'the backup has its snapshot');
    const t = await soapCall(
      vc,
      session,
      'RemoveSnapshot_Task',
      'VirtualMachineSnapshot',
      snap,
      '<removeChildren>false</removeChildren>',
    );
    await waitTask(session, xmlText(t, 'returnval')!);
    await hook(vc, 'resume');
    const e = expectError(await run.done, 31, 'VSPHERE_CAPTURE_LOST');
    assert.match(e.message, /was removed by someone else/);
    assert.equal(points(), before, 'no restore point');
    assert.deepEqual(await listSnapshots(session, vmRef), []);
  });

  test('vMotion to another host mid-read: the backup completes, correct, and reports the move', async () => {
    const hostNow = xmlText(await retrieveProperties(session, 'VirtualMachine', vmRef, ['runtime.host']), 'val')!;
    const cluster = xmlText(await retrieveProperties(session, 'HostSystem', hostNow, ['parent']), 'val')!;
    const hosts = xmlAll(
      await retrieveProperties(session, 'ClusterComputeResource', cluster, ['host']),
      'ManagedObjectReference',
    );
    const other = hosts.find((h) => h !== hostNow);
    assert.ok(other, 'a second host in the cluster');
    await hook(vc, 'pause?method=GET%20/folder&skip=2');
    const run = cofferAsync(args(), env);
    await held(vc);
    const t = await soapCall(
      vc,
      session,
      'RelocateVM_Task',
      'VirtualMachine',
      vmRef,
      `<spec><host type="HostSystem">${other}</host></spec>`,
    );
    await waitTask(session, xmlText(t, 'returnval')!);
    await hook(vc, 'resume');
    const r = await run.done;
    const out = expectOk(r);
    assert.match(r.stderr, /moved from host .* during the backup \(vMotion\)/);
    assert.ok(restored(out.id).equals(image), 'the restore point holds the disk');
    assert.equal(xmlText(await retrieveProperties(session, 'VirtualMachine', vmRef, ['runtime.host']), 'val'), other);
    assert.deepEqual(await listSnapshots(session, vmRef), []);
  });

  test('a snapshot that could not be removed is cleaned by the next run', async () => {
    await failNext(vc, 'RemoveSnapshot_Task', { count: 3, fault: 'TaskInProgress' });
    const first = expectOk(coffer(args(), env));
    assert.equal(first.vsphere.snapshotRemoved, false);
    const left = await listSnapshots(session, vmRef);
    assert.equal(left.length, 1);
    const next = expectOk(coffer(args(), env));
    assert.deepEqual(next.vsphere.orphanedSnapshotsRemoved, left);
    assert.equal(next.vsphere.snapshotRemoved, true);
    assert.deepEqual(await listSnapshots(session, vmRef), []);
    assert.ok(restored(next.id).equals(image));
  });

  test('consolidationNeeded after the snapshot removal: ConsolidateVMDisks runs; also before a backup', async () => {
    const c0 = (await hook(vc, 'state', 'GET')).check.consolidations as number;
    await hook(vc, `consolidation-needed?vm=${vmRef}&onRemove=1`);
    const out = expectOk(coffer(args(), env));
    assert.equal(out.vsphere.consolidated, true);
    assert.equal((await hook(vc, 'state', 'GET')).check.consolidations, c0 + 1);
    assert.doesNotMatch(
      await retrieveProperties(session, 'VirtualMachine', vmRef, ['runtime']),
      /<consolidationNeeded>true</,
    );
    // left over from something else: consolidated before the snapshot is taken
    await hook(vc, `consolidation-needed?vm=${vmRef}`);
    const r = coffer(args(), env);
    const again = expectOk(r);
    assert.match(r.stderr, /need consolidation; consolidating before the backup/);
    assert.equal(again.vsphere.consolidated, false);
    assert.equal((await hook(vc, 'state', 'GET')).check.consolidations, c0 + 2);
  });
});
