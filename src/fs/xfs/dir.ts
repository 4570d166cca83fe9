import { CofferError } from '../../shared/index.js';
import { xfsChecksumOk } from './crc32c.js';

/**
 * XFS version-2/3 directory contents (docs/DESIGN.md §XFS). Short-form directories live in the inode; every other
 * format (block, leaf, node, btree) keeps its entries in data blocks below the 32 GiB leaf offset, so listing reads
 * those and skips the hash index (leaf, node and free blocks) altogether.
 */

export interface DirEntry {
  name: string;
  ino: number;
  /** the ftype byte (0 when the filesystem has none) */
  ftype: number;
}

export interface DirContext {
  ino: number;
  v5: boolean;
  ftype: boolean;
  metaUuid: Buffer;
}

const MAGIC = { XDB3: 0x58444233, XDD3: 0x58444433, XD2B: 0x58443242, XD2D: 0x58443244 } as const;

function corrupt(ino: number, msg: string): CofferError {
  return new CofferError('FS_CORRUPT', `xfs: directory inode ${ino}: ${msg}`, { details: { inode: ino } });
}

function decodeName(b: Buffer): string {
  return b.toString('utf8');
}

/** A short-form directory (format 'local'): entries packed in the inode's data fork. */
export function shortFormEntries(ctx: DirContext, fork: Buffer, size: number): DirEntry[] {
  if (size < 6 || size > fork.length)
    throw corrupt(ctx.ino, `short-form directory of ${size} bytes in a fork of ${fork.length}`);
  const b = fork.subarray(0, size);
  const count = b[0]!; // all entries
  const i8count = b[1]!; // those needing 8-byte inode numbers (then all are stored in 8 bytes)
  const inoBytes = i8count ? 8 : 4;
  let p = 2 + inoBytes;
  const out: DirEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (p + 3 > b.length) throw corrupt(ctx.ino, `short-form entry ${i} past the end`);
    const namelen = b[p]!;
    const nameAt = p + 3;
    const after = nameAt + namelen + (ctx.ftype ? 1 : 0);
    if (namelen === 0 || after + inoBytes > b.length)
      throw corrupt(ctx.ino, `short-form entry ${i} (name of ${namelen} bytes) overflows the directory`);
    const ftype = ctx.ftype ? b[nameAt + namelen]! : 0;
    const ino = inoBytes === 8 ? Number(b.readBigUInt64BE(after)) : b.readUInt32BE(after);
    out.push({ name: decodeName(b.subarray(nameAt, nameAt + namelen)), ino, ftype });
    p = after + inoBytes;
  }
  return out;
}

/**
 * One directory data block (XDB3/XD2B single-block form, or XDD3/XD2D of a leaf/node/btree directory), `blk` being the
 * whole directory block; its entries are appended to `out`. Anything else below the leaf offset is FS_CORRUPT.
 */
export function dataBlockEntries(ctx: DirContext, blk: Buffer, blockNo: number, out: DirEntry[]): void {
  const magic = blk.readUInt32BE(0);
  const block = magic === MAGIC.XDB3 || magic === MAGIC.XD2B;
  const data = magic === MAGIC.XDD3 || magic === MAGIC.XD2D;
  if ((!block && !data) || ctx.v5 !== (magic === MAGIC.XDB3 || magic === MAGIC.XDD3))
    throw corrupt(ctx.ino, `directory block ${blockNo}: bad magic 0x${magic.toString(16)}`);
  let hdr = 16;
  if (ctx.v5) {
    if (!xfsChecksumOk(blk, 4)) throw corrupt(ctx.ino, `directory block ${blockNo}: checksum mismatch (crc32c)`);
    if (!blk.subarray(24, 40).equals(ctx.metaUuid))
      throw corrupt(ctx.ino, `directory block ${blockNo}: belongs to another filesystem (uuid)`);
    if (blk.readBigUInt64BE(40) !== BigInt(ctx.ino))
      throw corrupt(ctx.ino, `directory block ${blockNo}: belongs to inode ${blk.readBigUInt64BE(40)}`);
    hdr = 64;
  }
  let end = blk.length;
  if (block) {
    const count = blk.readUInt32BE(blk.length - 8);
    end = blk.length - 8 - count * 8;
    if (count === 0 || end < hdr)
      throw corrupt(ctx.ino, `directory block ${blockNo}: ${count} leaf entries do not fit`);
  }
  let p = hdr;
  while (p < end) {
    if (p + 8 > end) throw corrupt(ctx.ino, `directory block ${blockNo}: truncated entry at ${p}`);
    if (blk.readUInt16BE(p) === 0xffff) {
      const len = blk.readUInt16BE(p + 2);
      if (len < 8 || len % 8 !== 0 || p + len > end)
        throw corrupt(ctx.ino, `directory block ${blockNo}: bad free space of ${len} bytes at ${p}`);
      p += len;
      continue;
    }
    const ino = Number(blk.readBigUInt64BE(p));
    const namelen = blk[p + 8]!;
    const size = (8 + 1 + namelen + (ctx.ftype ? 1 : 0) + 2 + 7) & ~7;
    if (namelen === 0 || p + size > end)
      throw corrupt(
        ctx.ino,
        `directory block ${blockNo}: entry at ${p} (name of ${namelen} bytes) overflows the block`,
      );
    if (blk.readUInt16BE(p + size - 2) !== p)
      throw corrupt(ctx.ino, `directory block ${blockNo}: entry at ${p} has a wrong tag`);
    const name = decodeName(blk.subarray(p + 9, p + 9 + namelen));
    if (name !== '.' && name !== '..') out.push({ name, ino, ftype: ctx.ftype ? blk[p + 9 + namelen]! : 0 });
    p += size;
  }
}
