import { corrupt, unsupported } from './errors.js';

/**
 * The NTFS boot sector (docs/DESIGN.md §NTFS reader): geometry and where the MFT is. Every field is checked before use.
 */
export interface NtfsBoot {
  sectorBytes: number;
  clusterBytes: number;
  totalClusters: number;
  mftLcn: number;
  mftRecordBytes: number;
  indexBlockBytes: number;
  serial: string;
}

/** BitLocker volumes carry this OEM id where NTFS has "NTFS    ". */
export const BITLOCKER_OEM = '-FVE-FS-';

/** Clusters-per-record fields: positive = clusters, negative = 2^-n bytes. */
function sizeField(v: number, clusterBytes: number, what: string): number {
  const s = v >= 0x80 ? v - 256 : v;
  const bytes = s > 0 ? s * clusterBytes : s < 0 && s >= -31 ? 2 ** -s : 0;
  if (bytes < 256 || bytes > 65536 || (bytes & (bytes - 1)) !== 0)
    throw corrupt(`absurd ${what} size ${bytes} (field ${v})`);
  return bytes;
}

export function parseBoot(b: Buffer, volumeBytes: number): NtfsBoot {
  const oem = b.subarray(3, 11).toString('latin1');
  if (oem === BITLOCKER_OEM)
    throw unsupported(
      'the volume is BitLocker-encrypted (-FVE-FS-): file-level restore cannot read encrypted volumes; restore the ' +
        'whole disk, or back up the unlocked volume from inside the guest',
      { encryption: 'bitlocker' },
    );
  if (oem !== 'NTFS    ') throw corrupt('no NTFS boot sector signature');
  const sectorBytes = b.readUInt16LE(11);
  if (![512, 1024, 2048, 4096].includes(sectorBytes)) throw corrupt(`absurd sector size ${sectorBytes}`);
  const spc = b[13]!;
  // sectors per cluster: 1..128, or 2^(256-n) for larger clusters (Windows 10 1709+: up to 2 MiB)
  const sectorsPerCluster = spc <= 0x80 ? spc : 2 ** (256 - spc);
  const clusterBytes = sectorsPerCluster * sectorBytes;
  if (sectorsPerCluster === 0 || clusterBytes > 2 * 1024 * 1024 || (sectorsPerCluster & (sectorsPerCluster - 1)) !== 0)
    throw corrupt(`absurd cluster size (${spc} sectors of ${sectorBytes})`);
  const totalSectors = Number(b.readBigUInt64LE(40));
  const totalClusters = Math.floor(totalSectors / sectorsPerCluster);
  if (totalClusters === 0 || totalSectors * sectorBytes > volumeBytes + sectorBytes)
    throw corrupt(
      `the volume claims ${totalSectors} sectors of ${sectorBytes} bytes, more than the partition (${volumeBytes} ` +
        `bytes)`,
    );
  const mftLcn = Number(b.readBigUInt64LE(48));
  if (mftLcn === 0 || mftLcn >= totalClusters) throw corrupt(`the MFT at cluster ${mftLcn} is outside the volume`);
  return {
    sectorBytes,
    clusterBytes,
    totalClusters,
    mftLcn,
    mftRecordBytes: sizeField(b[64]!, clusterBytes, 'MFT record'),
    indexBlockBytes: sizeField(b[68]!, clusterBytes, 'index block'),
    serial: b.readBigUInt64LE(72).toString(16).padStart(16, '0'),
  };
}
