// Restore into vCenter against the real simulator: a new VM from the stored configuration, its disks uploaded through
// /folder and downloaded again to compare; in place with --force; one disk to a datastore path.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { assertNoStack, expectError, expectOk, makeGuestDisk } from './helpers/more-cli.js';
import {
  downloadDisk,
  listDisks,
  powerOff,
  powerState,
  retrieveProperties,
  startVcsim,
  xmlAll,
  uploadDisk,
  vcLogin,
  type Vcsim,
  type VcSession,
} from './helpers/vsphere.js';

describe('coffer restore --to vsphere:// (vcsim)', () => {
  const tmp = tempDir('coffer-vsphere-restore-');
  const repo = join(tmp.path, 'repo');
  let vc: Vcsim;
  let session: VcSession;
  let env: Record<string, string>;
  let url: string;
  const VM = 'DC0_H0_VM1';
  const images: Buffer[] = [];
  let pointId = '';

  before(async () => {
    vc = await startVcsim({ diskMiB: [3, 2], folderAuth: true });
    session = await vcLogin(vc);
    env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    url = `vsphere://${vc.host}:${vc.port}`;
    for (const [i, d] of vc.vm(VM).disks.entries()) {
      const img = join(tmp.path, `src${i}.raw`);
      makeGuestDisk(img, d.capacityBytes, `restore-${i}`);
      images.push(readFileSync(img));
      await uploadDisk(vc, d, images[i]!);
    }
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    pointId = expectOk(coffer(['backup', '--repo', repo, `${url}/${VM}`, '--insecure-tls', '--json'], env)).id;
  });
  after(async () => {
    await vc?.stop();
    tmp.cleanup();
  });

  const diskOf = (fileName: string) => {
    const m = /^\[([^\]]+)\]\s*(.*)$/.exec(fileName)!;
    return { datastore: m[1]!, path: m[2]!, dcPath: 'DC0' };
  };

  test('restore as a new VM: created from the stored configuration, disks byte for byte, powered on when asked', async () => {
    const r = expectOk(
      coffer(
        [
          'restore',
          '--repo',
          repo,
          pointId,
          '--to',
          `${url}/restored-vm`,
          '--datastore',
          'LocalDS_0',
          '--thumbprint',
          vc.thumbprint,
          '--power-on',
          '--json',
        ],
        env,
      ),
    );
    assert.equal(r.vm, 'restored-vm');
    assert.equal(r.created, true);
    assert.equal(r.disks.length, 2);
    const disks = await listDisks(session, 'VirtualMachine', r.moref);
    assert.deepEqual(
      disks.map((d) => d.capacityBytes),
      vc.vm(VM).disks.map((d) => d.capacityBytes),
    );
    for (const [i, d] of disks.entries()) {
      assert.equal(d.fileName, r.disks[i].fileName);
      const bytes = await downloadDisk(vc, diskOf(d.fileName));
      assert.ok(bytes.equals(images[i]!), `disk ${i} of the restored VM differs from the original`);
    }
    assert.equal(await powerState(session, r.moref), 'poweredOn');
    const inv = expectOk(coffer(['vsphere', 'inventory', `${url}/restored-vm`, '--insecure-tls', '--json'], env));
    const orig = expectOk(coffer(['vsphere', 'inventory', `${url}/${VM}`, '--insecure-tls', '--json'], env));
    assert.equal(inv.vms[0].numCPU, orig.vms[0].numCPU);
    assert.equal(inv.vms[0].memoryMB, orig.vms[0].memoryMB);
    assert.equal(inv.vms[0].guestId, orig.vms[0].guestId);
  });

  test('an existing VM name: TARGET_EXISTS without --force; a powered-on one is refused even with --force', async () => {
    expectError(
      coffer(
        [
          'restore',
          '--repo',
          repo,
          pointId,
          '--to',
          `${url}/restored-vm`,
          '--datastore',
          'LocalDS_0',
          '--insecure-tls',
          '--json',
        ],
        env,
      ),
      11,
      'TARGET_EXISTS',
    );
    expectError(
      coffer(
        [
          'restore',
          '--repo',
          repo,
          pointId,
          '--to',
          `${url}/restored-vm`,
          '--datastore',
          'LocalDS_0',
          '--insecure-tls',
          '--force',
          '--json',
        ],
        env,
      ),
      11,
      'TARGET_UNWRITABLE',
    );
  });

  test('--force restores in place over the disks of a powered-off VM', async () => {
    const list = expectOk(coffer(['vsphere', 'inventory', `${url}/restored-vm`, '--insecure-tls', '--json'], env));
    const ref = list.vms[0].moref;
    await powerOff(session, ref);
    // scribble over its disks, then restore in place
    const disks = await listDisks(session, 'VirtualMachine', ref);
    for (const d of disks) await uploadDisk(vc, diskOf(d.fileName), Buffer.alloc(d.capacityBytes, 0x5a));
    const r = expectOk(
      coffer(
        [
          'restore',
          '--repo',
          repo,
          pointId,
          '--to',
          `${url}/restored-vm`,
          '--datastore',
          'LocalDS_0',
          '--insecure-tls',
          '--force',
          '--json',
        ],
        env,
      ),
    );
    assert.equal(r.created, false);
    assert.equal(r.moref, ref);
    for (const [i, d] of disks.entries())
      assert.ok((await downloadDisk(vc, diskOf(d.fileName))).equals(images[i]!), `disk ${i} not restored in place`);
  });

  test('--disk N --path: one disk to a datastore file; an existing file needs --force', async () => {
    const args = [
      'restore',
      '--repo',
      repo,
      pointId,
      '--disk',
      '1',
      '--to',
      url,
      '--datastore',
      'LocalDS_0',
      '--path',
      'coffer-restores/disk1.img',
      '--insecure-tls',
      '--json',
    ];
    const r = expectOk(coffer(args, env));
    assert.equal(r.target, '[LocalDS_0] coffer-restores/disk1.img');
    assert.ok(
      (await downloadDisk(vc, { datastore: 'LocalDS_0', path: 'coffer-restores/disk1.img', dcPath: 'DC0' })).equals(
        images[1]!,
      ),
    );
    expectError(coffer(args, env), 11, 'TARGET_EXISTS');
    expectOk(coffer([...args, '--force'], env));
  });

  test('--pool and --host place the new VM; an unknown pool or host is NOT_FOUND', async () => {
    const r = expectOk(
      coffer(
        [
          'restore',
          '--repo',
          repo,
          pointId,
          '--to',
          `${url}/placed-vm`,
          '--datastore',
          'LocalDS_0',
          '--pool',
          '/DC0/host/DC0_C0/Resources',
          '--host',
          'DC0_C0_H1',
          '--insecure-tls',
          '--json',
        ],
        env,
      ),
    );
    const xml = await retrieveProperties(session, 'VirtualMachine', r.moref, ['resourcePool', 'runtime.host']);
    const vals = xmlAll(xml, 'val');
    assert.ok(
      vals.some((v) => /^resgroup-/.test(v)),
      xml,
    );
    const hosts = expectOk(coffer(['vsphere', 'inventory', url, '--insecure-tls', '--json'], env)).hosts;
    const h1 = hosts.find((h: any) => h.name === 'DC0_C0_H1').moref;
    const pools = expectOk(coffer(['vsphere', 'inventory', url, '--insecure-tls', '--json'], env)).resourcePools;
    assert.ok(vals.includes(h1), `placed on ${vals.join(', ')}, not ${h1}`);
    assert.ok(vals.includes(pools.find((p: any) => p.path === '/DC0/host/DC0_C0/Resources').moref));
    expectError(
      coffer(
        [
          'restore',
          '--repo',
          repo,
          pointId,
          '--to',
          `${url}/p2`,
          '--datastore',
          'LocalDS_0',
          '--pool',
          '/nope',
          '--insecure-tls',
          '--json',
        ],
        env,
      ),
      9,
      'NOT_FOUND',
    );
    expectError(
      coffer(
        [
          'restore',
          '--repo',
          repo,
          pointId,
          '--to',
          `${url}/p3`,
          '--datastore',
          'LocalDS_0',
          '--host',
          'nope',
          '--insecure-tls',
          '--json',
        ],
        env,
      ),
      9,
      'NOT_FOUND',
    );
  });

  test('bad input: no --datastore, unknown datastore, a restore point without VM configuration, --to a file', () => {
    expectError(
      coffer(['restore', '--repo', repo, pointId, '--to', `${url}/x`, '--insecure-tls', '--json'], env),
      2,
      'USAGE',
    );
    expectError(
      coffer(
        ['restore', '--repo', repo, pointId, '--to', `${url}/x`, '--datastore', 'NoSuchDS', '--insecure-tls', '--json'],
        env,
      ),
      9,
      'NOT_FOUND',
    );
    expectError(
      coffer(['restore', '--repo', repo, pointId, '--to', '/tmp/x', '--datastore', 'LocalDS_0', '--json'], env),
      2,
      'USAGE',
    );
    const img = join(tmp.path, 'plain.raw');
    makeGuestDisk(img, 1 << 20, 'plain');
    const plain = expectOk(coffer(['backup', '--repo', repo, '--vm', 'plain', img, '--json']));
    const e = coffer(
      ['restore', '--repo', repo, plain.id, '--to', `${url}/y`, '--datastore', 'LocalDS_0', '--insecure-tls', '--json'],
      env,
    );
    expectError(e, 9, 'NOT_FOUND');
    assertNoStack(e);
    // the existing file restore still needs --disk and --target
    expectError(coffer(['restore', '--repo', repo, plain.id, '--json']), 2, 'USAGE');
  });
});
