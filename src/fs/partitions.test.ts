import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MiB, mkExt, mkFat, partitionDisk, partitionsOf, patch, sh } from './testing/images.js';
import { CofferError } from '../shared/index.js';
import { crc32 } from './crc32.js';
import {
  BufferReader,
  FileReader,
  listPartitions,
  openFilesystem,
  probeFilesystem,
  readPartitionTable,
  selectVolume,
} from './index.js';

const T = { timeout: 60_000 };

async function withDisk<T>(img: string, fn: (r: FileReader) => Promise<T>): Promise<T> {
  const r = await FileReader.open(img);
  try {
    return await fn(r);
  } finally {
    await r.close();
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

const MBR_SCRIPT =
  'label: dos\nstart=2048, size=16M, type=83\nstart=34816, size=8M, type=c\nstart=51200, size=20M, ' +
  'type=5\nstart=53248, size=6M, type=83\nstart=67584, size=4M, type=83\n';

describe('partition tables', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'coffer-parts-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const src = join(tmp, 'src');
  sh('mkdir', ['-p', src]);
  writeFileSync(join(src, 'hello.txt'), 'hello\n');

  const mbrDisk = (name: string) => {
    const img = join(tmp, name);
    partitionDisk(img, 48 * MiB, MBR_SCRIPT);
    return img;
  };

  test('MBR with primary, extended and two logical partitions: Linux numbering, filesystems found', T, async () => {
    const img = mbrDisk('mbr.img');
    const parts = partitionsOf(img);
    mkExt(img, 'ext4', src, parts[0]!.size, parts[0]!.start);
    mkFat(img, 16, src, parts[1]!.size, parts[1]!.start);
    mkExt(img, 'ext2', src, parts[4]!.size, parts[4]!.start);
    await withDisk(img, async (d) => {
      const { table, partitions } = await listPartitions(d);
      assert.equal(table.scheme, 'mbr');
      assert.deepEqual(
        partitions.map((p) => [p.number, p.type, p.filesystem, Boolean(p.container)]),
        [
          [1, '0x83', 'ext', false],
          [2, '0x0c', 'fat', false],
          [3, '0x05', undefined, true],
          [5, '0x83', undefined, false],
          [6, '0x83', 'ext', false],
        ],
      );
      assert.deepEqual(
        partitions.map((p) => [p.startBytes, p.sizeBytes]),
        parts.map((p) => [p.start, p.size]),
      );
      const six = await selectVolume(d, 6);
      assert.equal((await openFilesystem(six.volume)).kind, 'ext2');
      await expectCode(selectVolume(d, undefined), 'USAGE', /--partition/);
      await expectCode(selectVolume(d, 3), 'USAGE', /extended/);
      await expectCode(selectVolume(d, 4), 'NOT_FOUND');
      await expectCode(openFilesystem((await selectVolume(d, 5)).volume), 'FS_UNSUPPORTED', /no supported filesystem/);
    });
  });

  test('GPT with several partitions; the backup header is used when the primary is damaged', T, async () => {
    const img = join(tmp, 'gpt.img');
    partitionDisk(
      img,
      72 * MiB,
      'label: gpt\nstart=2048, size=8M, name="first"\nsize=8M, name="second"\nsize=40M, ' +
        'type=EBD0A0A2-B9E5-4433-87C0-68B5D0A13D76\n',
    );
    const parts = partitionsOf(img);
    mkExt(img, 'ext4', src, parts[1]!.size, parts[1]!.start);
    mkFat(img, 32, src, parts[2]!.size, parts[2]!.start);
    await withDisk(img, async (d) => {
      const { table, partitions } = await listPartitions(d);
      assert.equal(table.scheme, 'gpt');
      assert.deepEqual(
        partitions.map((p) => [p.number, p.name, p.filesystem]),
        [
          [1, 'first', undefined],
          [2, 'second', 'ext'],
          [3, '', 'fat'],
        ],
      );
      assert.equal(partitions[2]!.type, 'EBD0A0A2-B9E5-4433-87C0-68B5D0A13D76');
      assert.equal((await openFilesystem((await selectVolume(d, 3)).volume)).kind, 'fat32');
    });
    const intact = readFileSync(img);
    patch(img, 512, Buffer.from('EFI JUNK')); // primary signature
    await withDisk(img, async (d) => assert.equal((await readPartitionTable(d)).partitions.length, 3));
    patch(img, 72 * MiB - 512, Buffer.from('EFI JUNK')); // and the backup's
    await withDisk(img, (d) => expectCode(readPartitionTable(d), 'FS_CORRUPT', /no EFI PART signature/));
    writeFileSync(img, intact);
    patch(img, 512 + 16, [1, 2, 3, 4]); // primary header CRC
    await withDisk(img, async (d) => assert.equal((await readPartitionTable(d)).partitions.length, 3));
    patch(img, 72 * MiB - 512 + 16, [1, 2, 3, 4]); // and the backup's
    await withDisk(img, (d) => expectCode(readPartitionTable(d), 'FS_CORRUPT', /header CRC mismatch/));
  });

  test('GPT: entry array CRC, absurd entry count (with valid header CRCs), partition past the end', T, async () => {
    const img = join(tmp, 'gpt2.img');
    partitionDisk(img, 16 * MiB, 'label: gpt\nstart=2048, size=4M\nsize=4M\n');
    const good = readFileSync(img);
    // entry array CRC: flip a byte of entry 1's name in both arrays
    patch(img, 1024 + 56, [0x41]);
    const backupArray = 16 * MiB - 512 - 128 * 128;
    patch(img, backupArray + 56, [0x41]);
    await withDisk(img, (d) => expectCode(readPartitionTable(d), 'FS_CORRUPT', /entry array CRC mismatch/));
    // absurd count, header CRC recomputed
    writeFileSync(img, good);
    for (const hdrAt of [512, 16 * MiB - 512]) {
      const h = Buffer.from(good.subarray(hdrAt, hdrAt + 92));
      h.writeUInt32LE(10_000_000, 80);
      h.writeUInt32LE(0, 16);
      h.writeUInt32LE(crc32(h), 16);
      patch(img, hdrAt, h);
    }
    await withDisk(img, (d) => expectCode(readPartitionTable(d), 'FS_CORRUPT', /absurd entry count/));
    // partition 2 ends past the disk: entry and both CRCs rewritten consistently
    writeFileSync(img, good);
    const arr = Buffer.from(good.subarray(1024, 1024 + 128 * 128));
    arr.writeBigUInt64LE(BigInt(4 * 1024 * 1024), 128 + 40);
    for (const [hdrAt, arrAt] of [
      [512, 1024],
      [16 * MiB - 512, backupArray],
    ] as const) {
      patch(img, arrAt, arr);
      const h = Buffer.from(good.subarray(hdrAt, hdrAt + 92));
      h.writeUInt32LE(crc32(arr), 88);
      h.writeUInt32LE(0, 16);
      h.writeUInt32LE(crc32(h), 16);
      patch(img, hdrAt, h);
    }
    await withDisk(img, async (d) => {
      const t = await readPartitionTable(d);
      assert.match(t.partitions[1]!.problem ?? '', /past the end|usable area/);
      await expectCode(selectVolume(d, 2), 'FS_CORRUPT', /partition 2/);
    });
  });

  test('MBR: partition past the disk end, overlapping partitions, a bad boot flag, an EBR loop', T, async () => {
    // past the end: the disk is cut short after partitioning
    let img = mbrDisk('short.img');
    sh('truncate', ['-s', `${20 * MiB}`, img]);
    await withDisk(img, async (d) => {
      const t = await readPartitionTable(d);
      assert.match(t.partitions.find((p) => p.number === 2)!.problem!, /past the end/);
      await expectCode(selectVolume(d, 2), 'FS_CORRUPT', /past the end/);
    });
    // a bad 55 AA signature: not a partition table; the whole disk holds no filesystem we know
    img = mbrDisk('nosig.img');
    patch(img, 510, [0x55, 0xab]);
    await withDisk(img, async (d) => {
      const v = await selectVolume(d, undefined);
      assert.equal(v.partition.scheme, 'none');
      await expectCode(openFilesystem(v.volume), 'FS_UNSUPPORTED', /no supported filesystem/);
    });
    // overlap: partition 2 starts inside partition 1
    img = mbrDisk('overlap.img');
    patch(img, 446 + 16 + 8, [0x00, 0x10, 0, 0]);
    await withDisk(img, async (d) => {
      const t = await readPartitionTable(d);
      assert.match(t.partitions[0]!.problem!, /overlaps partition 2/);
      await expectCode(selectVolume(d, 1), 'FS_CORRUPT', /overlaps/);
    });
    // not a partition table and no filesystem: an invalid boot indicator
    img = mbrDisk('bootflag.img');
    patch(img, 446, [0x42]);
    await withDisk(img, (d) => expectCode(readPartitionTable(d), 'FS_CORRUPT', /boot indicator/));
    // the second EBR's link to the next one points at itself
    img = mbrDisk('ebrloop.img');
    const extStart = 51200 * 512;
    const linkAt = readFileSync(img)
      .subarray(extStart + 462, extStart + 478)
      .readUInt32LE(8);
    assert.ok(linkAt > 0, 'the first EBR links to a second');
    const self = Buffer.alloc(16);
    self[4] = 0x05;
    self.writeUInt32LE(linkAt, 8);
    self.writeUInt32LE(8, 12);
    patch(img, extStart + linkAt * 512 + 462, self);
    await withDisk(img, (d) => expectCode(readPartitionTable(d), 'FS_CORRUPT', /loops/));
    // an MBR whose slots all claim huge sizes
    img = mbrDisk('huge.img');
    for (let i = 0; i < 4; i++) patch(img, 446 + i * 16 + 12, [0xff, 0xff, 0xff, 0xff]);
    await withDisk(img, async (d) => {
      const t = await readPartitionTable(d);
      assert.ok(t.partitions.every((p) => p.problem));
    });
  });

  test(
    'random garbage in MBRs, EBRs and GPTs yields a table or a coded error, never a crash or a hang',
    T,
    async () => {
      const gptImg = join(tmp, 'fuzz-gpt.img');
      partitionDisk(gptImg, 4 * MiB, 'label: gpt\nstart=2048, size=1M\nsize=1M\n');
      const mbrImg = mbrDisk('fuzz-mbr.img');
      let seed = 5;
      const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
      for (const [img, ranges] of [
        [
          gptImg,
          [
            [0, 512],
            [512, 92],
            [1024, 256],
          ],
        ],
        [
          mbrImg,
          [
            [446, 64],
            [51200 * 512 + 446, 64],
          ],
        ],
      ] as const) {
        const base = readFileSync(img);
        for (let round = 0; round < 20; round++) {
          const copy = Buffer.from(base);
          for (const [at, len] of ranges)
            for (let k = 0; k < 6; k++) copy[at + Math.floor(rnd() * len)] = Math.floor(rnd() * 256);
          if (round % 2) copy.writeUInt16LE(0xaa55, 510);
          try {
            const t = await listPartitions(new BufferReader(copy));
            assert.ok(t.partitions.length <= 16384);
          } catch (e) {
            assert.ok(e instanceof CofferError, `round ${round}: ${String((e as Error).stack)}`);
          }
        }
      }
    },
  );

  test('volumes that are not filesystems we read are named: swap, an LVM2 physical volume, LUKS', T, async () => {
    const swap = join(tmp, 'swap.img');
    sh('truncate', ['-s', '4M', swap]);
    sh('mkswap', [swap]);
    const lvm = Buffer.alloc(MiB);
    lvm.write('LABELONE', 512);
    lvm.write('LVM2 001', 536);
    const luks = Buffer.alloc(MiB);
    Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]).copy(luks);
    await withDisk(swap, async (d) => {
      assert.equal(await probeFilesystem(d), 'swap');
      await expectCode(openFilesystem(d), 'FS_UNSUPPORTED', /swap/);
    });
    await expectCode(openFilesystem(new BufferReader(lvm)), 'FS_UNSUPPORTED', /LVM2 physical volume/);
    await expectCode(openFilesystem(new BufferReader(luks)), 'FS_UNSUPPORTED', /LUKS/);
  });

  test('no partition table: an ext4 or FAT on the whole disk is partition 0', T, async () => {
    const e = join(tmp, 'whole-ext.img');
    mkExt(e, 'ext4', src, 8 * MiB);
    const f = join(tmp, 'whole-fat.img');
    mkFat(f, 16, src, 16 * MiB);
    for (const [img, kind] of [
      [e, 'ext4'],
      [f, 'fat16'],
    ] as const) {
      await withDisk(img, async (d) => {
        const t = await readPartitionTable(d);
        assert.equal(t.scheme, 'none');
        const v = await selectVolume(d, undefined);
        assert.equal(v.partition.number, 0);
        assert.equal((await openFilesystem(v.volume)).kind, kind);
        await expectCode(selectVolume(d, 1), 'NOT_FOUND', /no partition table/);
      });
    }
  });
});
