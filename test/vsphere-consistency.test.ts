// Snapshot consistency: with the harness's delta disks (snapshots freeze the disk content as on vSphere), guest writes
// that land while a backup runs are not in that restore point; after the snapshot is removed (consolidated) the next,
// incremental backup picks them up and reads only them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, cofferAsync, tempDir } from './helpers/cli.js';
import { prng } from './helpers/disks.js';
import { expectOk, makeGuestDisk } from './helpers/more-cli.js';
import {
  currentDisks,
  failNext,
  hookState,
  listSnapshots,
  startVcsim,
  uploadDisk,
  vcLogin,
  type Vcsim,
  type VcSession,
} from './helpers/vsphere.js';

const CHUNK = 64 * 1024;

describe('vSphere backup reads the frozen snapshot (vcsim with delta disks)', () => {
  const tmp = tempDir('coffer-vsphere-consistency-');
  const repo = join(tmp.path, 'repo');
  let vc: Vcsim;
  let session: VcSession;
  let env: Record<string, string>;
  const VM = 'DC0_H0_VM0';
  const images: Buffer[] = [];

  before(async () => {
    vc = await startVcsim({ diskMiB: [2, 1], deltaDisks: true });
    session = await vcLogin(vc);
    env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    for (const [i, d] of vc.vm(VM).disks.entries()) {
      const img = join(tmp.path, `src${i}.raw`);
      makeGuestDisk(img, d.capacityBytes, `consistency-${i}`);
      images.push(readFileSync(img));
      await uploadDisk(vc, d, images[i]!);
    }
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
  });
  after(async () => {
    await vc?.stop();
    tmp.cleanup();
  });

  const restored = (id: string, i: number) => {
    const out = join(tmp.path, `r-${id.slice(0, 8)}-${i}.raw`);
    expectOk(coffer(['restore', '--repo', repo, id, '--disk', String(i), '--target', out, '--force', '--json']));
    return readFileSync(out);
  };

  test('writes during the backup are not in it; the next incremental reads exactly them', async () => {
    const args = ['backup', '--repo', repo, `vsphere://${vc.host}:${vc.port}/${VM}`, '--insecure-tls', '--json'];
    await failNext(vc, 'QueryChangedDiskAreas', { mode: 'delay', delayMs: 1500 });
    const run = cofferAsync(args, env);
    for (let i = 0; i < 400 && ((await hookState(vc)).failures as unknown[]).length > 0; i++)
      await new Promise((r) => setTimeout(r, 25));
    // the snapshot exists now: the guest writes into the VM's current (delta) files
    const live = await currentDisks(session, 'VirtualMachine', vc.vm(VM).ref);
    assert.ok(live[0]!.parentFileName, 'the VM runs on a delta disk while the snapshot exists');
    const after = images.map((b) => Buffer.from(b));
    prng('during-0', 3000).copy(after[0]!, 5 * CHUNK + 10);
    prng('during-1', 2000).copy(after[1]!, 9 * CHUNK);
    for (const [i, d] of live.entries()) await uploadDisk(vc, d, after[i]!);
    const full = expectOk(await run.done);
    assert.equal(full.vsphere.snapshotRemoved, true);
    for (const [i, img] of images.entries())
      assert.ok(restored(full.id, i).equals(img), `disk ${i}: the restore point holds data written after the snapshot`);
    assert.deepEqual(await listSnapshots(session, vc.vm(VM).ref), []);
    // consolidated: the VM is back on its base files, with the writes
    const incr = expectOk(coffer(args, env));
    assert.equal(incr.mode, 'incremental');
    assert.deepEqual(
      incr.disks.map((d: any) => d.bytesRead),
      [CHUNK, CHUNK],
    );
    for (const [i, img] of after.entries()) assert.ok(restored(incr.id, i).equals(img), `disk ${i} of the incremental`);
  });
});
