import assert from 'node:assert/strict';
import { copyFileSync, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { MiB, makeTree, mkExt, patch, sh, type Tree } from './helpers/fs-images.js';
import {
  BIG_TIME_MS,
  LONG_TARGET,
  linearSegment,
  lvSection,
  makeLvmDisks,
  makeXfsImage,
  stripedSegment,
  writeAt,
  writeIntoLv,
  type LvmDisk,
  type XfsExpect,
} from '../src/fs/testing/xfs-lvm-images.js';
import { expectError, expectOk, expectReport } from './helpers/more-cli.js';

const T = { timeout: 300_000 };
const asRoot = process.getuid?.() === 0;

/**
 * File-level restore of XFS and LVM2 through the real CLI: disk 0 has an LVM2 PV in partition 1 and XFS in partition 2;
 * disk 1 is a whole-disk PV; VG vg0 spans both (a linear LV with XFS across the two disks, a striped LV with ext4,
 * a thin pool). Images made by mkfs.xfs (loop mount), pvcreate/vgcreate/vgcfgrestore, mke2fs; backed up; listed; copied.
 */
describe('coffer files on XFS and LVM2', { skip: !asRoot && 'needs root (loop devices)' }, () => {
  const tmp = tempDir('coffer-files-xfs-');
  const repo = join(tmp.path, 'repo');
  const disks: LvmDisk[] = [
    {
      path: join(tmp.path, 'disk0.raw'),
      sizeBytes: 128 * MiB,
      partitionStart: MiB,
      pvBytes: 64 * MiB,
      table: 'label: dos\nstart=2048, size=64M, type=8e\nstart=133120, size=60M, type=83\n',
    },
    { path: join(tmp.path, 'disk1.raw'), sizeBytes: 64 * MiB, partitionStart: 0 },
  ];
  let xfs: XfsExpect;
  let lvXfs: XfsExpect;
  let extTree: Tree;
  let id = '';
  let damagedId = '';

  before(() => {
    const lvs = [
      lvSection('root', [linearSegment(0, 20, 'pv0', 0), linearSegment(20, 20, 'pv1', 0)]),
      lvSection('data', [
        stripedSegment(0, 16, 64, [
          ['pv0', 20],
          ['pv1', 20],
        ]),
      ]),
      lvSection('pool', [
        'start_extent = 0\nextent_count = 4\ntype = "thin-pool"\nmetadata = "pool_tmeta"\npool = "pool_tdata"\ntransaction_id = 0\nchunk_size = 128\ndiscards = "passdown"\nzero_new_blocks = 1',
      ]),
      lvSection('pool_tmeta', [linearSegment(0, 1, 'pv0', 40)], false),
      lvSection('pool_tdata', [linearSegment(0, 4, 'pv0', 41)], false),
    ].join('');
    const layout = makeLvmDisks(disks, 'vg0', lvs);
    lvXfs = makeXfsImage(join(tmp.path, 'root.img'), 40 * MiB, { nodeEntries: 700 });
    writeIntoLv(disks, layout, join(tmp.path, 'root.img'), [
      { extents: 20, areas: [{ pv: 0, pe: 0 }] },
      { extents: 20, areas: [{ pv: 1, pe: 0 }] },
    ]);
    extTree = makeTree(join(tmp.path, 'ext-src'));
    mkExt(join(tmp.path, 'data.img'), 'ext4', extTree.root, 16 * MiB);
    writeIntoLv(disks, layout, join(tmp.path, 'data.img'), [
      {
        extents: 16,
        stripeBytes: 32 * 1024,
        areas: [
          { pv: 0, pe: 20 },
          { pv: 1, pe: 20 },
        ],
      },
    ]);
    xfs = makeXfsImage(join(tmp.path, 'part.img'), 60 * MiB, { btreeEntries: 10000 });
    writeAt(disks[0]!.path, 65 * MiB, join(tmp.path, 'part.img'));
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    id = expectOk(coffer(['backup', '--repo', repo, '--vm', 'rhel', disks[0]!.path, disks[1]!.path, '--json'])).id;
    // a second point in which one inode of the XFS partition is damaged (its checksum no longer matches)
    const ino = /byte offset (\d+)/.exec(
      sh('xfs_db', ['-r', '-c', 'path /shortform/f3', '-c', 'stack', join(tmp.path, 'part.img')]),
    )![1];
    const bad = join(tmp.path, 'bad0.raw');
    copyFileSync(disks[0]!.path, bad);
    patch(bad, 65 * MiB + Number(ino) + 3, [0x00]);
    damagedId = expectOk(coffer(['backup', '--repo', repo, '--vm', 'rhel-damaged', bad, disks[1]!.path, '--json'])).id;
  });
  after(() => tmp.cleanup());

  const files = (args: string[]) => coffer(['files', ...args, '--repo', repo, '--no-progress']);

  test(
    'ls lists partitions, then the logical volumes of every VG with a PV on the disk (VG/LV), with their filesystems',
    T,
    () => {
      const m = expectOk(files(['ls', id, '--disk', '0', '--json']));
      assert.deepEqual(
        m.partitions
          .map((p: any) => [p.number, p.filesystem ?? null, p.problem ?? null])
          .map((x: any[]) => [x[0], x[1], x[2] === null ? null : 'problem']),
        [
          [1, 'lvm2', null],
          [2, 'xfs', null],
          ['vg0/root', 'xfs', null],
          ['vg0/data', 'ext', null],
          ['vg0/pool', null, 'problem'],
        ],
      );
      assert.match(m.partitions[4].problem, /thin-pool/);
      const d1 = expectOk(files(['ls', id, '--disk', '1', '--json']));
      assert.deepEqual(
        d1.partitions.map((p: any) => p.number),
        [0, 'vg0/root', 'vg0/data', 'vg0/pool'],
      );
      const text = files(['ls', id, '--disk', '0']);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /vg0\/root\s+\d+\s+40\.0 MiB\s+lvm2 linear\s+xfs/);
      assert.match(text.stdout, /vg0\/data\s+\d+\s+16\.0 MiB\s+lvm2 striped\s+ext/);
    },
  );

  test('ls of a 10,000-entry XFS directory (btree form) reads a fraction of the disk', T, () => {
    const r = expectOk(files(['ls', id, '--disk', '0', '--partition', '2', '/btree', '--json']));
    assert.equal(r.filesystem, 'xfs');
    assert.equal(r.entries.length, 10000);
    assert.ok(r.chunksRead < r.chunksTotal / 4, `read ${r.chunksRead} of ${r.chunksTotal} chunks`);
  });

  test('get / from XFS: every file byte for byte, holes, symlinks (inline and remote), times past 2038', T, () => {
    const out = join(tmp.path, 'out-xfs');
    const r = expectOk(files(['get', id, '--disk', '0', '--partition', '2', '/', '--target', out, '--json']));
    assert.equal(r.filesystem, 'xfs');
    assert.deepEqual(r.failed, []);
    for (const [rel, data] of xfs.files) assert.ok(readFileSync(join(out, rel)).equals(data), rel);
    for (const [rel, target] of xfs.links) assert.equal(readlinkSync(join(out, rel)), target, rel);
    assert.equal(readlinkSync(join(out, 'remote-link')), LONG_TARGET);
    assert.equal(lstatSync(join(out, 'future.txt')).mtimeMs, BIG_TIME_MS);
    assert.ok(lstatSync(join(out, 'sparse.img')).blocks * 512 < 1 * MiB, 'the sparse file stays sparse');
  });

  test('get from an LV spanning both disks (XFS) and from a striped LV (ext4)', T, () => {
    const out = join(tmp.path, 'out-lv');
    const r = expectOk(files(['get', id, '--disk', '1', '--partition', 'vg0/root', '/', '--target', out, '--json']));
    assert.equal(r.filesystem, 'xfs');
    assert.equal(r.partition, 'vg0/root');
    assert.deepEqual(r.failed, []);
    for (const [rel, data] of lvXfs.files) assert.ok(readFileSync(join(out, rel)).equals(data), rel);
    const out2 = join(tmp.path, 'out-striped');
    const s = expectOk(files(['get', id, '--disk', '0', '--partition', 'vg0/data', '/', '--target', out2, '--json']));
    assert.equal(s.filesystem, 'ext4');
    for (const f of extTree.files)
      assert.ok(readFileSync(join(out2, f)).equals(readFileSync(join(extTree.root, f))), f);
    const ls = expectOk(files(['ls', id, '--disk', '0', '--partition', 'vg0/root', '/shortform', '--json']));
    assert.equal(ls.entries.length, 5);
  });

  test('a thin pool is refused naming its segment type; an unknown LV is NOT_FOUND', T, () => {
    const e = expectError(
      files(['ls', id, '--disk', '0', '--partition', 'vg0/pool', '/', '--json']),
      17,
      'FS_UNSUPPORTED',
    );
    assert.match(e.message, /segment type thin-pool/);
    expectError(files(['ls', id, '--disk', '0', '--partition', 'vg0/nope', '/', '--json']), 9, 'NOT_FOUND');
  });

  test('a damaged XFS inode (checksum) is reported in failed, the rest is restored', T, () => {
    const out = join(tmp.path, 'out-damaged');
    const r = expectReport(
      files(['get', damagedId, '--disk', '0', '--partition', '2', '/shortform', '--target', out, '--json']),
      7,
    );
    assert.deepEqual(
      r.failed.map((f: any) => [f.path, f.code]),
      [['/shortform/f3', 'FS_CORRUPT']],
    );
    assert.match(r.failed[0].message, /checksum/);
    assert.equal(r.files, 4);
  });
});
