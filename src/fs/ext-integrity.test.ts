import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CofferError } from '../shared/index.js';
import { ExtFs, FileReader, openFilesystem, type FsNode, type GuestFs } from './index.js';
import { MiB, findAll, mkExt, patch, readTree, sh } from './testing/images.js';

/**
 * Integrity of what the ext reader returns (issue 21, items 1-4): journal replay with e2fsck's checksum rules, metadata
 * checksums, inline data bounds and hostile names. Every image is made by mke2fs/debugfs and damaged at a field
 * located by parsing it; where e2fsck can be the judge, the reader must give the bytes e2fsck leaves.
 */

const T = { timeout: 60_000 };

async function code(p: Promise<unknown>, want: string, re?: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CofferError, `expected CofferError, got ${String(e)}`);
    assert.equal(e.code, want, e.message);
    if (re) assert.match(e.message, re);
    return;
  }
  assert.fail(`expected ${want}, but it succeeded`);
}

async function withFs<T>(img: string, fn: (fs: GuestFs) => Promise<T>): Promise<T> {
  const r = await FileReader.open(img);
  try {
    return await fn(await openFilesystem(r));
  } finally {
    await r.close();
  }
}

async function readFile(fs: GuestFs, path: string): Promise<Buffer> {
  let node = await fs.root();
  for (const part of path.split('/').filter(Boolean)) {
    const next: FsNode | undefined = (await fs.list(node)).find((n) => n.name === part);
    assert.ok(next, `${path}: ${part} missing`);
    if (next.error) throw next.error;
    node = next;
  }
  const out = Buffer.alloc(node.sizeBytes);
  for await (const p of fs.read(node)) p.data.copy(out, p.offset);
  return out;
}

const blockSize = (img: string) => Number(/Block size:\s+(\d+)/.exec(sh('dumpe2fs', ['-h', img]))![1]);

describe('ext integrity (issue 21)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'coffer-extint-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  let n = 0;

  describe(
    'journal replay as e2fsck does it (csum v3 journals from mke2fs, ' + 'transactions from debugfs jo/jw/jc)',
    () => {
      /**
       * ext4 whose file.txt has new content only in a committed transaction; the journal's blocks located by parsing
       */
      const journaled = () => {
        const name = `j${n++}`;
        const d = join(tmp, `${name}-src`);
        sh('mkdir', ['-p', d]);
        writeFileSync(join(d, 'file.txt'), 'old content, in place\n');
        const img = join(tmp, `${name}.img`);
        mkExt(img, 'ext4', d, 16 * MiB);
        const block = Number(sh('debugfs', ['-R', 'bmap /file.txt 0', img]).trim());
        const bs = blockSize(img);
        const fresh = join(tmp, `${name}.blk`);
        writeFileSync(fresh, Buffer.concat([Buffer.from('new content, in the journal\n'), Buffer.alloc(bs - 28)]));
        sh('debugfs', ['-w', '-f', '-', img], `jo -c\njw -b ${block} ${fresh}\njc\n`);
        const phys = (i: number) => Number(sh('debugfs', ['-R', `bmap <8> ${i}`, img]).trim());
        const jsbAt = phys(0) * bs;
        const data = readFileSync(img);
        const jsb = data.subarray(jsbAt, jsbAt + bs);
        assert.equal(jsb.readUInt32BE(0), 0xc03b3998);
        assert.ok(jsb.readUInt32BE(40) & 0x10, 'mke2fs made a journal with checksum v3');
        const start = jsb.readUInt32BE(28);
        // the transaction: descriptor, the data block, commit
        const blocks = [0, 1, 2].map((k) => {
          const at = phys(start + k) * bs;
          return { at, type: data.readUInt32BE(at) === 0xc03b3998 ? data.readUInt32BE(at + 4) : 0 };
        });
        assert.deepEqual(
          blocks.map((b) => b.type),
          [1, 0, 2],
          'descriptor, data, commit',
        );
        return { img, bs, jsbAt, descriptor: blocks[0]!.at, dataAt: blocks[1]!.at, commit: blocks[2]!.at };
      };
      /** what e2fsck leaves in file.txt after replaying (or refusing) the same journal */
      const e2fsckView = (img: string) => {
        const fixed = `${img}.fsck`;
        sh('cp', [img, fixed]);
        spawnSync('e2fsck', ['-fy', fixed]);
        return sh('debugfs', ['-R', 'cat /file.txt', fixed]);
      };
      const view = (img: string) =>
        withFs(img, async (fs) => ({
          text: (await readFile(fs, 'file.txt')).toString(),
          warnings: (fs as ExtFs).warnings,
          checks: (fs as ExtFs).checks,
        }));

      test('an intact csum v3 transaction is replayed and the verification is reported', T, async () => {
        const j = journaled();
        const got = await view(j.img);
        assert.equal(got.text, 'new content, in the journal\n'.slice(0, 22));
        assert.deepEqual(got.warnings, []);
        assert.match(got.checks.join('\n'), /1 committed transaction\(s\) replayed.*checksums v3 verified/);
        assert.equal(got.text, e2fsckView(j.img));
      });

      test('a data block whose tag checksum fails is skipped (the old copy stays) and reported', T, async () => {
        const j = journaled();
        patch(j.img, j.dataAt + 100, [0x55]);
        const got = await view(j.img);
        assert.equal(got.text, 'old content, in place\n');
        assert.match(got.warnings.join('\n'), /tag checksum fails/);
        assert.equal(got.text, e2fsckView(j.img));
      });

      test('a transaction whose commit block fails its checksum is not replayed', T, async () => {
        const j = journaled();
        patch(j.img, j.commit + 200, [0x55]);
        const got = await view(j.img);
        assert.equal(got.text, 'old content, in place\n');
        assert.match(got.warnings.join('\n'), /commit block fails its checksum/);
        assert.equal(got.text, e2fsckView(j.img));
      });

      test('a descriptor block that fails its checksum fails the recovery: nothing replayed, reported', T, async () => {
        const j = journaled();
        patch(j.img, j.descriptor + j.bs - 100, [0x55]); // unused tag space, before the tail
        const got = await view(j.img);
        assert.equal(got.text, 'old content, in place\n');
        assert.match(got.warnings.join('\n'), /cannot be replayed.*descriptor or revoke block that fails its checksum/);
        assert.equal(got.text, e2fsckView(j.img));
      });

      test('a journal superblock that fails its checksum: nothing replayed, reported', T, async () => {
        const j = journaled();
        patch(j.img, j.jsbAt + 0x60, [0x55]); // s_padding: harmless but covered by the checksum
        const got = await view(j.img);
        assert.equal(got.text, 'old content, in place\n');
        assert.match(got.warnings.join('\n'), /journal superblock fails its checksum/);
        assert.equal(got.text, e2fsckView(j.img));
      });

      test('a revoke block that fails its checksum fails the recovery', T, async () => {
        const j = journaled();
        const block = Number(sh('debugfs', ['-R', 'bmap /file.txt 0', j.img]).trim());
        // a second transaction revoking another block
        sh('debugfs', ['-w', '-f', '-', j.img], `jo -c\njw -r ${block + 1}\njc\n`);
        const data = readFileSync(j.img);
        const revokes = findAll(j.img, Buffer.from([0xc0, 0x3b, 0x39, 0x98, 0, 0, 0, 5])).filter((o) => o % j.bs === 0);
        assert.equal(revokes.length, 1, 'one revoke block');
        assert.ok(data.length > revokes[0]!);
        patch(j.img, revokes[0]! + j.bs - 100, [0x55]);
        const got = await view(j.img);
        assert.equal(got.text, 'old content, in place\n');
        assert.match(got.warnings.join('\n'), /cannot be replayed/);
        assert.equal(got.text, e2fsckView(j.img));
      });
    },
  );

  describe('metadata_csum (mke2fs default ext4)', () => {
    const fresh = () => {
      const d = join(tmp, `m${n}-src`);
      sh('mkdir', ['-p', join(d, 'dir')]);
      writeFileSync(join(d, 'dir', 'run.sh'), '#!/bin/sh\necho hello\n');
      writeFileSync(join(d, 'a.txt'), 'alpha\n');
      const img = join(tmp, `m${n++}.img`);
      mkExt(img, 'ext4', d, 8 * MiB, 0, ['-b', '1024']);
      return img;
    };

    test('a sound filesystem reads and says what was verified', T, async () => {
      const img = fresh();
      await withFs(img, async (fs) => {
        assert.equal((await readFile(fs, 'dir/run.sh')).toString(), '#!/bin/sh\necho hello\n');
        assert.match(
          (fs as ExtFs).checks.join('\n'),
          /superblock verified; group descriptors, inodes, extent blocks and directory blocks verified/,
        );
      });
    });

    test('a superblock that fails its checksum is fatal FS_CORRUPT', T, async () => {
      const img = fresh();
      patch(img, 1024 + 0x78, [0x41]); // s_volume_name
      const r = await FileReader.open(img);
      await code(ExtFs.open(r), 'FS_CORRUPT', /superblock fails its checksum/).finally(() => r.close());
    });

    test('an inode that fails its checksum: the entry carries FS_CORRUPT, its siblings read', T, async () => {
      const img = fresh();
      const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(sh('debugfs', ['-R', 'imap /a.txt', img]))!;
      patch(img, Number(m[1]) * 1024 + parseInt(m[2]!, 16) + 0x10, [0x01]); // i_mtime
      await withFs(img, async (fs) => {
        const entries = await fs.list(await fs.root());
        const a = entries.find((e) => e.name === 'a.txt')!;
        assert.equal(a.error?.code, 'FS_CORRUPT');
        assert.match(a.error!.message, /inode \d+ fails its checksum/);
        assert.equal((await readFile(fs, 'dir/run.sh')).toString(), '#!/bin/sh\necho hello\n');
      });
    });

    test('a directory block that fails its checksum is FS_CORRUPT, not a listing with a changed name', T, async () => {
      const img = fresh();
      const [at] = findAll(img, 'run.sh');
      patch(img, at!, Buffer.from('RUN'));
      await withFs(img, async (fs) => {
        const dir = (await fs.list(await fs.root())).find((e) => e.name === 'dir')!;
        await code(fs.list(dir), 'FS_CORRUPT', /block 0 fails its checksum/);
      });
    });

    test('a group descriptor that fails its checksum makes its inodes FS_CORRUPT', T, async () => {
      const img = fresh();
      patch(img, 2048 + 0x0e, [0x7f]); // group 0's bg_used_dirs_count (1 KiB blocks: descriptors in block 2)
      await withFs(img, async (fs) => code(fs.root(), 'FS_CORRUPT', /group descriptor 0 fails its checksum/));
    });

    test('an extent block that fails its checksum: the file fails, FS_CORRUPT', T, async () => {
      const d = join(tmp, 'frag-src');
      sh('mkdir', ['-p', d]);
      for (let i = 1; i <= 200; i++) writeFileSync(join(d, `f${i}`), 'a'.repeat(3072));
      const img = join(tmp, 'frag.img');
      mkExt(img, 'ext4', d, 4 * MiB, 0, ['-b', '1024']);
      const big = join(tmp, 'big');
      sh('dd', ['if=/dev/urandom', `of=${big}`, 'bs=1000', 'count=300', 'status=none']);
      const cmds = [];
      for (let i = 1; i <= 200; i += 2) cmds.push(`rm /f${i}`);
      cmds.push(`write ${big} big`);
      sh('debugfs', ['-w', '-f', '-', img], cmds.join('\n') + '\n');
      await withFs(img, async (fs) => assert.ok((await readFile(fs, 'big')).equals(readFileSync(big))));
      const m = /^\s*0\/\s*1\s+1\/\s*\d+\s+\d+\s+-\s+\d+\s+(\d+)/m.exec(sh('debugfs', ['-R', 'ex /big', img]));
      assert.ok(m, 'big has a depth-1 extent tree');
      patch(img, Number(m[1]) * 1024 + 1000, [0x01]); // an unused extent slot, before the tail at 1020
      await withFs(img, async (fs) => code(readFile(fs, 'big'), 'FS_CORRUPT', /extent block \d+ fails its checksum/));
    });
  });

  describe('inline data and hostile names (no metadata_csum, so the structural checks are what is tested)', () => {
    test(
      'a system.data value offset pointing into the xattr entries is FS_CORRUPT, never header bytes as content',
      T,
      async () => {
        const d = join(tmp, 'inl-src');
        sh('mkdir', ['-p', d]);
        const text = 'inline file longer than sixty bytes, so part of it is in system.data\n';
        writeFileSync(join(d, 'f.txt'), text);
        const img = join(tmp, 'inl.img');
        mkExt(img, 'ext4', d, 4 * MiB, 0, ['-O', 'inline_data,^metadata_csum', '-I', '256']);
        const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(sh('debugfs', ['-R', 'imap /f.txt', img]))!;
        const inodeAt = Number(m[1]) * blockSize(img) + parseInt(m[2]!, 16);
        await withFs(img, async (fs) => assert.equal((await readFile(fs, 'f.txt')).toString(), text));
        const raw = readFileSync(img).subarray(inodeAt, inodeAt + 256);
        const entry = 128 + raw.readUInt16LE(128) + 4;
        assert.equal(raw.readUInt32LE(entry - 4), 0xea020000);
        assert.equal(raw.toString('latin1', entry + 16, entry + 20), 'data');
        patch(img, inodeAt + entry + 2, [0, 0]); // e_value_offs = 0: the value would be the entry itself
        await withFs(img, async (fs) => code(readFile(fs, 'f.txt'), 'FS_CORRUPT', /overlaps the entries/));
      },
    );

    test('a name containing / is listed with FS_CORRUPT (not as a path that cannot be found)', T, async () => {
      const d = join(tmp, 'slash-src');
      sh('mkdir', ['-p', d]);
      writeFileSync(join(d, 'fooXbar'), 'x\n');
      writeFileSync(join(d, 'nulXname'), 'y\n');
      writeFileSync(join(d, 'ok'), 'z\n');
      const img = join(tmp, 'slash.img');
      mkExt(img, 'ext4', d, 4 * MiB, 0, ['-O', '^metadata_csum']);
      patch(img, findAll(img, 'fooXbar')[0]! + 3, Buffer.from('/'));
      patch(img, findAll(img, 'nulXname')[0]! + 3, [0]);
      await withFs(img, async (fs) => {
        const all = await readTree(fs);
        const slash = all.get('foo/bar')!.node;
        assert.equal(slash.error?.code, 'FS_CORRUPT');
        assert.match(slash.error!.message, /containing \//);
        const nul = [...all.values()].find((v) => v.node.name.startsWith('nul'))!.node;
        assert.equal(nul.error?.code, 'FS_CORRUPT');
        assert.equal(all.get('ok')!.data!.toString(), 'z\n');
      });
    });
  });
});
