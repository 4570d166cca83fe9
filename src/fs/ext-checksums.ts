import { CofferError } from '../shared/index.js';
import { crc32c } from './crc32.js';

/**
 * ext4 metadata checksums (metadata_csum; docs/DESIGN.md §Metadata checksums): crc32c without final inversion, as the
 * kernel's ext4_chksum. The filesystem seed is s_checksum_seed with csum_seed, else crc32c(~0, s_uuid); an inode's
 * seed continues it with the inode number and generation. Layouts as in the kernel (ext4_superblock_csum,
 * ext4_group_desc_csum, ext4_inode_csum, ext4_extent_block_csum, ext4_dirblock_csum, ext4_dx_csum). A failure is
 * FS_CORRUPT naming the structure, so the file or directory it belongs to fails alone (listed in `failed`).
 * Bitmaps are never read, so never checked; the older crc16 gdt_csum is not checked.
 */

const RO_COMPAT_METADATA_CSUM = 0x400;
const INCOMPAT_CSUM_SEED = 0x2000;
const CRC32C_TYPE = 1;
const ZERO2 = Buffer.alloc(2);
const ZERO4 = Buffer.alloc(4);

function corrupt(msg: string, details: Record<string, unknown> = {}): CofferError {
  return new CofferError('FS_CORRUPT', `ext: ${msg}`, { details: { ...details, checksum: true } });
}

function le32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

export class ExtChecksums {
  private constructor(
    private readonly seed: number,
    private readonly inodeBytes: number,
    private readonly blockBytes: number,
    private readonly descBytes: number,
  ) {}

  /** undefined without metadata_csum; FS_CORRUPT when the superblock itself fails (fatal, as for the kernel). */
  static open(
    sb: Buffer,
    incompat: number,
    roCompat: number,
    inodeBytes: number,
    blockBytes: number,
    descBytes: number,
  ): ExtChecksums | undefined {
    if (!(roCompat & RO_COMPAT_METADATA_CSUM)) return undefined;
    if (sb[0x175] !== CRC32C_TYPE) throw corrupt(`superblock checksum type ${sb[0x175]} (only crc32c, 1, exists)`);
    if (crc32c(0xffffffff, sb.subarray(0, 0x3fc)) !== sb.readUInt32LE(0x3fc))
      throw corrupt('the superblock fails its checksum (metadata_csum)');
    const seed = incompat & INCOMPAT_CSUM_SEED ? sb.readUInt32LE(0x270) : crc32c(0xffffffff, sb.subarray(0x68, 0x78));
    return new ExtChecksums(seed, inodeBytes, blockBytes, descBytes);
  }

  checkGroupDesc(group: number, desc: Buffer): void {
    let c = crc32c(this.seed, le32(group));
    c = crc32c(c, desc.subarray(0, 0x1e));
    c = crc32c(c, ZERO2);
    if (this.descBytes > 0x20) c = crc32c(c, desc.subarray(0x20, this.descBytes));
    if ((c & 0xffff) !== desc.readUInt16LE(0x1e))
      throw corrupt(`group descriptor ${group} fails its checksum`, { group });
  }

  private inodeSeed(ino: number, raw: Buffer): number {
    return crc32c(crc32c(this.seed, le32(ino)), raw.subarray(0x64, 0x68));
  }

  checkInode(ino: number, raw: Buffer): void {
    if (raw.subarray(0, 128).every((b) => b === 0)) return; // e2fsprogs: an all-zero inode passes
    let c = crc32c(this.inodeSeed(ino, raw), raw.subarray(0, 0x7c));
    c = crc32c(c, ZERO2);
    c = crc32c(c, raw.subarray(0x7e, 128));
    let provided = raw.readUInt16LE(0x7c);
    let hi = false;
    if (this.inodeBytes > 128) {
      c = crc32c(c, raw.subarray(128, 0x82));
      hi = raw.readUInt16LE(128) >= 4;
      let off = 0x82;
      if (hi) {
        c = crc32c(c, ZERO2);
        off = 0x84;
        provided |= raw.readUInt16LE(0x82) << 16;
      }
      c = crc32c(c, raw.subarray(off, this.inodeBytes));
    }
    if ((hi ? c : c & 0xffff) >>> 0 !== provided >>> 0)
      throw corrupt(`inode ${ino} fails its checksum`, { inode: ino });
  }

  /** A non-root extent tree node: its tail (after eh_max entries) holds crc32c(inode seed, node up to the tail). */
  checkExtentBlock(ino: number, inodeRaw: Buffer, node: Buffer, block: number): void {
    const tail = 12 + 12 * node.readUInt16LE(4);
    if (tail + 4 > this.blockBytes)
      throw corrupt(`inode ${ino}: extent block ${block} has no room for its checksum`, { inode: ino, block });
    if (crc32c(this.inodeSeed(ino, inodeRaw), node.subarray(0, tail)) !== node.readUInt32LE(tail))
      throw corrupt(`inode ${ino}: extent block ${block} fails its checksum`, { inode: ino, block });
  }

  /** One block of a directory: an htree (dx) root or node with its dx tail, or a leaf with its 12-byte dirent tail. */
  checkDirBlock(ino: number, inodeRaw: Buffer, blk: Buffer, index: number, indexed: boolean): void {
    const bs = this.blockBytes;
    const firstLen = blk.readUInt16LE(4);
    const recLen = (v: number) => (v === 0 && bs === 65536 ? 65536 : v);
    if (indexed && (index === 0 || (recLen(firstLen) === bs && blk.readUInt32LE(0) === 0))) {
      let countOffset: number;
      if (recLen(firstLen) === bs) countOffset = 8;
      else if (
        firstLen === 12 &&
        recLen(blk.readUInt16LE(16)) === bs - 12 &&
        blk.readUInt32LE(24) === 0 &&
        blk[29] === 8
      )
        countOffset = 32;
      else
        throw corrupt(`directory inode ${ino}: htree block ${index} has no valid index header`, {
          inode: ino,
          block: index,
        });
      const limit = blk.readUInt16LE(countOffset);
      const count = blk.readUInt16LE(countOffset + 2);
      const tail = countOffset + limit * 8;
      if (tail + 8 > bs || count > limit)
        throw corrupt(`directory inode ${ino}: htree block ${index} has no room for its checksum`, {
          inode: ino,
          block: index,
        });
      let c = crc32c(this.inodeSeed(ino, inodeRaw), blk.subarray(0, countOffset + count * 8));
      c = crc32c(c, blk.subarray(tail, tail + 4));
      c = crc32c(c, ZERO4);
      if (c !== blk.readUInt32LE(tail + 4))
        throw corrupt(`directory inode ${ino}: htree block ${index} fails its checksum`, { inode: ino, block: index });
      return;
    }
    const t = bs - 12;
    if (blk.readUInt32LE(t) !== 0 || blk.readUInt16LE(t + 4) !== 12 || blk[t + 6] !== 0 || blk[t + 7] !== 0xde) {
      throw corrupt(`directory inode ${ino}: block ${index} has no checksum tail`, { inode: ino, block: index });
    }
    if (crc32c(this.inodeSeed(ino, inodeRaw), blk.subarray(0, t)) !== blk.readUInt32LE(t + 8))
      throw corrupt(`directory inode ${ino}: block ${index} fails its checksum`, { inode: ino, block: index });
  }
}
