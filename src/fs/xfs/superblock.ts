import { CofferError } from '../../shared/index.js';
import { xfsChecksumOk } from './crc32c.js';

/**
 * The XFS superblock (docs/DESIGN.md §XFS): big-endian, in the first sector of allocation group 0. v5 (CRC) and v4
 * with version-2 directories are read; everything else is refused by name.
 */

export const XFS_MAGIC = 0x58465342; // 'XFSB'

/** v5 incompatible features (sb_features_incompat) */
export const INCOMPAT = {
  FTYPE: 0x1,
  SPINODES: 0x2,
  META_UUID: 0x4,
  BIGTIME: 0x8,
  NEEDSREPAIR: 0x10,
  NREXT64: 0x20,
  EXCHRANGE: 0x40,
  PARENT: 0x80,
  METADIR: 0x100,
  ZONED: 0x200,
} as const;
const INCOMPAT_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(INCOMPAT).map(([k, v]) => [v, k.toLowerCase()]),
);
/** what changes nothing this reader looks at, or what it reads */
const SUPPORTED_INCOMPAT =
  INCOMPAT.FTYPE |
  INCOMPAT.SPINODES |
  INCOMPAT.META_UUID |
  INCOMPAT.BIGTIME |
  INCOMPAT.NEEDSREPAIR |
  INCOMPAT.NREXT64 |
  INCOMPAT.EXCHRANGE |
  INCOMPAT.PARENT;

const V4 = {
  ATTR: 0x10,
  NLINK: 0x20,
  QUOTA: 0x40,
  ALIGN: 0x80,
  DALIGN: 0x100,
  SHARED: 0x200,
  LOGV2: 0x400,
  SECTOR: 0x800,
  EXTFLG: 0x1000,
  DIRV2: 0x2000,
  BORG: 0x4000,
  MOREBITS: 0x8000,
} as const;
const V2_FTYPE = 0x200;

export interface Superblock {
  version: 4 | 5;
  blockBytes: number;
  blockLog: number;
  sectorBytes: number;
  dataBlocks: number;
  agBlocks: number;
  agCount: number;
  agBlockLog: number;
  inodeBytes: number;
  inodeLog: number;
  inodesPerBlockLog: number;
  rootIno: number;
  logStart: number;
  logBlocks: number;
  /** directory block size in bytes */
  dirBlockBytes: number;
  /** directory entries carry a file type byte */
  ftype: boolean;
  incompat: number;
  /** sb_meta_uuid (v5 with META_UUID) or sb_uuid: the uuid in every v5 metadata block */
  metaUuid: Buffer;
  needsRepair: boolean;
}

function corrupt(msg: string, details: Record<string, unknown> = {}): CofferError {
  return new CofferError('FS_CORRUPT', `xfs: ${msg}`, { details });
}

const u64 = (b: Buffer, o: number): number => {
  const v = b.readBigUInt64BE(o);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`superblock field at ${o} is absurdly large (${v})`);
  return Number(v);
};

/** Parses and validates the superblock sector (at least 512 bytes; the whole sector for the v5 checksum). */
export function parseSuperblock(b: Buffer, volumeBytes: number): Superblock {
  if (b.length < 512 || b.readUInt32BE(0) !== XFS_MAGIC) throw corrupt('bad superblock magic');
  const versionnum = b.readUInt16BE(100);
  const v = versionnum & 0xf;
  if (v !== 4 && v !== 5)
    throw new CofferError('FS_UNSUPPORTED', `xfs: superblock version ${v} (only v4 and v5 are read)`, {
      details: { version: v },
    });
  const sectorBytes = b.readUInt16BE(102);
  if (sectorBytes < 512 || sectorBytes > 32768 || (sectorBytes & (sectorBytes - 1)) !== 0)
    throw corrupt(`absurd sector size ${sectorBytes}`);
  if (v === 5) {
    if (b.length < sectorBytes) throw corrupt('short superblock sector');
    if (!xfsChecksumOk(b.subarray(0, sectorBytes), 224)) throw corrupt('superblock checksum mismatch (crc32c)');
  } else if (!(versionnum & V4.DIRV2)) {
    throw new CofferError(
      'FS_UNSUPPORTED',
      'xfs: a v4 filesystem with version-1 directories (only version-2 directories are read)',
    );
  }
  const blockBytes = b.readUInt32BE(4);
  const blockLog = b[120]!;
  if (blockLog < 9 || blockLog > 16 || blockBytes !== 1 << blockLog)
    throw corrupt(`absurd block size ${blockBytes} (log ${blockLog})`);
  const dataBlocks = u64(b, 8);
  const agBlocks = b.readUInt32BE(84);
  const agCount = b.readUInt32BE(88);
  const agBlockLog = b[124]!;
  const inodeBytes = b.readUInt16BE(104);
  const inodeLog = b[122]!;
  const inodesPerBlockLog = b[123]!;
  const rootIno = u64(b, 56);
  if (inodeLog < 8 || inodeLog > 11 || inodeBytes !== 1 << inodeLog || inodeBytes > blockBytes)
    throw corrupt(`absurd inode size ${inodeBytes}`);
  if (inodesPerBlockLog !== blockLog - inodeLog) throw corrupt('inodes per block does not match block and inode sizes');
  if (
    agBlocks < 16 ||
    agBlockLog > 31 ||
    agBlockLog < 4 ||
    agBlocks > 2 ** agBlockLog ||
    agBlocks <= 2 ** (agBlockLog - 1)
  )
    throw corrupt(`absurd allocation group size ${agBlocks} (log ${agBlockLog})`);
  if (agCount === 0 || dataBlocks === 0 || dataBlocks > agCount * agBlocks || dataBlocks <= (agCount - 1) * agBlocks)
    throw corrupt(`${dataBlocks} blocks do not fit ${agCount} allocation groups of ${agBlocks}`);
  if (dataBlocks * blockBytes > volumeBytes)
    throw corrupt(
      `the filesystem (${dataBlocks} blocks of ${blockBytes}) is larger than its volume (${volumeBytes} bytes)`,
      { dataBlocks, blockBytes, volumeBytes },
    );
  const dirBlockLog = b[192]!;
  if (blockLog + dirBlockLog > 16) throw corrupt(`absurd directory block size 2^${blockLog + dirBlockLog}`);
  let incompat = 0;
  let ftype = false;
  if (v === 5) {
    incompat = b.readUInt32BE(216);
    const unknown = incompat & ~SUPPORTED_INCOMPAT;
    if (unknown) {
      const names: string[] = [];
      for (let bit = 1; bit !== 0 && bit <= 0x80000000; bit = (bit << 1) >>> 0)
        if (unknown & bit) names.push(INCOMPAT_NAMES[bit] ?? `0x${bit.toString(16)}`);
      throw new CofferError(
        'FS_UNSUPPORTED',
        `xfs: the filesystem uses incompatible features this reader cannot read: ${names.join(', ')}`,
        { details: { incompat: `0x${incompat.toString(16)}`, unsupported: names } },
      );
    }
    ftype = (incompat & INCOMPAT.FTYPE) !== 0;
  } else {
    const features2 = versionnum & V4.MOREBITS ? b.readUInt32BE(200) : 0;
    ftype = (features2 & V2_FTYPE) !== 0;
  }
  const metaUuid = Buffer.from(v === 5 && incompat & INCOMPAT.META_UUID ? b.subarray(248, 264) : b.subarray(32, 48));
  return {
    version: v,
    blockBytes,
    blockLog,
    sectorBytes,
    dataBlocks,
    agBlocks,
    agCount,
    agBlockLog,
    inodeBytes,
    inodeLog,
    inodesPerBlockLog,
    rootIno,
    logStart: u64(b, 48),
    logBlocks: b.readUInt32BE(96),
    dirBlockBytes: blockBytes << dirBlockLog,
    ftype,
    incompat,
    metaUuid,
    needsRepair: (incompat & INCOMPAT.NEEDSREPAIR) !== 0,
  };
}
