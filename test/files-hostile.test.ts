import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { MiB, findAll, mkExt, mkFat, partitionDisk, partitionsOf, patch } from './helpers/fs-images.js';
import { expectError, expectOk, expectReport } from './helpers/more-cli.js';

const T = { timeout: 120_000 };

/**
 * Hostile guest disks through the real CLI: every case ends in a coded error (or a coded per-file failure with exit
 * PARTIAL), never a crash or a hang, and nothing is written outside the target.
 */
describe('coffer files on hostile guest disks', () => {
  const tmp = tempDir('coffer-files-hostile-');
  const repo = join(tmp.path, 'repo');
  const d = (n: number) => join(tmp.path, `disk${n}.raw`);
  let id = '';

  before(() => {
    // disk 0: 1 ext4 with hostile names, 2 FAT16 with a directory cycle, 3 a partition that claims to be BitLocker
    const src = join(tmp.path, 'src');
    mkdirSync(join(src, 'dir'), { recursive: true });
    writeFileSync(join(src, 'AAslashAA'), 'slash\n');
    writeFileSync(join(src, 'dd'), 'dotdot\n');
    writeFileSync(join(src, 'nulnameXX'), 'nul\n');
    writeFileSync(join(src, 'badinode'), 'bad inode\n');
    writeFileSync(join(src, 'dir/fine.txt'), 'fine\n');
    symlinkSync('/etc/shadow', join(src, 'abs-link'));
    symlinkSync('../../../../../../tmp/escaped', join(src, 'dir/up-link'));
    partitionDisk(d(0), 40 * MiB, 'label: dos\nstart=2048, size=16M, type=83\nsize=16M, type=6\nsize=4M, type=7\n');
    const p = partitionsOf(d(0));
    mkExt(d(0), 'ext4', src, p[0]!.size, p[0]!.start, ['-O', '^metadata_csum']);
    const rename = (from: string, to: Buffer | string) => {
      const at = findAll(d(0), from).filter((o) => o >= p[0]!.start && o < p[0]!.start + p[0]!.size);
      assert.equal(at.length, 1, `${from} found ${at.length} times`);
      patch(d(0), at[0]!, Buffer.from(to));
    };
    rename('AAslashAA', '../../xyz');
    rename('nulnameXX', Buffer.from('nulname\0X', 'latin1'));
    const bad = findAll(d(0), 'badinode').filter((o) => o >= p[0]!.start && o < p[0]!.start + p[0]!.size);
    assert.equal(bad.length, 1);
    patch(d(0), bad[0]! - 8, [0xff, 0xff, 0xff, 0x7f]); // its record names inode 2^31-1
    // 'dd' is too short to find reliably: its record follows AAslashAA's in the same block, found by name length 2
    const blockOf = findAll(d(0), '../../xyz')[0]!;
    const dd = findAll(d(0), Buffer.from([0x02, 0x01, 0x64, 0x64])).find((o) => Math.abs(o - blockOf) < 4096);
    assert.ok(dd !== undefined, 'the dirent of dd');
    patch(d(0), dd + 2, Buffer.from('..'));
    const fsrc = join(tmp.path, 'fsrc');
    mkdirSync(join(fsrc, 'LOOPDIR/INNER'), { recursive: true });
    writeFileSync(join(fsrc, 'LOOPDIR/INNER/FILE.TXT'), 'inner\n');
    writeFileSync(join(fsrc, 'OK.TXT'), 'ok\n');
    mkFat(d(0), 16, fsrc, p[1]!.size, p[1]!.start);
    const region = (o: number) => o >= p[1]!.start && o < p[1]!.start + p[1]!.size;
    const loop = findAll(d(0), 'LOOPDIR    ').filter(region);
    const inner = findAll(d(0), 'INNER      ').filter(region);
    assert.equal(loop.length, 1);
    assert.equal(inner.length, 1);
    const img = readFileSync(d(0));
    patch(d(0), inner[0]! + 26, img.subarray(loop[0]! + 26, loop[0]! + 28)); // INNER is LOOPDIR again
    patch(d(0), p[2]!.start, Buffer.concat([Buffer.from([0xeb, 0x58, 0x90]), Buffer.from('-FVE-FS-')])); // BitLocker (NTFS itself is read now)

    // disk 1: an MBR with an invalid boot indicator (and no filesystem on the whole disk)
    partitionDisk(d(1), 8 * MiB, 'label: dos\nstart=2048, size=4M, type=83\n');
    patch(d(1), 446, [0x33]);
    // disk 2: a GPT whose primary and backup headers both fail their CRC
    partitionDisk(d(2), 8 * MiB, 'label: gpt\nstart=2048, size=4M\n');
    patch(d(2), 512 + 16, [1, 2, 3, 4]);
    patch(d(2), 8 * MiB - 512 + 16, [1, 2, 3, 4]);
    // disk 3: ext4 on the whole disk with an absurd block size
    mkExt(d(3), 'ext4', src, 8 * MiB);
    patch(d(3), 1024 + 24, [30, 0, 0, 0]);
    // disk 4: an MBR partition that ends past the disk
    partitionDisk(d(4), 8 * MiB, 'label: dos\nstart=2048, size=4M, type=83\n');
    patch(d(4), 446 + 12, [0, 0, 1, 0]);
    // disk 5: a 'bad magic' ext4 on the whole disk and an MBR whose slots overlap
    partitionDisk(d(5), 8 * MiB, 'label: dos\nstart=2048, size=4M, type=83\nsize=3M, type=83\n');
    patch(d(5), 446 + 16 + 8, [0x00, 0x10, 0, 0]);

    // disk 6: FAT16 on the whole disk whose seven entries all point at one 3 MiB cluster chain (21 MiB in 16 MiB)
    const xsrc = join(tmp.path, 'xsrc');
    mkdirSync(xsrc);
    writeFileSync(join(xsrc, 'BIG.BIN'), Buffer.alloc(3 * MiB, 7));
    for (let i = 1; i <= 6; i++) writeFileSync(join(xsrc, `X${i}.BIN`), 'x');
    mkFat(d(6), 16, xsrc, 16 * MiB);
    const fat = readFileSync(d(6));
    const big = findAll(d(6), 'BIG     BIN')[0]!;
    for (let i = 1; i <= 6; i++) {
      const e = findAll(d(6), `X${i}      BIN`)[0]!;
      patch(d(6), e + 26, fat.subarray(big + 26, big + 32)); // first cluster and size of BIG.BIN
    }

    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    id = expectOk(
      coffer(['backup', '--repo', repo, '--vm', 'hostile', d(0), d(1), d(2), d(3), d(4), d(5), d(6), '--json']),
    ).id;
  });
  after(() => tmp.cleanup());

  const files = (args: string[]) => coffer(['files', ...args, '--repo', repo, '--no-progress']);

  test("names with '/', NUL and '..' are never created; absolute and escaping symlinks stay symlinks", T, () => {
    const ls = expectOk(files(['ls', id, '--disk', '0', '--partition', '1', '/', '--json']));
    const names = ls.entries.map((e: any) => e.name);
    assert.ok(names.includes('../../xyz'), 'ls shows the hostile name as stored');
    // issue 21: ls reports the same FS_CORRUPT that get records in `failed` (not a path get cannot find)
    assert.equal(ls.entries.find((e: any) => e.name === '../../xyz').error?.code, 'FS_CORRUPT');
    assert.equal(ls.entries.find((e: any) => e.name === 'nulname\0X').error?.code, 'FS_CORRUPT');
    assert.ok(!names.includes('..') && !names.includes('dd'), "a second '..' entry is not listed");
    const broken = ls.entries.find((e: any) => e.name === 'badinode');
    assert.equal(broken.type, 'unknown');
    assert.equal(broken.error.code, 'FS_CORRUPT');
    assert.match(broken.error.message, /inode 2147483647 out of range/);
    const text = files(['ls', id, '--disk', '0', '--partition', '1', '/']);
    assert.match(text.stdout, /badinode \(FS_CORRUPT: ext: inode 2147483647 out of range/);
    assert.match(text.stdout, /nulname\\x00X/, 'control characters are escaped in text mode');
    const out = join(tmp.path, 'a/b/out');
    const doc = expectReport(files(['get', id, '--disk', '0', '--partition', '1', '/', '--target', out, '--json']), 7);
    const failed = new Map<string, any>(doc.failed.map((f: any) => [f.path, f]));
    assert.equal(failed.get('/../../xyz')?.code, 'FS_CORRUPT');
    assert.match(failed.get('/../../xyz').message, /contains \//);
    assert.equal(failed.get('/nulname\0X')?.code, 'FS_CORRUPT');
    assert.match(failed.get('/nulname\0X').message, /NUL/);
    assert.equal(failed.get('/badinode')?.code, 'FS_CORRUPT');
    assert.equal(doc.failed.length, 3, JSON.stringify(doc.failed));
    for (const p of ['a/xyz', 'xyz', 'a/b/xyz', 'a/b/out/xyz', '../xyz'])
      assert.ok(!existsSync(join(tmp.path, p)), `${p} was created`);
    assert.equal(readlinkSync(join(out, 'abs-link')), '/etc/shadow');
    assert.equal(readlinkSync(join(out, 'dir/up-link')), '../../../../../../tmp/escaped');
    assert.equal(readFileSync(join(out, 'dir/fine.txt'), 'utf8'), 'fine\n');
    assert.ok(!existsSync('/tmp/escaped'));
    // getting a path through a symlink is refused, not followed
    const through = join(tmp.path, 'through');
    expectError(
      files(['get', id, '--disk', '0', '--partition', '1', '/abs-link/x', '--target', through, '--json']),
      2,
      'USAGE',
    );
    const abs = expectOk(
      files(['get', id, '--disk', '0', '--partition', '1', '/abs-link', '--target', through, '--json']),
    );
    assert.equal(abs.symlinks, 1);
    assert.ok(lstatSync(join(through, 'abs-link')).isSymbolicLink());
  });

  test('a FAT directory cycle fails that directory only', T, () => {
    const out = join(tmp.path, 'fat-out');
    const doc = expectReport(files(['get', id, '--disk', '0', '--partition', '2', '/', '--target', out, '--json']), 7);
    assert.deepEqual(
      doc.failed.map((f: any) => [f.path, f.code]),
      [['/LOOPDIR/INNER', 'FS_CORRUPT']],
    );
    assert.match(doc.failed[0].message, /cycle/);
    assert.equal(readFileSync(join(out, 'OK.TXT'), 'utf8'), 'ok\n');
  });

  test('files that share their clusters cannot make get write more than the partition holds', T, () => {
    const out = join(tmp.path, 'shared-out');
    const doc = expectReport(files(['get', id, '--disk', '6', '/', '--target', out, '--json']), 7);
    assert.ok(doc.bytes <= 16 * MiB, `${doc.bytes} bytes written`);
    assert.ok(doc.failed.length >= 2, JSON.stringify(doc.failed));
    for (const f of doc.failed) {
      assert.equal(f.code, 'FS_CORRUPT');
      assert.match(f.message, /share blocks/);
    }
  });

  test('a BitLocker partition is recognised and refused as unsupported', T, () => {
    const parts = expectOk(files(['ls', id, '--disk', '0', '--json']));
    assert.equal(parts.partitions[2].filesystem, 'bitlocker');
    const e = expectError(files(['ls', id, '--disk', '0', '--partition', '3', '/', '--json']), 17, 'FS_UNSUPPORTED');
    assert.match(e.message, /BitLocker/);
  });

  test('damaged partition tables and superblocks: coded errors', T, () => {
    let e = expectError(files(['ls', id, '--disk', '1', '--json']), 16, 'FS_CORRUPT');
    assert.match(e.message, /boot indicator/);
    e = expectError(files(['ls', id, '--disk', '2', '--json']), 16, 'FS_CORRUPT');
    assert.match(e.message, /GPT is damaged.*CRC/);
    e = expectError(files(['ls', id, '--disk', '3', '/', '--json']), 16, 'FS_CORRUPT');
    assert.match(e.message, /block size/);
    const t4 = expectOk(files(['ls', id, '--disk', '4', '--json']));
    assert.match(t4.partitions[0].problem, /past the end/);
    e = expectError(files(['ls', id, '--disk', '4', '--partition', '1', '/', '--json']), 16, 'FS_CORRUPT');
    assert.match(e.message, /past the end/);
    e = expectError(
      files(['get', id, '--disk', '5', '--partition', '2', '/', '--target', join(tmp.path, 'o5'), '--json']),
      16,
      'FS_CORRUPT',
    );
    assert.match(e.message, /overlaps/);
    // text mode: the code on stderr, no stack
    const t = files(['ls', id, '--disk', '1']);
    assert.equal(t.code, 16);
    assert.match(t.stderr, /error \[FS_CORRUPT\]/);
    assert.doesNotMatch(t.stderr, /^\s+at /m);
  });
});
