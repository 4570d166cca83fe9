import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CofferError } from '../../shared/index.js';
import { BufferReader, listPartitions, openFilesystem, selectVolume } from '../index.js';
import { MiB, partitionDisk, sh } from '../testing/images.js';
import { placeNtfs } from '../testing/ntfs-images.js';

const T = { timeout: 120_000 };

async function code(p: Promise<unknown>): Promise<CofferError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CofferError, String(e));
    return e;
  }
  assert.fail('expected an error');
}

/** Disks laid out as Windows lays them out (sgdisk/sfdisk type codes), with mkntfs volumes in them. */
describe('Windows disk layouts', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'coffer-windisk-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const vol = (name: string, bytes: number) => {
    const p = join(tmp, name);
    sh('truncate', ['-s', String(bytes), p]);
    sh('mkntfs', ['-F', '-Q', '-s', '512', '-c', '4096', '-L', name, p]);
    return p;
  };

  test('GPT: EFI system, MSR (no filesystem, not an error), basic data (NTFS), recovery (NTFS)', T, async () => {
    const disk = join(tmp, 'gpt.img');
    sh('truncate', ['-s', String(64 * MiB), disk]);
    sh('sgdisk', [
      '-n',
      '1:2048:+8M',
      '-t',
      '1:EF00',
      '-n',
      '2:0:+4M',
      '-t',
      '2:0C01',
      '-n',
      '3:0:+32M',
      '-t',
      '3:0700',
      '-n',
      '4:0:+8M',
      '-t',
      '4:2700',
      disk,
    ]);
    const parts = JSON.parse(sh('sfdisk', ['--json', disk])).partitiontable.partitions as { start: number }[];
    placeNtfs(vol('c.vol', 32 * MiB), disk, parts[2]!.start * 512);
    placeNtfs(vol('re.vol', 8 * MiB), disk, parts[3]!.start * 512);
    const r = new BufferReader(readFileSync(disk));
    const { partitions } = await listPartitions(r);
    assert.deepEqual(
      partitions.map((p) => [p.number, p.role, p.filesystem ?? null, p.problem ?? null]),
      [
        [1, 'EFI system partition', null, null],
        [2, 'Microsoft reserved (MSR, no filesystem)', null, null],
        [3, 'Microsoft basic data', 'ntfs', null],
        [4, 'Windows recovery', 'ntfs', null],
      ],
    );
    for (const n of [3, 4]) {
      const fs = await openFilesystem((await selectVolume(r, n)).volume);
      assert.equal(fs.kind, 'ntfs');
      assert.deepEqual(await fs.list(await fs.root()), []);
    }
    assert.equal((await code(openFilesystem((await selectVolume(r, 2)).volume))).code, 'FS_UNSUPPORTED');
  });

  test('MBR: the 100 MB system partition and the Windows partition, both NTFS', T, async () => {
    const disk = join(tmp, 'mbr.img');
    partitionDisk(disk, 160 * MiB, 'label: dos\nstart=2048, size=100M, type=7, bootable\nsize=40M, type=7\n');
    placeNtfs(vol('sys.vol', 100 * MiB), disk, 2048 * 512);
    placeNtfs(vol('win.vol', 40 * MiB), disk, (2048 + 204800) * 512);
    const r = new BufferReader(readFileSync(disk));
    const { partitions } = await listPartitions(r);
    assert.deepEqual(
      partitions.map((p) => [p.number, p.type, p.filesystem]),
      [
        [1, '0x07', 'ntfs'],
        [2, '0x07', 'ntfs'],
      ],
    );
    for (const n of [1, 2]) assert.equal((await openFilesystem((await selectVolume(r, n)).volume)).kind, 'ntfs');
  });

  test('NTFS on a whole disk without a partition table is partition 0', T, async () => {
    const r = new BufferReader(readFileSync(vol('whole.vol', 16 * MiB)));
    const { partitions } = await listPartitions(r);
    assert.deepEqual(
      partitions.map((p) => [p.number, p.filesystem]),
      [[0, 'ntfs']],
    );
    assert.equal((await openFilesystem((await selectVolume(r, undefined)).volume)).kind, 'ntfs');
  });

  test(
    'dynamic disks (LDM): MBR type 0x42 and GPT LDM metadata/data are recognised and refused naming LDM',
    T,
    async () => {
      const mbr = join(tmp, 'ldm-mbr.img');
      partitionDisk(mbr, 32 * MiB, 'label: dos\nstart=63, size=30M, type=42\n');
      let r = new BufferReader(readFileSync(mbr));
      let { partitions } = await listPartitions(r);
      assert.equal(partitions[0]!.role, 'Windows dynamic disk (LDM)');
      let e = await code(selectVolume(r, undefined));
      assert.equal(e.code, 'FS_UNSUPPORTED');
      assert.match(e.message, /LDM/);
      const gpt = join(tmp, 'ldm-gpt.img');
      sh('truncate', ['-s', String(32 * MiB), gpt]);
      sh('sgdisk', ['-a', '1', '-n', '1:34:2047', '-t', '1:4201', '-n', '2:2048:+20M', '-t', '2:4200', gpt]);
      r = new BufferReader(readFileSync(gpt));
      ({ partitions } = await listPartitions(r));
      assert.deepEqual(
        partitions.map((p) => p.role),
        ['LDM metadata', 'LDM data'],
      );
      for (const n of [1, 2]) {
        e = await code(selectVolume(r, n));
        assert.equal(e.code, 'FS_UNSUPPORTED');
        assert.match(e.message, /dynamic disk \(LDM\)/);
      }
    },
  );
});
