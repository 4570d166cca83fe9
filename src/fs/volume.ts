import { CofferError, type Op } from '../shared/index.js';
import { SliceReader, type BlockReader } from './block-reader.js';
import { ExtFs, looksLikeExt } from './ext.js';
import { FatFs, looksLikeFat } from './fat.js';
import { BITLOCKER_OEM } from './ntfs/boot.js';
import { NtfsFs } from './ntfs/ntfs.js';
import { readPartitionTable, type Partition, type PartitionTable } from './partitions.js';
import type { GuestFs } from './types.js';
import { XfsFs } from './xfs/xfs.js';
import { hasLvmLabel } from './lvm/label.js';

/** Recognises the filesystem at the start of a volume: 'ext', 'fat', a name we know but cannot read, or undefined. */
export async function probeFilesystem(vol: BlockReader, op?: Op): Promise<string | undefined> {
  if (vol.sizeBytes < 512) return undefined;
  const head = await vol.read(0, Math.min(vol.sizeBytes, 4096), op);
  if (head.length >= 2048 && looksLikeExt(head.subarray(1024, 2048))) return 'ext';
  if (head.subarray(3, 11).toString('latin1') === 'NTFS    ') return 'ntfs';
  if (head.subarray(3, 11).toString('latin1') === BITLOCKER_OEM) return 'bitlocker';
  if (head.subarray(0, 4).toString('latin1') === 'XFSB') return 'xfs';
  if (head.subarray(0, 6).equals(Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]))) return 'luks';
  if (hasLvmLabel(head)) return 'lvm2';
  if (head.length >= 4096 && head.subarray(4086, 4096).toString('latin1') === 'SWAPSPACE2') return 'swap';
  if (head.subarray(3, 11).toString('latin1') === 'EXFAT   ') return 'exfat';
  if (looksLikeFat(head.subarray(0, 512))) return 'fat';
  if (vol.sizeBytes >= 65536 + 72) {
    const b = await vol.read(65536 + 64, 8, op);
    if (b.toString('latin1') === '_BHRfS_M') return 'btrfs';
  }
  return undefined;
}

export async function openFilesystem(vol: BlockReader, op?: Op): Promise<GuestFs> {
  const kind = await probeFilesystem(vol, op);
  if (kind === 'ext') return ExtFs.open(vol, op);
  if (kind === 'fat') return FatFs.open(vol, op);
  if (kind === 'ntfs') return NtfsFs.open(vol, op);
  if (kind === 'xfs') return XfsFs.open(vol, op);
  const what: Record<string, string> = {
    lvm2: 'an LVM2 physical volume (name one of its logical volumes instead, as VG/LV: `files ls` lists them)',
    luks: 'a LUKS-encrypted volume',
    swap: 'Linux swap space (no files)',
    bitlocker: 'a BitLocker-encrypted volume (-FVE-FS-)',
  };
  if (kind)
    throw new CofferError(
      'FS_UNSUPPORTED',
      `${what[kind] ?? `${kind} filesystems`} cannot be read by file-level restore (ext2/3/4, ` +
        `XFS, FAT12/16/32 and NTFS can)`,
      { details: { filesystem: kind } },
    );
  throw new CofferError('FS_UNSUPPORTED', 'no supported filesystem found (ext2/3/4, XFS, FAT12/16/32, NTFS)', {
    details: { filesystem: null },
  });
}

export interface PartitionInfo extends Partition {
  /** the filesystem recognised on it (ext, fat, ntfs, xfs ...), if any */
  filesystem: string | undefined;
}

/** The partition table with the filesystem recognised on each usable partition. */
export async function listPartitions(
  disk: BlockReader,
  op?: Op,
): Promise<{ table: PartitionTable; partitions: PartitionInfo[] }> {
  const table = await readPartitionTable(disk, op);
  const partitions: PartitionInfo[] = [];
  for (const p of table.partitions) {
    let filesystem: string | undefined;
    if (!p.problem && !p.container && !p.unsupported)
      filesystem = await probeFilesystem(new SliceReader(disk, p.startBytes, p.sizeBytes), op).catch(() => undefined);
    partitions.push({ ...p, filesystem });
  }
  return { table, partitions };
}

/**
 * The volume a user names: partition `number` (as listed), or when undefined the whole disk without a partition
 * table, or the only partition of a table that has exactly one.
 */
export async function selectVolume(
  disk: BlockReader,
  number: number | undefined,
  op?: Op,
): Promise<{ partition: Partition; volume: BlockReader }> {
  const table = await readPartitionTable(disk, op);
  let p: Partition | undefined;
  if (number === undefined) {
    const usable = table.partitions.filter((x) => !x.container);
    if (usable.length !== 1) {
      throw new CofferError(
        'USAGE',
        `the disk has ${usable.length} partitions: name one with --partition N ` +
          `(${usable.map((x) => x.number).join(', ') || 'none'})`,
        { details: { partitions: usable.map((x) => x.number) } },
      );
    }
    p = usable[0];
  } else {
    p = table.partitions.find((x) => x.number === number);
    if (!p)
      throw new CofferError(
        'NOT_FOUND',
        table.scheme === 'none'
          ? `the disk has no partition table (its whole disk is partition 0), no partition ${number}`
          : `the disk has no partition ${number} ` +
              `(it has ${table.partitions.map((x) => x.number).join(', ') || 'none'})`,
      );
  }
  if (p!.container)
    throw new CofferError(
      'USAGE',
      `partition ${p!.number} is an extended partition (a container for logical partitions 5+)`,
    );
  if (p!.problem)
    throw new CofferError('FS_CORRUPT', `partition ${p!.number} ${p!.problem}`, { details: { partition: p!.number } });
  if (p!.unsupported)
    throw new CofferError('FS_UNSUPPORTED', `partition ${p!.number} cannot be read: ${p!.unsupported}`, {
      details: { partition: p!.number, role: p!.role },
    });
  return { partition: p!, volume: new SliceReader(disk, p!.startBytes, p!.sizeBytes) };
}
