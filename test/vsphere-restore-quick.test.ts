// Quick rollback (`coffer restore ID --to vsphere://HOST/VM --force --quick`) against the real simulator, whose
// launcher plays the proxy VM's guest for hot-add (-by-id-dir: an attached disk shows up as wwn-0x<uuid> -> its flat
// extent) and emulates CBT from the disk files (cbt.go): back up, change ~2% of a disk, roll back; the disks equal
// the restore point byte for byte, bytes written == bytes changed (64 KiB CBT blocks), nothing left behind (snapshot,
// attachment, by-id link). A change tracking reset since the point makes it compare the whole disk, and say so.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { prng } from './helpers/disks.js';
import { assertNoStack, expectError, expectOk } from './helpers/more-cli.js';
import {
  forgetChangeIds,
  listDisks,
  listSnapshots,
  powerOff,
  powerOn,
  setChangeTracking,
  startVcsim,
  vcLogin,
  vddkStandin,
  type Vcsim,
  type VcSession,
} from './helpers/vsphere.js';

const KiB = 1024;
const MiB = 1 << 20;

describe('coffer restore --quick: quick rollback in place (vcsim, hot-add writes, CBT)', () => {
  const tmp = tempDir('coffer-vsphere-quick-');
  const repo = join(tmp.path, 'repo');
  const byId = join(tmp.path, 'by-id');
  const uuidFile = join(tmp.path, 'product_uuid');
  const PROXY = 'DC0_H0_VM0';
  const VM = 'DC0_H0_VM1';
  let vc: Vcsim;
  let s: VcSession;
  let env: Record<string, string>;
  let url: string;
  let pointId = '';
  const images: Buffer[] = [];

  const diskBytes = (i: number) => readFileSync(vc.vm(VM).disks[i]!.dataLocalPath);
  /** ~2% of disk 0 rewritten: 5 areas of 64 KiB (grain-aligned) and one 4 KiB write inside a sixth grain */
  const churn = (seed: string): number => {
    const d = vc.vm(VM).disks[0]!;
    const cur = diskBytes(0);
    const at = [1, 3, 40, 41, 200].map((g) => g * 64 * KiB);
    for (const [k, off] of at.entries()) prng(`${seed}-${k}`, 64 * KiB).copy(cur, off);
    prng(`${seed}-small`, 4 * KiB).copy(cur, 100 * 64 * KiB + 8 * KiB);
    writeFileSync(d.dataLocalPath, cur);
    return at.length * 64 * KiB + 64 * KiB; // bytes in changed 64 KiB blocks
  };
  const rollbackWith = (extraEnv: Record<string, string>, ...extra: string[]) =>
    coffer(
      [
        'restore',
        '--repo',
        repo,
        pointId,
        '--to',
        `${url}/${VM}`,
        '--datastore',
        'LocalDS_0',
        '--insecure-tls',
        '--json',
        ...extra,
      ],
      { ...env, ...extraEnv },
    );
  const rollback = (...extra: string[]) => rollbackWith({}, ...extra);
  const clean = async () => {
    assert.deepEqual(await listSnapshots(s, vc.vm(VM).ref), [], 'a snapshot was left');
    assert.equal(
      (await listDisks(s, 'VirtualMachine', vc.vm(PROXY).ref)).length,
      vc.vm(PROXY).disks.length,
      'a disk is still attached to the proxy',
    );
    assert.deepEqual(readdirSync(byId), [], 'a by-id link was left');
  };

  before(async () => {
    mkdirSync(byId, { recursive: true });
    vc = await startVcsim({ diskMiB: [16, 2], byIdDir: byId, layoutVms: false });
    s = await vcLogin(vc);
    writeFileSync(uuidFile, `${vc.vm(PROXY).uuid.toUpperCase()}\n`);
    env = {
      COFFER_VSPHERE_USER: vc.username,
      COFFER_VSPHERE_PASSWORD: vc.password,
      COFFER_PRODUCT_UUID_PATH: uuidFile,
      COFFER_DISK_BY_ID_DIR: byId,
      COFFER_HOTADD_STATE_DIR: join(tmp.path, 'hotadd-state'),
    };
    url = `vsphere://${vc.host}:${vc.port}`;
    for (const [i, d] of vc.vm(VM).disks.entries()) {
      const img = Buffer.alloc(d.capacityBytes);
      prng(`quick-${i}`, Math.min(d.capacityBytes, 4 * MiB)).copy(img, 0);
      images.push(img);
      writeFileSync(d.dataLocalPath, img);
    }
    await setChangeTracking(s, vc.vm(VM).ref, true);
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    const b = expectOk(coffer(['backup', '--repo', repo, `${url}/${VM}`, '--insecure-tls', '--json'], env));
    pointId = b.id;
    await powerOff(s, vc.vm(VM).ref);
  });
  after(async () => {
    await vc?.stop();
    tmp.cleanup();
  });

  test('after ~2% churn: only the changed blocks are written (CBT), the disks equal the restore point', async () => {
    const changed = churn('a');
    assert.ok(changed / vc.vm(VM).disks[0]!.capacityBytes < 0.03);
    assert.ok(!diskBytes(0).equals(images[0]!));
    const r = expectOk(rollback('--force', '--quick'));
    assert.equal(r.quick, true);
    assert.equal(r.mode, 'cbt');
    assert.equal(r.transport, 'hotadd');
    assert.equal(r.bytesCompared, 0);
    assert.equal(r.bytesWritten, changed, 'bytes written == bytes in changed blocks');
    assert.equal(r.disks[0].mode, 'cbt');
    assert.equal(r.disks[0].bytesWritten, changed);
    assert.equal(r.disks[1].bytesWritten, 0, 'the unchanged disk is not written');
    assert.equal(r.changeTracking, 'reset');
    for (const [i, img] of images.entries()) assert.ok(diskBytes(i).equals(img), `disk ${i} differs from the point`);
    await clean();
    assert.match(
      readFileSync(vc.logFile, 'utf8'),
      /hot-add: \[LocalDS_0\] DC0_H0_VM1\/disk1\.vmdk attached to DC0_H0_VM0/,
    );
  });

  test('change tracking reset since the restore point: a comparison read, said so, still only changes written', async () => {
    const changed = churn('b');
    await forgetChangeIds(vc, vc.vm(VM).ref);
    const r = expectOk(rollback('--force', '--quick'));
    assert.equal(r.mode, 'compare');
    const total = vc.vm(VM).disks.reduce((a, d) => a + d.capacityBytes, 0);
    assert.equal(r.bytesCompared, total, 'every byte of every disk compared');
    assert.equal(r.bytesWritten, changed, 'only the differing 64 KiB blocks written');
    assert.match(r.disks[0].reason, /rejected the restore point's changeId .*change tracking was reset/);
    assert.ok(r.warnings.some((w: string) => /comparing the whole disk/.test(w)));
    for (const [i, img] of images.entries()) assert.ok(diskBytes(i).equals(img), `disk ${i} differs from the point`);
    await clean();
  });

  // VDDK writes: Debian's nbdkit has no vddk plugin and VDDK is not redistributable, so `nbdkit` is the stand-in of
  // test/vsphere-vddk.test.ts (test/fixtures/vcsim/nbdkit-vddk-standin.sh) in its write mode: it checks the arguments
  // as nbdkit's vddk plugin documents them (no -r, no snapshot=: the powered-off VM's own disk) and serves the disk's
  // data file read-write with the real nbdkit file plugin, so the writes land in the disk vcsim reports.
  test('--transport nbd: VDDK writes (nbdkit vddk read-write, no snapshot), only the changed blocks', async () => {
    const { libdir, logFile, env: vddkEnv } = vddkStandin(join(tmp.path, 'vddk'), vc);
    const vddkDirs = () => readdirSync(tmpdir()).filter((n) => n.startsWith('coffer-vddk-'));
    const dirsBefore = vddkDirs();
    const changed = churn('v');
    const args = ['--force', '--quick'];
    // --transport nbd without the VDDK directory, or with a proxy VM: USAGE, nothing started
    expectError(rollbackWith(vddkEnv, ...args, '--transport', 'nbd'), 2, 'USAGE');
    expectError(rollbackWith(vddkEnv, ...args, '--vddk-libdir', libdir, '--proxy-vm', PROXY), 2, 'USAGE');
    const r = expectOk(rollbackWith(vddkEnv, ...args, '--transport', 'nbd', '--vddk-libdir', libdir));
    assert.equal(r.transport, 'nbd');
    assert.equal(r.bytesWritten, changed, 'only the changed 64 KiB blocks written');
    for (const [i, img] of images.entries()) assert.ok(diskBytes(i).equals(img), `disk ${i} differs from the point`);
    const log = readFileSync(logFile, 'utf8');
    assert.doesNotMatch(log, /REFUSED/);
    assert.match(log, /^SERVE-RW \[LocalDS_0\] DC0_H0_VM1\/disk1\.vmdk -> /m);
    assert.doesNotMatch(log, /^SERVE /m, 'a read-only (snapshot) export was opened');
    for (const m of log.matchAll(/^ARGS pid=(\d+) (.*)$/gm)) {
      assert.doesNotMatch(m[2]!, / -r | snapshot=/, 'write mode: no -r, no snapshot');
      assert.match(m[2]!, new RegExp(`vm=moref=${vc.vm(VM).ref} `));
      assert.equal(existsSync(`/proc/${m[1]}`), false, `nbdkit ${m[1]} still runs`);
    }
    assert.deepEqual(vddkDirs(), dirsBefore, 'a private socket/password directory was left');
    await clean();
  });

  test('--disk N: only that disk is rolled back (a single-disk restore in place), the other keeps its changes', async () => {
    churn('d0');
    const churned0 = diskBytes(0);
    const d1 = vc.vm(VM).disks[1]!;
    const cur1 = diskBytes(1);
    prng('d1', 64 * KiB).copy(cur1, 64 * KiB);
    writeFileSync(d1.dataLocalPath, cur1);
    const r = expectOk(rollback('--force', '--quick', '--disk', '1'));
    assert.deepEqual(
      r.disks.map((d: { index: number }) => d.index),
      [1],
      'only disk 1 in the result',
    );
    assert.equal(r.bytesWritten, 64 * KiB, 'the one changed block of disk 1');
    assert.ok(diskBytes(1).equals(images[1]!), 'disk 1 equals the point');
    assert.ok(diskBytes(0).equals(churned0), 'disk 0 was not touched');
    await clean();
    // then the whole VM back (the tests below start from the point)
    expectOk(rollback('--force', '--quick'));
    assert.ok(diskBytes(0).equals(images[0]!));
  });

  test('bad input: --quick without --force (USAGE), --disk out of range (USAGE), a powered-on VM (refused), no such VM', async () => {
    expectError(rollback('--quick'), 2, 'USAGE');
    const noDisk = expectError(rollback('--quick', '--force', '--disk', '5'), 2, 'USAGE');
    assert.match(noDisk.message, /--disk 5: DC0_H0_VM1 has disks 0 to 1/);
    expectError(rollback('--proxy-vm', PROXY), 2, 'USAGE');
    const gone = coffer(
      [
        'restore',
        '--repo',
        repo,
        pointId,
        '--to',
        `${url}/no-such-vm`,
        '--datastore',
        'LocalDS_0',
        '--insecure-tls',
        '--json',
        '--force',
        '--quick',
      ],
      env,
    );
    expectError(gone, 9, 'NOT_FOUND');
    assertNoStack(gone);
    churn('c');
    const churned = diskBytes(0);
    await powerOn(s, vc.vm(VM).ref);
    const r = rollback('--force', '--quick');
    expectError(r, 11, 'TARGET_UNWRITABLE');
    assert.ok(diskBytes(0).equals(churned), 'nothing was written to the powered-on VM');
    await clean();
  });
});
