import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  readTree,
  LONG_NAME,
  MiB,
  T_MTIME,
  UNICODE_NAME,
  findAll,
  makeFatTree,
  mkFat,
  patch,
  sh,
} from './testing/images.js';
import { CofferError } from '../shared/index.js';
import { BufferReader, FileReader, openFilesystem, type GuestFs } from './index.js';

const T = { timeout: 60_000 };

async function open(img: string): Promise<{ fs: GuestFs; close: () => Promise<void> }> {
  const r = await FileReader.open(img);
  try {
    return { fs: await openFilesystem(r), close: () => r.close() };
  } catch (e) {
    await r.close();
    throw e;
  }
}

async function expectCode(p: Promise<unknown>, code: string, re?: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CofferError, `expected CofferError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

describe('FAT12/16/32 reader against mkfs.fat + mcopy images', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'coffer-fat-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const src = join(tmp, 'src');
  const tree = makeFatTree(src);

  for (const [bits, size] of [
    [12, 8 * MiB],
    [16, 32 * MiB],
    [32, 64 * MiB],
  ] as const) {
    test(`FAT${bits}: contents, long names, 8.3 names, times`, T, async () => {
      const img = join(tmp, `fat${bits}.img`);
      mkFat(img, bits, src, size);
      const { fs, close } = await open(img);
      try {
        assert.equal(fs.kind, `fat${bits}`);
        const all = await readTree(fs);
        for (const f of tree.files) {
          const got = all.get(f);
          assert.ok(got?.data, `${f} missing; have ${[...all.keys()].slice(0, 20).join(', ')}`);
          assert.ok(got.data.equals(readFileSync(join(src, f))), `${f}: content differs`);
          // FAT keeps mtimes in 2-second steps, as local wall-clock time (written in TZ=UTC, read as UTC)
          assert.equal(got.node.mtimeMs, Math.floor(T_MTIME / 2000) * 2000, `${f}: mtime`);
          assert.equal(got.node.mode, 0o644);
        }
        assert.ok(all.has(LONG_NAME) && all.has(UNICODE_NAME) && all.has('README.TXT'));
        assert.equal(all.get('Program Files')!.node.type, 'dir');
      } finally {
        await close();
      }
    });
  }

  describe('hostile images: coded errors, no crash, no hang', () => {
    /** a FAT16 with one 3-cluster file LOOP.BIN; returns the image, its first cluster and the FAT offset */
    const loopImage = (name: string) => {
      const d = join(tmp, `${name}-src`);
      sh('mkdir', ['-p', d]);
      sh('dd', ['if=/dev/urandom', `of=${join(d, 'LOOP.BIN')}`, 'bs=2048', 'count=3', 'status=none']);
      const img = join(tmp, `${name}.img`);
      sh('rm', ['-f', img]);
      sh('mkfs.fat', ['-F', '16', '-s', '4', '-C', img, String(16 * 1024)]);
      sh('mcopy', ['-i', img, join(d, 'LOOP.BIN'), '::/']);
      const data = readFileSync(img);
      const [entry] = findAll(img, 'LOOP    BIN');
      assert.ok(entry !== undefined);
      const cluster = data.readUInt16LE(entry + 26);
      const fatOff = data.readUInt16LE(14) * data.readUInt16LE(11);
      return { img, entry, cluster, fatOff };
    };

    test('a FAT chain that loops', T, async () => {
      const { img, cluster, fatOff } = loopImage('loop');
      const b = Buffer.alloc(2);
      b.writeUInt16LE(cluster); // the second cluster points back to the first
      patch(img, fatOff + (cluster + 1) * 2, b);
      const { fs, close } = await open(img);
      try {
        await expectCode(readTree(fs), 'FS_CORRUPT', /loops/);
      } finally {
        await close();
      }
    });

    test('a cluster number out of range (in the directory entry and in the FAT)', T, async () => {
      const a = loopImage('range1');
      patch(a.img, a.entry + 26, [0xf0, 0xff]);
      let { fs, close } = await open(a.img);
      try {
        await expectCode(readTree(fs), 'FS_CORRUPT', /out of range/);
      } finally {
        await close();
      }
      const b = loopImage('range2');
      patch(b.img, b.fatOff + b.cluster * 2, [0x00, 0xfe]);
      ({ fs, close } = await open(b.img));
      try {
        await expectCode(readTree(fs), 'FS_CORRUPT', /out of range/);
      } finally {
        await close();
      }
    });

    test('a file larger than its chain, and a free cluster inside a chain', T, async () => {
      const a = loopImage('short');
      const size = Buffer.alloc(4);
      size.writeUInt32LE(10 * MiB);
      patch(a.img, a.entry + 28, size);
      let { fs, close } = await open(a.img);
      try {
        await expectCode(readTree(fs), 'FS_CORRUPT', /chain ends|free/);
      } finally {
        await close();
      }
      const b = loopImage('free');
      patch(b.img, b.fatOff + b.cluster * 2, [0, 0]);
      ({ fs, close } = await open(b.img));
      try {
        await expectCode(readTree(fs), 'FS_CORRUPT', /free cluster/);
      } finally {
        await close();
      }
    });

    test('a long name whose checksum does not match its 8.3 entry falls back to the 8.3 name', T, async () => {
      const d = join(tmp, 'lfn-src');
      sh('mkdir', ['-p', d]);
      writeFileSync(join(d, 'A Rather Long File Name.txt'), 'lfn\n');
      const img = join(tmp, 'lfn.img');
      mkFat(img, 16, d, 16 * MiB);
      let { fs, close } = await open(img);
      try {
        assert.deepEqual(
          (await fs.list(await fs.root())).map((n) => n.name),
          ['A Rather Long File Name.txt'],
        );
      } finally {
        await close();
      }
      // the LFN entries sit right before the 8.3 entry: corrupt their checksum byte (offset 13)
      const [short] = findAll(img, 'ARATHE~1TXT');
      assert.ok(short !== undefined);
      patch(img, short - 32 + 13, [0x00]);
      ({ fs, close } = await open(img));
      try {
        const names = (await fs.list(await fs.root())).map((n) => n.name);
        assert.deepEqual(names, ['ARATHE~1.TXT']);
      } finally {
        await close();
      }
    });

    test(
      'a long name containing / is listed with FS_CORRUPT (issue 21: ls and get agree), siblings still read',
      T,
      async () => {
        const d = join(tmp, 'slash-src');
        sh('mkdir', ['-p', d]);
        writeFileSync(join(d, 'fooXbar long name.txt'), 'x\n');
        writeFileSync(join(d, 'ok.txt'), 'ok\n');
        const img = join(tmp, 'slash.img');
        mkFat(img, 16, d, 16 * MiB);
        const [at] = findAll(img, Buffer.from('X\0b\0', 'latin1'));
        assert.ok(at !== undefined);
        patch(img, at, Buffer.from('/'));
        const { fs, close } = await open(img);
        try {
          const all = await readTree(fs);
          const bad = all.get('foo/bar long name.txt')!.node;
          assert.equal(bad.error?.code, 'FS_CORRUPT');
          assert.match(bad.error!.message, /containing \//);
          assert.equal(all.get('ok.txt')!.data!.toString(), 'ok\n');
        } finally {
          await close();
        }
      },
    );

    test('random garbage over the boot sector, FAT and root directory never crashes or hangs', T, async () => {
      const img = join(tmp, 'garbage-base.img');
      mkFat(img, 16, src, 32 * MiB);
      const data = readFileSync(img);
      let seed = 11;
      const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
      for (let round = 0; round < 12; round++) {
        const copy = Buffer.from(data);
        const span = round < 4 ? 512 : 256 * 1024; // first the boot sector, then the FATs and the root directory
        for (let k = 0; k < 100; k++) copy[Math.floor(rnd() * span)] = Math.floor(rnd() * 256);
        const r = new BufferReader(copy);
        try {
          const fs = await openFilesystem(r);
          await readTree(fs);
        } catch (e) {
          assert.ok(e instanceof CofferError, `round ${round}: ${String((e as Error).stack)}`);
        }
      }
    });

    test('a boot sector whose volume exceeds the partition, and a FAT too small for its clusters', T, async () => {
      const a = loopImage('big');
      patch(a.img, 19, [0, 0]);
      patch(a.img, 32, [0xff, 0xff, 0xff, 0x00]);
      await expectCode(open(a.img), 'FS_CORRUPT', /exceeds the partition/);
      const b = loopImage('smallfat');
      patch(b.img, 22, [1, 0]);
      await expectCode(open(b.img), 'FS_CORRUPT', /too small/);
    });
  });
});
