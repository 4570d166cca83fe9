import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import {
  chunkFileAt,
  makeFragmentedExt,
  LONG_NAME,
  MANY_FILES,
  MiB,
  SLOW_LINK,
  T_MTIME,
  UNICODE_NAME,
  makeFatTree,
  makeTree,
  mkExt,
  mkFat,
  partitionDisk,
  partitionsOf,
  sh,
  type Tree,
} from './helpers/fs-images.js';
import { expectError, expectOk, expectReport } from './helpers/more-cli.js';

const T = { timeout: 120_000 };
const asRoot = process.getuid?.() === 0;

/** File-level restore through the real CLI: images made by mke2fs/mkfs.fat/mcopy/sfdisk, backed up, listed, copied out. */
describe('coffer files ls/get', () => {
  const tmp = tempDir('coffer-files-');
  const repo = join(tmp.path, 'repo');
  const disk0 = join(tmp.path, 'disk0.raw'); // MBR: 1 ext4, 2 FAT16, 3 extended, 5 ext2 (1 KiB blocks, block maps)
  const disk1 = join(tmp.path, 'disk1.raw'); // GPT: 1 ext3, 2 FAT32
  const disk2 = join(tmp.path, 'disk2.raw'); // ext4 without partition table, needing journal recovery
  let extTree: Tree;
  let fatTree: Tree;
  let id = '';
  let frag: { img: string; big: string };
  let p0: { start: number; size: number }[] = [];

  before(() => {
    extTree = makeTree(join(tmp.path, 'ext-src'), { owners: true });
    fatTree = makeFatTree(join(tmp.path, 'fat-src'));
    partitionDisk(
      disk0,
      112 * MiB,
      'label: dos\nstart=2048, size=48M, type=83\nsize=16M, type=6\nsize=44M, type=5\nstart=135168, size=40M, type=83\n',
    );
    p0 = partitionsOf(disk0);
    mkExt(disk0, 'ext4', extTree.root, p0[0]!.size, p0[0]!.start);
    mkFat(disk0, 16, fatTree.root, p0[1]!.size, p0[1]!.start);
    mkExt(disk0, 'ext2', extTree.root, p0[3]!.size, p0[3]!.start, ['-b', '1024']);
    partitionDisk(disk1, 96 * MiB, 'label: gpt\nstart=2048, size=40M, name="linux"\nsize=48M, name="efi"\n');
    const p1 = partitionsOf(disk1);
    mkExt(disk1, 'ext3', extTree.root, p1[0]!.size, p1[0]!.start);
    mkFat(disk1, 32, fatTree.root, p1[1]!.size, p1[1]!.start);
    // disk 2: ext4 on the whole disk, unclean: a new version of a directory block is only in the journal
    const jsrc = join(tmp.path, 'journal-src');
    mkdirSync(join(jsrc, 'dir'), { recursive: true });
    writeFileSync(join(jsrc, 'dir/old-name.txt'), 'journaled\n');
    // without metadata_csum: the edited directory block below keeps no valid checksum (with it, the reader rightly
    // refuses the block as e2fsck and the kernel would; src/fs/ext-integrity.test.ts covers checksummed journals)
    mkExt(disk2, 'ext4', jsrc, 16 * MiB, 0, ['-O', '^metadata_csum']);
    const dirBlock = Number(sh('debugfs', ['-R', 'bmap /dir 0', disk2]).trim());
    const bs = Number(/Block size:\s+(\d+)/.exec(sh('dumpe2fs', ['-h', disk2]))![1]);
    const blk = readFileSync(disk2).subarray(dirBlock * bs, (dirBlock + 1) * bs);
    const at = blk.indexOf('old-name.txt');
    assert.ok(at > 0);
    const newer = Buffer.from(blk);
    newer.write('new-name.txt', at); // the rename, committed in the journal, not yet in place
    writeFileSync(join(tmp.path, 'dirblock'), newer);
    sh('debugfs', ['-w', '-f', '-', disk2], `jo\njw -b ${dirBlock} ${join(tmp.path, 'dirblock')}\njc\n`);
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    // disk 3: ext4 (1 KiB blocks) with a 400 KB file in 80+ fragments (an extent tree of depth 1)
    frag = makeFragmentedExt(tmp.path);
    id = expectOk(coffer(['backup', '--repo', repo, '--vm', 'guest', disk0, disk1, disk2, frag.img, '--json'])).id;
  });
  after(() => tmp.cleanup());

  const files = (args: string[]) => coffer(['files', ...args, '--repo', repo, '--no-progress']);

  test('ls without a path lists the partitions (MBR with logical partitions, GPT)', T, () => {
    const m = expectOk(files(['ls', id, '--disk', '0', '--json']));
    assert.equal(m.scheme, 'mbr');
    assert.deepEqual(
      m.partitions.map((p: any) => [p.number, p.filesystem ?? null, Boolean(p.container)]),
      [
        [1, 'ext', false],
        [2, 'fat', false],
        [3, null, true],
        [5, 'ext', false],
      ],
    );
    const g = expectOk(files(['ls', id, '--disk', '1', '--partitions', '/', '--json']));
    assert.equal(g.scheme, 'gpt');
    assert.deepEqual(
      g.partitions.map((p: any) => [p.number, p.name, p.filesystem]),
      [
        [1, 'linux', 'ext'],
        [2, 'efi', 'fat'],
      ],
    );
    const text = files(['ls', id, '--disk', '0']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /MBR partition table/);
    assert.match(text.stdout, /^\s+5\s+\d+\s+40\.0 MiB\s+0x83\s+ext/m);
  });

  test('ls --json: name, type, size, mode, uid, gid, mtime, link target; text like ls -l', T, () => {
    const r = expectOk(files(['ls', id, '--disk', '0', '--partition', '1', '/', '--json']));
    assert.equal(r.filesystem, 'ext4');
    // only the chunks holding the partition table, superblock, group descriptors, inodes and the directory are read
    assert.equal(r.chunksTotal, (112 * MiB) / (64 * 1024));
    assert.ok(r.chunksRead > 0 && r.chunksRead <= 24, `ls read ${r.chunksRead} chunks`);
    const by = new Map<string, any>(r.entries.map((e: any) => [e.name, e]));
    assert.deepEqual(
      [...by.keys()].sort(),
      [
        'big.bin',
        'deep',
        'empty-dir',
        'empty-file',
        'escape-link',
        'etc',
        'hardlink.sh',
        LONG_NAME,
        'lost+found',
        'many',
        'setuid-bin',
        'slow-link',
        'sparse.img',
        UNICODE_NAME,
      ].sort(),
    );
    assert.equal(by.get('big.bin').type, 'file');
    assert.equal(by.get('big.bin').size, 3 * MiB + 123);
    assert.equal(by.get('setuid-bin').mode, 0o4755);
    assert.equal(by.get('escape-link').type, 'symlink');
    assert.equal(by.get('escape-link').linkTarget, '../../etc/passwd');
    assert.equal(by.get('slow-link').linkTarget, SLOW_LINK);
    assert.equal(by.get('big.bin').mtime, new Date(T_MTIME).toISOString());
    const sub = expectOk(files(['ls', id, '--disk', '0', '--partition', '1', '/etc/app', '--json']));
    const cfg = sub.entries.find((e: any) => e.name === 'config.ini');
    assert.deepEqual([cfg.mode, cfg.size], [0o600, 19]);
    if (asRoot) assert.deepEqual([cfg.uid, cfg.gid], [1234, 5678]);
    const one = expectOk(files(['ls', id, '--disk', '0', '--partition', '1', 'etc/app/config.ini', '--json']));
    assert.equal(one.entry.name, 'config.ini');
    const small = expectOk(
      files([
        'get',
        id,
        '--disk',
        '0',
        '--partition',
        '1',
        'etc/app/config.ini',
        '--target',
        join(tmp.path, 'out-one'),
        '--json',
      ]),
    );
    assert.ok(small.chunksRead <= 24, `one small file read ${small.chunksRead} of ${small.chunksTotal} chunks`);
    assert.equal(one.entries, undefined);
    const text = files(['ls', id, '--disk', '0', '--partition', '1', '/']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^-rwsr-xr-x\s+1\s+0\s+0\s+\d+ 2021-03-04 05:06 setuid-bin$/m);
    assert.match(text.stdout, /^lrwxrwxrwx .* escape-link -> \.\.\/\.\.\/etc\/passwd$/m);
    assert.match(text.stdout, /^drwxr-xr-x .* many$/m);
    const many = expectOk(files(['ls', id, '--disk', '0', '--partition', '1', '/many', '--json']));
    assert.equal(many.entries.length, MANY_FILES, 'an htree directory lists every entry');
  });

  /** Compares an extracted tree with its source: bytes, modes, owners (as root), mtimes, symlinks as symlinks. */
  function assertTree(out: string, tree: Tree, opts: { fat?: boolean } = {}): void {
    for (const f of tree.files) {
      const a = join(out, f);
      const e = join(tree.root, f);
      assert.ok(existsSync(a), `${f} missing`);
      assert.ok(readFileSync(a).equals(readFileSync(e)), `${f}: content differs`);
      const sa = lstatSync(a);
      const se = lstatSync(e);
      assert.equal(
        Math.floor(sa.mtimeMs / 1000),
        opts.fat ? Math.floor(T_MTIME / 2000) * 2 : Math.floor(se.mtimeMs / 1000),
        `${f}: mtime`,
      );
      if (!opts.fat) {
        assert.equal(sa.mode & 0o7777, asRoot ? se.mode & 0o7777 : se.mode & 0o1777, `${f}: mode`);
        if (asRoot) assert.deepEqual([sa.uid, sa.gid], [se.uid, se.gid], `${f}: owner`);
      }
    }
  }

  test(
    'get / from ext4: every byte, mode, owner, mtime; symlinks recreated (never followed); holes stay holes',
    T,
    () => {
      const out = join(tmp.path, 'out-ext4');
      const r = expectOk(files(['get', id, '--disk', '0', '--partition', '1', '/', '--target', out, '--json']));
      assert.equal(r.failed.length, 0);
      // atimes as the guest has them, checked before anything here reads the copies (readlink and read move atimes)
      const guest = new Map<string, any>(
        expectOk(files(['ls', id, '--disk', '0', '--partition', '1', '/', '--json'])).entries.map((e: any) => [
          e.name,
          e,
        ]),
      );
      for (const name of ['escape-link', 'empty-dir', 'big.bin'])
        assert.equal(lstatSync(join(out, name)).atime.toISOString(), guest.get(name).atime, `${name}: atime`);
      assert.equal(lstatSync(join(out, 'escape-link')).mtime.toISOString(), new Date(T_MTIME).toISOString());
      assert.equal(r.files + r.hardlinks, extTree.files.length);
      assert.equal(r.hardlinks, 1);
      assert.equal(r.symlinks, 3);
      assert.equal(
        statSync(join(out, 'hardlink.sh')).ino,
        statSync(join(out, 'etc/app/run.sh')).ino,
        'hard links stay hard links',
      );
      assert.deepEqual(
        r.skipped.map((x: any) => [x.path, x.type]),
        [['/etc/a-fifo', 'fifo']],
      );
      assert.ok(!existsSync(join(out, 'etc/a-fifo')));
      assertTree(out, extTree);
      assert.equal(readlinkSync(join(out, 'escape-link')), '../../etc/passwd');
      assert.equal(readlinkSync(join(out, 'slow-link')), SLOW_LINK);
      assert.equal(readlinkSync(join(out, 'etc/fast-link')), '../setuid-bin');
      assert.equal(lstatSync(join(out, 'etc/app')).mode & 0o777, 0o750);
      assert.equal(Math.floor(lstatSync(join(out, 'etc/app')).mtimeMs), T_MTIME);
      if (asRoot) assert.equal(lstatSync(join(out, 'etc/app')).uid, 1001);
      const sp = statSync(join(out, 'sparse.img'));
      assert.equal(sp.size, 12 * MiB);
      assert.ok(sp.blocks * 512 <= 64 * 1024, `sparse.img occupies ${sp.blocks * 512} bytes: holes were written`);
      assert.ok(existsSync(join(out, 'empty-dir')) && statSync(join(out, 'empty-dir')).isDirectory());
    },
  );

  test('get of chosen paths from the FAT16 partition and the logical ext2 (block maps) partition', T, () => {
    const out = join(tmp.path, 'out-mixed');
    const r = expectOk(
      files([
        'get',
        id,
        '--disk',
        '0',
        '--partition',
        '2',
        '/Program Files',
        'README.TXT',
        '/empty',
        LONG_NAME,
        UNICODE_NAME,
        '/big.bin',
        '/deep',
        '/many',
        '--target',
        out,
        '--json',
      ]),
    );
    assert.equal(r.filesystem, 'fat16');
    assert.equal(r.failed.length, 0);
    assertTree(out, fatTree, { fat: true });
    const out5 = join(tmp.path, 'out-ext2');
    const r5 = expectOk(files(['get', id, '--disk', '0', '--partition', '5', '/', '--target', out5, '--json']));
    assert.equal(r5.filesystem, 'ext2');
    assertTree(out5, extTree);
  });

  test('GPT disk: ext3 and FAT32 partitions', T, () => {
    const out = join(tmp.path, 'out-gpt');
    expectOk(files(['get', id, '--disk', '1', '--partition', '2', '/', '--target', join(out, 'fat'), '--json']));
    assertTree(join(out, 'fat'), fatTree, { fat: true });
    const r = expectOk(
      files(['get', id, '--disk', '1', '--partition', '1', '/etc', '/big.bin', '--target', join(out, 'ext'), '--json']),
    );
    assert.equal(r.filesystem, 'ext3');
    assert.ok(readFileSync(join(out, 'ext/big.bin')).equals(readFileSync(join(extTree.root, 'big.bin'))));
    assert.ok(
      readFileSync(join(out, 'ext/etc/app/config.ini')).equals(readFileSync(join(extTree.root, 'etc/app/config.ini'))),
    );
  });

  test(
    'the target: existing files are kept without --force; a symlink in the target is never written through',
    T,
    () => {
      const out = join(tmp.path, 'out-exists');
      const victim = join(tmp.path, 'victim');
      mkdirSync(victim);
      writeFileSync(join(victim, 'precious'), 'keep me\n');
      mkdirSync(out);
      symlinkSync(victim, join(out, 'etc')); // a directory symlink where the guest has /etc
      symlinkSync(join(victim, 'precious'), join(out, 'setuid-bin')); // a file symlink where the guest has a file
      writeFileSync(join(out, 'empty-file'), 'existing\n');
      const r = files([
        'get',
        id,
        '--disk',
        '0',
        '--partition',
        '1',
        '/etc',
        '/setuid-bin',
        '/empty-file',
        '/big.bin',
        '--target',
        out,
        '--json',
      ]);
      const doc = expectReport(r, 7);
      assert.deepEqual(doc.failed.map((f: any) => [f.path, f.code]).sort(), [
        ['/empty-file', 'TARGET_EXISTS'],
        ['/etc', 'TARGET_EXISTS'],
        ['/setuid-bin', 'TARGET_EXISTS'],
      ]);
      assert.equal(doc.files, 1, 'big.bin was still copied');
      assert.deepEqual(sh('ls', ['-A', victim]).trim(), 'precious');
      assert.equal(readFileSync(join(victim, 'precious'), 'utf8'), 'keep me\n');
      assert.equal(readFileSync(join(out, 'empty-file'), 'utf8'), 'existing\n');
      // --force replaces files and symlinks (the symlinks themselves, not what they point to)
      const f = expectOk(
        files([
          'get',
          id,
          '--disk',
          '0',
          '--partition',
          '1',
          '/etc',
          '/setuid-bin',
          '/empty-file',
          '--target',
          out,
          '--force',
          '--json',
        ]),
      );
      assert.equal(f.failed.length, 0);
      assert.ok(lstatSync(join(out, 'etc')).isDirectory() && !lstatSync(join(out, 'etc')).isSymbolicLink());
      assert.ok(lstatSync(join(out, 'setuid-bin')).isFile());
      assert.equal(readFileSync(join(victim, 'precious'), 'utf8'), 'keep me\n');
      assert.deepEqual(sh('ls', ['-A', victim]).trim(), 'precious');
      assert.equal(readFileSync(join(out, 'empty-file'), 'utf8'), '');
    },
  );

  test(
    'a file whose chunk is missing from the repository fails alone: the rest is copied, exit PARTIAL',
    T,
    async () => {
      // where big.bin's data lies on disk 0: debugfs maps its logical block 256 (1 MiB in) to a physical block
      const p = p0[0]!;
      const dev = `${disk0}?offset=${p.start}`;
      const bmap = Number(sh('debugfs', ['-R', 'bmap /big.bin 256', dev]).trim());
      const blockBytes = Number(/Block size:\s+(\d+)/.exec(sh('dumpe2fs', ['-h', dev]))![1]);
      assert.ok(bmap > 0 && blockBytes >= 1024);
      const chunk = await chunkFileAt(repo, TEST_PASSWORD, id, 0, p.start + bmap * blockBytes);
      rmSync(chunk);
      const out = join(tmp.path, 'out-missing');
      const r = files(['get', id, '--disk', '0', '--partition', '1', '/', '--target', out, '--json']);
      const doc = expectReport(r, 7);
      assert.equal(doc.failed.length, 1, JSON.stringify(doc.failed));
      assert.equal(doc.failed[0].path, '/big.bin');
      assert.equal(doc.failed[0].code, 'CORRUPT');
      assert.match(doc.failed[0].message, /chunk [0-9a-f]{64} is missing/);
      assert.ok(!existsSync(join(out, 'big.bin')), 'no partial file is left');
      assert.equal(doc.files + doc.hardlinks, extTree.files.length - 1);
      assert.ok(
        readFileSync(join(out, 'etc/app/config.ini')).equals(readFileSync(join(extTree.root, 'etc/app/config.ini'))),
      );
      // text mode: the per-file error on stderr, exit 7
      const t = files([
        'get',
        id,
        '--disk',
        '0',
        '--partition',
        '1',
        '/big.bin',
        '--target',
        join(tmp.path, 'out-missing2'),
      ]);
      assert.equal(t.code, 7, t.stderr);
      assert.match(t.stderr, /\/big\.bin: \[CORRUPT\] chunk [0-9a-f]+ is missing/);
      // the listing still works
      expectOk(files(['ls', id, '--disk', '0', '--partition', '1', '/', '--json']));
    },
  );

  test(
    'an ext4 that needs recovery is read with its journal replayed (a rename committed only in the journal)',
    T,
    () => {
      const r = expectOk(files(['ls', id, '--disk', '2', '/dir', '--json']));
      assert.equal(r.partition, 0);
      assert.deepEqual(r.warnings, []);
      assert.deepEqual(
        r.entries.map((e: any) => e.name),
        ['new-name.txt'],
      );
      const out = join(tmp.path, 'out-journal');
      // the guest path is kept below the target (issue 20); --flat puts the file directly in it, as before
      expectOk(files(['get', id, '--disk', '2', '/dir/new-name.txt', '--target', out, '--json']));
      assert.equal(readFileSync(join(out, 'dir', 'new-name.txt'), 'utf8'), 'journaled\n');
      const flat = join(tmp.path, 'out-journal-flat');
      expectOk(files(['get', id, '--disk', '2', '/dir/new-name.txt', '--target', flat, '--flat', '--json']));
      assert.equal(readFileSync(join(flat, 'new-name.txt'), 'utf8'), 'journaled\n');
    },
  );

  test('a fragmented file (extent tree of depth 1) comes back byte for byte', T, () => {
    const out = join(tmp.path, 'out-frag');
    const r = expectOk(files(['get', id, '--disk', '3', '/big', '--target', out, '--json']));
    assert.equal(r.files, 1);
    assert.ok(readFileSync(join(out, 'big')).equals(readFileSync(frag.big)));
  });

  test(
    'bad requests: unknown partition, no --partition on a multi-partition disk, a missing path, .. in a path',
    T,
    () => {
      expectError(files(['ls', id, '--disk', '0', '--partition', '4', '/', '--json']), 9, 'NOT_FOUND');
      const u = expectError(files(['ls', id, '--disk', '0', '/', '--json']), 2, 'USAGE');
      assert.match(u.message, /--partition/);
      expectError(files(['ls', id, '--disk', '0', '--partition', '1', '/no/such/file', '--json']), 9, 'NOT_FOUND');
      expectError(
        files(['get', id, '--disk', '0', '--partition', '1', '/etc/../..', '--target', join(tmp.path, 'x'), '--json']),
        2,
        'USAGE',
      );
      expectError(files(['ls', id, '--disk', '7', '--json']), 9, 'NOT_FOUND');
      expectError(files(['ls', id, '--disk', '0', '--partition', '3', '/', '--json']), 2, 'USAGE');
    },
  );
});
