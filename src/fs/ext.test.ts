import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  makeFragmentedExt,
  readTree,
  DEEP_LEVELS,
  LONG_NAME,
  MANY_FILES,
  MiB,
  SLOW_LINK,
  T_MTIME,
  UNICODE_NAME,
  findAll,
  makeTree,
  mkExt,
  patch,
  sh,
} from './testing/images.js';
import { CofferError } from '../shared/index.js';
import { ExtFs, FileReader, openFilesystem, type GuestFs } from './index.js';

const T = { timeout: 60_000 };

async function expectCode(p: Promise<unknown>, code: string, re?: RegExp): Promise<CofferError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CofferError, `expected CofferError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return e;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

async function open(img: string): Promise<{ fs: GuestFs; close: () => Promise<void> }> {
  const r = await FileReader.open(img);
  try {
    return { fs: await openFilesystem(r), close: () => r.close() };
  } catch (e) {
    await r.close();
    throw e;
  }
}

describe('ext2/ext3/ext4 reader against mke2fs images', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'coffer-ext-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const src = join(tmp, 'src');
  const tree = makeTree(src, { owners: true });

  for (const [type, extra, sizeMiB] of [
    ['ext4', [], 48],
    ['ext4', ['-O', '64bit,^metadata_csum', '-b', '4096'], 48],
    ['ext4', ['-b', '4096', '-g', '8192'], 400], // 4 KiB blocks in 13 groups with flex_bg
    ['ext4', ['-O', 'meta_bg,^resize_inode', '-b', '1024'], 160], // group descriptors in meta groups
    ['ext3', ['-b', '1024'], 48],
    ['ext2', ['-b', '1024'], 48],
    ['ext2', ['-b', '2048', '-I', '128'], 48],
  ] as const) {
    test(`${type} ${extra.join(' ')} (${sizeMiB} MiB): every file, link, mode, owner and time`, T, async () => {
      const img = join(tmp, `${type}-${sizeMiB}.img`);
      const atimes = [lstatSync(join(src, 'escape-link')).atimeMs];
      mkExt(img, type, src, sizeMiB * MiB, 0, [...extra]);
      atimes.push(lstatSync(join(src, 'escape-link')).atimeMs);
      const { fs, close } = await open(img);
      try {
        assert.equal(fs.kind, type);
        const all = await readTree(fs);
        for (const f of tree.files) {
          const got = all.get(f);
          assert.ok(got?.data, `${f} missing`);
          assert.ok(got.data.equals(readFileSync(join(src, f))), `${f}: content differs`);
          const st = statSync(join(src, f));
          assert.equal(got.node.mode, st.mode & 0o7777, `${f}: mode`);
          assert.equal(got.node.uid, st.uid, `${f}: uid`);
          assert.equal(got.node.gid, st.gid, `${f}: gid`);
          assert.equal(got.node.mtimeMs, Math.floor(st.mtimeMs / 1000) * 1000, `${f}: mtime`);
        }
        if (process.getuid?.() === 0) {
          assert.equal(all.get('etc/app/config.ini')!.node.uid, 1234);
          assert.equal(all.get('etc/app/config.ini')!.node.gid, 5678);
        }
        // atimes move when files are read (also by mke2fs itself): the one stored is the source's before or after
        // mke2fs
        assert.ok(
          atimes.map((t) => Math.floor(t / 1000) * 1000).includes(all.get('escape-link')!.node.atimeMs!),
          `atime ${all.get('escape-link')!.node.atimeMs} not in ${atimes}`,
        );
        assert.equal(all.get('escape-link')!.node.mtimeMs, T_MTIME);
        assert.equal(all.get('setuid-bin')!.node.mode, 0o4755);
        assert.equal(all.get('etc/app')!.node.mode, 0o750);
        assert.equal(all.get('etc/app')!.node.uid, 1001);
        assert.equal(all.get('etc/app')!.node.mtimeMs, T_MTIME);
        assert.equal(all.get('etc/fast-link')!.link, '../setuid-bin');
        assert.equal(all.get('slow-link')!.link, SLOW_LINK);
        assert.equal(all.get('escape-link')!.link, '../../etc/passwd');
        assert.ok(all.has(LONG_NAME) && all.has(UNICODE_NAME));
        assert.equal([...all.keys()].filter((k) => k.startsWith('many/')).length, MANY_FILES);
        assert.ok([...all.keys()].some((k) => k.split('/').length === DEEP_LEVELS + 1 && k.endsWith('bottom.txt')));
        // holes are not read: only the 8 KiB in the middle of the 12 MiB sparse file come back as data
        assert.ok(
          all.get('sparse.img')!.dataBytes! <= 16384,
          `sparse file read ${all.get('sparse.img')!.dataBytes} bytes`,
        );
        assert.equal(all.get('empty-dir')!.node.type, 'dir');
      } finally {
        await close();
      }
    });
  }

  test('inline data (small files and directories in the inode)', T, async () => {
    const img = join(tmp, 'inline.img');
    mkExt(img, 'ext4', src, 48 * MiB, 0, ['-O', 'inline_data']);
    const { fs, close } = await open(img);
    try {
      const all = await readTree(fs);
      // mke2fs 1.47 with inline_data drops a sparse file's trailing hole (its bug, seen with debugfs stat): skip that
      // file
      for (const f of tree.files.filter((x) => x !== 'sparse.img'))
        assert.ok(all.get(f)?.data?.equals(readFileSync(join(src, f))), `${f}: content differs`);
      assert.equal(all.get('etc/app/config.ini')!.data!.toString(), '[main]\nkey = value\n');
    } finally {
      await close();
    }
  });

  test('a fragmented file with a depth-1 extent tree (debugfs write into freed holes)', T, async () => {
    const { img, big } = makeFragmentedExt(tmp);
    const { fs, close } = await open(img);
    try {
      const all = await readTree(fs);
      assert.ok(all.get('big')!.data!.equals(readFileSync(big)));
    } finally {
      await close();
    }
  });

  test('triple-indirect block map: a sparse ext2 file with data past 64 MiB (1 KiB blocks)', T, async () => {
    const s2 = join(tmp, 'sparse-src');
    sh('mkdir', ['-p', s2]);
    sh('dd', [
      'if=/dev/urandom',
      `of=${join(s2, 'far')}`,
      'bs=4096',
      'count=2',
      `seek=${(80 * MiB) / 4096}`,
      'status=none',
    ]);
    const img = join(tmp, 'far.img');
    mkExt(img, 'ext2', s2, 8 * MiB, 0, ['-b', '1024']);
    const { fs, close } = await open(img);
    try {
      const all = await readTree(fs);
      assert.ok(all.get('far')!.data!.equals(readFileSync(join(s2, 'far'))));
      assert.equal(all.get('far')!.dataBytes, 8192);
    } finally {
      await close();
    }
  });

  describe(
    'journal replay (a filesystem that needs recovery, ' + 'as a crash-consistent backup of a running guest has)',
    () => {
      /** an ext4 whose file.txt has new content only in a committed journal transaction (debugfs jo/jw/jc) */
      const journaled = (name: string) => {
        const d = join(tmp, `${name}-src`);
        sh('mkdir', ['-p', d]);
        writeFileSync(join(d, 'file.txt'), 'old content, in place\n');
        const img = join(tmp, `${name}.img`);
        mkExt(img, 'ext4', d, 16 * MiB);
        const block = Number(sh('debugfs', ['-R', 'bmap /file.txt 0', img]).trim());
        const bs = Number(/Block size:\s+(\d+)/.exec(sh('dumpe2fs', ['-h', img]))![1]);
        const fresh = join(tmp, `${name}.blk`);
        writeFileSync(fresh, Buffer.concat([Buffer.from('new content, in the journal\n'), Buffer.alloc(bs - 28)]));
        sh('debugfs', ['-w', '-f', '-', img], `jo\njw -b ${block} ${fresh}\njc\n`);
        assert.match(sh('dumpe2fs', ['-h', img]), /needs_recovery/);
        return { img, block };
      };
      const content = async (img: string) => {
        const { fs, close } = await open(img);
        try {
          const f = (await fs.list(await fs.root())).find((n) => n.name === 'file.txt')!;
          let out = Buffer.alloc(0);
          for await (const p of fs.read(f)) out = Buffer.concat([out, p.data]);
          return { text: out.toString(), warnings: (fs as ExtFs).warnings };
        } finally {
          await close();
        }
      };

      test(
        'committed blocks in the journal are read instead of the stale ones in place, as e2fsck would replay them',
        T,
        async () => {
          const { img } = journaled('j1');
          const got = await content(img);
          assert.deepEqual(got.warnings, []);
          // (only the data block was logged: the inode, and so the size, 22 bytes, stay the old ones)
          assert.equal(got.text, 'new content, in the journal\n'.slice(0, 22));
          const fixed = join(tmp, 'j1-fixed.img');
          sh('cp', [img, fixed]);
          spawnSync('e2fsck', ['-fy', fixed]); // exits 1 when it replayed or fixed something
          assert.doesNotMatch(sh('dumpe2fs', ['-h', fixed]), /needs_recovery/);
          assert.equal(sh('debugfs', ['-R', 'cat /file.txt', fixed]), got.text);
        },
      );

      test('a block revoked by a later transaction is not replayed', T, async () => {
        const { img, block } = journaled('j2');
        sh('debugfs', ['-w', '-f', '-', img], `jo\njw -r ${block}\njc\n`);
        assert.equal((await content(img)).text, 'old content, in place\n');
      });

      test('a damaged journal is reported as a warning and the filesystem is read as it is in place', T, async () => {
        const { img } = journaled('j3');
        const jsb = Number(sh('debugfs', ['-R', 'bmap <8> 0', img]).trim());
        const bs = Number(/Block size:\s+(\d+)/.exec(sh('dumpe2fs', ['-h', img]))![1]);
        patch(img, jsb * bs + 28, [0xff, 0xff, 0xff, 0xf0]); // s_start far past the journal's end
        const got = await content(img);
        assert.equal(got.text, 'old content, in place\n');
        assert.match(got.warnings.join('\n'), /journal cannot be replayed.*do not fit/);
      });
    },
  );

  describe('hostile images: coded errors, no crash, no hang', () => {
    const base = join(tmp, 'hostile-base.img');
    const fresh = (name: string) => {
      if (!statSync(base, { throwIfNoEntry: false })) mkExt(base, 'ext4', src, 48 * MiB, 0, ['-O', '^metadata_csum']);
      const p = join(tmp, name);
      sh('cp', ['--sparse=always', base, p]);
      return p;
    };

    test('bad superblock magic', T, async () => {
      const img = fresh('magic.img');
      patch(img, 1024 + 56, [0, 0]);
      await expectCode(open(img), 'FS_UNSUPPORTED', /no supported filesystem/);
      const r = await FileReader.open(img);
      await expectCode(ExtFs.open(r), 'FS_CORRUPT', /magic/).finally(() => r.close());
    });

    test('absurd block size', T, async () => {
      const img = fresh('bs.img');
      patch(img, 1024 + 24, [20, 0, 0, 0]);
      await expectCode(open(img), 'FS_CORRUPT', /block size/);
    });

    test('absurd inode count and blocks per group', T, async () => {
      const a = fresh('ic.img');
      patch(a, 1024, [0xff, 0xff, 0xff, 0xff]);
      await expectCode(open(a), 'FS_CORRUPT', /inode count/);
      const b = fresh('bpg.img');
      patch(b, 1024 + 32, [0xff, 0xff, 0xff, 0x7f]);
      await expectCode(open(b), 'FS_CORRUPT', /blocks per group/);
      const c = fresh('bc.img');
      patch(c, 1024 + 4, [0xff, 0xff, 0xff, 0x7f]);
      await expectCode(open(c), 'FS_CORRUPT', /exceeds the partition/);
    });

    test('an incompatible feature the reader does not know is refused by name', T, async () => {
      const img = fresh('incompat.img');
      const sb = readFileSync(img).subarray(1024, 2048);
      const v = sb.readUInt32LE(96) | 0x1 | 0x80000000;
      const b = Buffer.alloc(4);
      b.writeUInt32LE(v >>> 0);
      patch(img, 1024 + 96, b);
      await expectCode(open(img), 'FS_UNSUPPORTED', /compression, 0x80000000/);
    });

    test('a directory record with rec_len 0', T, async () => {
      const img = fresh('reclen.img');
      const [at] = findAll(img, 'run.sh');
      patch(img, at! - 4, [0, 0]);
      const { fs, close } = await open(img);
      try {
        await expectCode(readTree(fs), 'FS_CORRUPT', /record length 0/);
      } finally {
        await close();
      }
    });

    test('extent tree: a loop back to its own node, and a depth beyond 5', T, async () => {
      const { img } = makeFragmentedExt(tmp);
      const ex = sh('debugfs', ['-R', 'ex /big', img]);
      const m = /^\s*0\/\s*1\s+1\/\s*\d+\s+\d+\s+-\s+\d+\s+(\d+)/m.exec(ex);
      assert.ok(m, ex);
      const leaf = Number(m[1]);
      // the leaf claims depth 1 and points at itself
      const node = Buffer.alloc(24);
      node.writeUInt16LE(0xf30a, 0);
      node.writeUInt16LE(1, 2);
      node.writeUInt16LE(84, 4);
      node.writeUInt16LE(1, 6);
      node.writeUInt32LE(0, 12);
      node.writeUInt32LE(leaf, 16);
      patch(img, leaf * 1024, node);
      let { fs, close } = await open(img);
      try {
        await expectCode(readTree(fs), 'FS_CORRUPT', /loop|depth/);
      } finally {
        await close();
      }
      sh('debugfs', ['-w', '-R', 'sif /big block[1] 0x00060004', img]);
      ({ fs, close } = await open(img));
      try {
        await expectCode(readTree(fs), 'FS_CORRUPT', /depth 6/);
      } finally {
        await close();
      }
    });

    test('a block map that uses an indirect block twice', T, async () => {
      const d = join(tmp, 'ind-src');
      sh('mkdir', ['-p', d]);
      sh('dd', ['if=/dev/urandom', `of=${join(d, 'f')}`, 'bs=1000', 'count=300', 'status=none']);
      const img = join(tmp, 'ind.img');
      mkExt(img, 'ext2', d, 4 * MiB, 0, ['-b', '1024']);
      const st = sh('debugfs', ['-R', 'stat /f', img]);
      const ind = Number(/\(IND\):(\d+)/.exec(st)![1]);
      const dind = Number(/\(DIND\):(\d+)/.exec(st)![1]);
      const b = Buffer.alloc(4);
      b.writeUInt32LE(ind);
      patch(img, dind * 1024, b); // the double-indirect block's first entry is the single-indirect block again
      const { fs, close } = await open(img);
      try {
        await expectCode(readTree(fs), 'FS_CORRUPT', new RegExp(`indirect block ${ind} is used twice`));
      } finally {
        await close();
      }
    });

    test('random garbage over the metadata never crashes or hangs', T, async () => {
      const img = fresh('garbage.img');
      const data = readFileSync(img);
      let seed = 7;
      const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
      for (let round = 0; round < 12; round++) {
        const p = join(tmp, `g${round}.img`);
        const copy = Buffer.from(data.subarray(0, 2 * MiB));
        for (let k = 0; k < 200; k++) copy[1024 + Math.floor(rnd() * (copy.length - 1024))] = Math.floor(rnd() * 256);
        const full = Buffer.concat([copy, data.subarray(2 * MiB)]);
        sh('dd', ['of=' + p, 'status=none'], undefined);
        patch(p, 0, full);
        try {
          const { fs, close } = await open(p);
          try {
            await readTree(fs);
          } finally {
            await close();
          }
        } catch (e) {
          assert.ok(e instanceof CofferError, `round ${round}: ${String((e as Error).stack)}`);
        }
        rmSync(p);
      }
    });
  });
});
