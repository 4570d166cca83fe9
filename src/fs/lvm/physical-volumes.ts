import { CofferError, type Op } from '../../shared/index.js';
import { SliceReader, type BlockReader } from '../block-reader.js';
import { readPartitionTable } from '../partitions.js';
import { hasLvmLabel } from './label.js';
import { VolumeGroups, type PvCandidate } from './volume-groups.js';

/**
 * The LVM2 physical volumes on the disks of one restore point (a whole disk without a partition table, or any
 * partition), and the volume groups they form (docs/DESIGN.md §LVM2). A disk whose table cannot be read is skipped
 * with a warning: the VGs on the other disks are still found.
 */
export async function findPhysicalVolumes(
  disks: BlockReader[],
  op?: Op,
): Promise<{ candidates: PvCandidate[]; warnings: string[] }> {
  const candidates: PvCandidate[] = [];
  const warnings: string[] = [];
  for (const [disk, reader] of disks.entries()) {
    try {
      const table = await readPartitionTable(reader, op);
      for (const p of table.partitions) {
        if (p.container || p.problem || p.sizeBytes < 4096) continue;
        const vol = new SliceReader(reader, p.startBytes, p.sizeBytes);
        if (!hasLvmLabel(await vol.read(0, 2048, op))) continue;
        candidates.push({
          volume: vol,
          disk,
          where: p.number === 0 ? `disk ${disk}` : `disk ${disk} partition ${p.number}`,
        });
      }
    } catch (e) {
      if (!(e instanceof CofferError) || e.code === 'CANCELLED') throw e;
      warnings.push(`disk ${disk}: ${e.message}`);
    }
  }
  return { candidates, warnings };
}

/** The volume groups on these disks (all disks of one restore point: a VG may span several). */
export async function scanVolumeGroups(disks: BlockReader[], op?: Op): Promise<VolumeGroups> {
  const { candidates, warnings } = await findPhysicalVolumes(disks, op);
  const groups = await VolumeGroups.scan(candidates, op);
  groups.warnings.unshift(...warnings);
  return groups;
}
