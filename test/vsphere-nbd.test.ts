// The NBD transport of a vSphere backup: the snapshot lifecycle and CBT queries go to the real simulator, the disk
// bytes come from NBD exports (here nbdkit's file plugin serving the VM's datastore directory, one export per disk
// file, standing in for a VDDK/nbdkit-vddk export).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { expectError, expectOk, makeGuestDisk } from './helpers/more-cli.js';
import { freePort, startNbdkit, type Daemon } from './helpers/servers.js';
import { listSnapshots, startVcsim, uploadDisk, vcLogin, type Vcsim } from './helpers/vsphere.js';

describe('coffer backup vsphere:// --transport nbd (vcsim + nbdkit)', () => {
  const tmp = tempDir('coffer-vsphere-nbd-');
  const repo = join(tmp.path, 'repo');
  let vc: Vcsim;
  let nbd: Daemon | undefined;
  let port = 0;
  const VM = 'DC0_H0_VM0';
  const images: Buffer[] = [];
  let env: Record<string, string>;

  before(async () => {
    vc = await startVcsim({ diskMiB: [2, 1] });
    env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    for (const [i, d] of vc.vm(VM).disks.entries()) {
      const img = join(tmp.path, `src${i}.raw`);
      makeGuestDisk(img, d.capacityBytes, `nbd-${i}`);
      images.push(readFileSync(img));
      await uploadDisk(vc, d, images[i]!);
    }
    port = await freePort();
    nbd = startNbdkit(tmp.path, port, 'file', [`dir=${dirname(vc.vm(VM).disks[0]!.localPath)}`]);
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
  });
  after(async () => {
    await nbd?.stop();
    await vc?.stop();
    tmp.cleanup();
  });

  test('the disks are read over NBD, CBT still comes from vCenter, the snapshot is removed', async () => {
    const url = `vsphere://${vc.host}:${vc.port}/${VM}`;
    const r = expectOk(
      coffer(
        [
          'backup',
          '--repo',
          repo,
          url,
          '--insecure-tls',
          '--transport',
          'nbd',
          '--nbd-url',
          `nbd://127.0.0.1:${port}/{flat}`,
          '--json',
        ],
        env,
      ),
    );
    assert.equal(r.vsphere.transport, 'nbd');
    assert.equal(r.disks.length, 2);
    for (const [i, img] of images.entries()) {
      const out = join(tmp.path, `r${i}.raw`);
      expectOk(coffer(['restore', '--repo', repo, r.id, '--disk', String(i), '--target', out, '--json']));
      assert.ok(readFileSync(out).equals(img), `disk ${i} differs`);
    }
    assert.deepEqual(await listSnapshots(await vcLogin(vc), vc.vm(VM).ref), []);
  });

  test('an export of the wrong size is refused (SOURCE_UNREADABLE) and the snapshot still removed', async () => {
    const url = `vsphere://${vc.host}:${vc.port}/${VM}`;
    // every disk mapped to disk 0's file: disk 1 has another size
    const name0 = vc.vm(VM).disks[0]!.dataPath!.split('/').pop()!; // disk1-flat.vmdk (realistic layout: disk1.vmdk is the descriptor)
    expectError(
      coffer(
        [
          'backup',
          '--repo',
          repo,
          url,
          '--insecure-tls',
          '--transport',
          'nbd',
          '--nbd-url',
          `nbd://127.0.0.1:${port}/${name0}`,
          '--json',
        ],
        env,
      ),
      8,
      'SOURCE_UNREADABLE',
    );
    expectError(
      coffer(['backup', '--repo', repo, url, '--insecure-tls', '--transport', 'nbd', '--json'], env),
      2,
      'USAGE',
    );
    assert.deepEqual(await listSnapshots(await vcLogin(vc), vc.vm(VM).ref), []);
  });
});
