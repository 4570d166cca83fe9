import { CofferError, type Op } from '../../shared/index.js';
import { xfsChecksumOk } from './crc32c.js';

/**
 * Where an XFS fork's blocks are (docs/DESIGN.md §XFS): extent lists in the inode and bmap btrees (BMA3 / BMAP
 * blocks), walked with bounded depth, each node visited once, extents strictly ascending (so no walk loops).
 */

/**
 * `count` blocks of the fork from file block `logical` at filesystem block `fsb` (AG number << agblklog | AG block).
 */
export interface XfsExtent {
  logical: number;
  fsb: number;
  count: number;
  /** preallocated, never written: reads as zeros */
  unwritten: boolean;
}

export interface BmapContext {
  ino: number;
  v5: boolean;
  blockBytes: number;
  metaUuid: Buffer;
  /** checks a filesystem block number and returns its byte offset in the volume */
  fsbToBytes(fsb: number): number;
  readBlock(fsb: number, op?: Op): Promise<Buffer>;
}

const MAX_BTREE_LEVELS = 9;
const BMAP_MAGIC_V5 = 0x424d4133; // 'BMA3'
const BMAP_MAGIC_V4 = 0x424d4150; // 'BMAP'
const M21 = (1n << 21n) - 1n;
const M54 = (1n << 54n) - 1n;

function corrupt(ino: number, msg: string): CofferError {
  return new CofferError('FS_CORRUPT', `xfs: inode ${ino}: ${msg}`, { details: { inode: ino } });
}

/** One packed 16-byte bmbt record. */
export function unpackExtent(b: Buffer, off: number): XfsExtent {
  const l0 = b.readBigUInt64BE(off);
  const l1 = b.readBigUInt64BE(off + 8);
  return {
    unwritten: l0 >> 63n === 1n,
    logical: Number((l0 >> 9n) & M54),
    fsb: Number(((l0 & 0x1ffn) << 43n) | (l1 >> 21n)),
    count: Number(l1 & M21),
  };
}

/** Validates the records of one extent list/leaf in order; `state.next` is the first logical block not yet covered. */
function* checked(
  ctx: BmapContext,
  b: Buffer,
  off: number,
  n: number,
  state: { next: number; extents: number; maxExtents: number },
): Generator<XfsExtent> {
  for (let i = 0; i < n; i++) {
    const e = unpackExtent(b, off + i * 16);
    if (e.count === 0) throw corrupt(ctx.ino, `an extent of zero blocks at file block ${e.logical}`);
    if (e.logical < state.next) throw corrupt(ctx.ino, `extents overlap or go backwards at file block ${e.logical}`);
    if (++state.extents > state.maxExtents)
      throw corrupt(ctx.ino, `more extents than the inode claims (${state.maxExtents})`);
    ctx.fsbToBytes(e.fsb);
    ctx.fsbToBytes(e.fsb + e.count - 1);
    state.next = e.logical + e.count;
    yield e;
  }
}

/** The extents of a fork in format 'extents' (`n` records in the fork area). */
export function* extentList(ctx: BmapContext, fork: Buffer, n: number): Generator<XfsExtent> {
  if (n * 16 > fork.length) throw corrupt(ctx.ino, `${n} extents do not fit the inode fork (${fork.length} bytes)`);
  yield* checked(ctx, fork, 0, n, { next: 0, extents: 0, maxExtents: n });
}

/**
 * The extents of a fork in format 'btree': the root (xfs_bmdr_block) in the fork area, then BMA3/BMAP blocks.
 * `maxExtents` is the inode's extent count (a tree yielding more is damaged).
 */
export async function* btreeExtents(
  ctx: BmapContext,
  fork: Buffer,
  maxExtents: number,
  op?: Op,
): AsyncGenerator<XfsExtent> {
  if (fork.length < 4) throw corrupt(ctx.ino, 'bmap btree root does not fit the fork');
  const level = fork.readUInt16BE(0);
  const numrecs = fork.readUInt16BE(2);
  const rootMax = Math.floor((fork.length - 4) / 16);
  if (level === 0 || level > MAX_BTREE_LEVELS) throw corrupt(ctx.ino, `bmap btree root at level ${level}`);
  if (numrecs === 0 || numrecs > rootMax)
    throw corrupt(ctx.ino, `bmap btree root claims ${numrecs} records (at most ${rootMax})`);
  const state = { next: 0, extents: 0, maxExtents };
  const visited = new Set<number>();
  const hdr = ctx.v5 ? 72 : 24;

  async function* node(fsb: number, expectLevel: number): AsyncGenerator<XfsExtent> {
    op?.signal?.throwIfAborted();
    if (visited.has(fsb)) throw corrupt(ctx.ino, `bmap btree visits block ${fsb} twice (a loop)`);
    visited.add(fsb);
    if (visited.size > maxExtents + 64) throw corrupt(ctx.ino, 'bmap btree has more nodes than extents');
    const b = await ctx.readBlock(fsb, op);
    const magic = b.readUInt32BE(0);
    if (magic !== (ctx.v5 ? BMAP_MAGIC_V5 : BMAP_MAGIC_V4))
      throw corrupt(ctx.ino, `bmap btree block ${fsb}: bad magic 0x${magic.toString(16)}`);
    if (ctx.v5) {
      if (!xfsChecksumOk(b, 64)) throw corrupt(ctx.ino, `bmap btree block ${fsb}: checksum mismatch (crc32c)`);
      if (!b.subarray(40, 56).equals(ctx.metaUuid))
        throw corrupt(ctx.ino, `bmap btree block ${fsb}: belongs to another filesystem (uuid)`);
      if (b.readBigUInt64BE(56) !== BigInt(ctx.ino))
        throw corrupt(ctx.ino, `bmap btree block ${fsb}: belongs to inode ${b.readBigUInt64BE(56)}`);
    }
    const lvl = b.readUInt16BE(4);
    const n = b.readUInt16BE(6);
    if (lvl !== expectLevel) throw corrupt(ctx.ino, `bmap btree block ${fsb} at level ${lvl}, expected ${expectLevel}`);
    if (lvl === 0) {
      if (hdr + n * 16 > b.length) throw corrupt(ctx.ino, `bmap btree leaf ${fsb} claims ${n} records`);
      yield* checked(ctx, b, hdr, n, state);
      return;
    }
    const max = Math.floor((b.length - hdr) / 16);
    if (n === 0 || n > max) throw corrupt(ctx.ino, `bmap btree node ${fsb} claims ${n} records (at most ${max})`);
    yield* children(b, hdr, n, max, lvl);
  }

  async function* children(b: Buffer, base: number, n: number, max: number, lvl: number): AsyncGenerator<XfsExtent> {
    let prevKey = -1;
    for (let i = 0; i < n; i++) {
      const key = Number(b.readBigUInt64BE(base + i * 8) & M54);
      if (key <= prevKey) throw corrupt(ctx.ino, 'bmap btree keys do not ascend');
      prevKey = key;
      const ptr = Number(b.readBigUInt64BE(base + max * 8 + i * 8));
      ctx.fsbToBytes(ptr);
      yield* node(ptr, lvl - 1);
    }
  }

  yield* children(fork, 4, numrecs, rootMax, level);
}
