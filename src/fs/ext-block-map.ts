import { CofferError, type Op } from '../shared/index.js';

/**
 * Where an ext file's blocks are (docs/DESIGN.md §File-level restore): the ext4 extent tree and the classic ext2/3
 * block map, both walked with bounded work on hostile input.
 */

/** A run of a file: `count` blocks from logical block `logical` at physical block `physical`. */
export interface Run {
  logical: number;
  physical: number;
  count: number;
}

export interface BlockMapContext {
  blocksCount: number;
  blockBytes: number;
  readBlock(block: number, op?: Op): Promise<Buffer>;
  /** metadata_csum: verifies a non-root extent tree node read from `block` (FS_CORRUPT when it fails) */
  checkExtentBlock?: ((node: Buffer, block: number) => void) | undefined;
}

const EXTENT_MAGIC = 0xf30a;
const MAX_EXTENT_DEPTH = 5;

function corrupt(msg: string): CofferError {
  return new CofferError('FS_CORRUPT', `ext: ${msg}`);
}

/**
 * The extent tree rooted in i_block: depth at most 5, each child exactly one level below its parent, no node block
 * visited twice, extents ascending; unwritten extents are holes. Runs are clipped to the file's block count.
 */
export async function* extentRuns(
  ctx: BlockMapContext,
  ino: number,
  iblock: Buffer,
  fileBlocks: number,
  op?: Op,
): AsyncGenerator<Run> {
  const visited = new Set<number>();
  let nextLogical = 0; // extents must ascend: a tree that goes back is corrupt (and cannot loop forever)
  async function* walk(buf: Buffer, depth: number | undefined, block?: number): AsyncGenerator<Run> {
    if (buf.length < 12 || buf.readUInt16LE(0) !== EXTENT_MAGIC) throw corrupt(`inode ${ino}: bad extent header`);
    if (block !== undefined) ctx.checkExtentBlock?.(buf, block);
    const entries = buf.readUInt16LE(2);
    const max = buf.readUInt16LE(4);
    const d = buf.readUInt16LE(6);
    if (d > MAX_EXTENT_DEPTH) throw corrupt(`inode ${ino}: extent tree depth ${d} exceeds ${MAX_EXTENT_DEPTH}`);
    if (depth !== undefined && d !== depth)
      throw corrupt(`inode ${ino}: extent tree node at depth ${d}, expected ${depth} (a loop or a damaged tree)`);
    if (entries > max || 12 + max * 12 > buf.length)
      throw corrupt(`inode ${ino}: extent node claims ${entries}/${max} entries`);
    for (let i = 0; i < entries; i++) {
      op?.signal?.throwIfAborted();
      const e = buf.subarray(12 + i * 12, 24 + i * 12);
      const lblock = e.readUInt32LE(0);
      if (d === 0) {
        let len = e.readUInt16LE(4);
        const unwritten = len > 32768;
        if (unwritten) len -= 32768;
        const phys = e.readUInt16LE(6) * 2 ** 32 + e.readUInt32LE(8);
        if (lblock < nextLogical)
          throw corrupt(`inode ${ino}: extents overlap or go backwards at logical block ${lblock}`);
        nextLogical = lblock + len;
        if (len === 0 || lblock >= fileBlocks) continue;
        if (phys === 0 || phys + len > ctx.blocksCount)
          throw corrupt(`inode ${ino}: extent at block ${phys} (+${len}) is outside the filesystem`);
        const count = Math.min(len, fileBlocks - lblock);
        if (!unwritten) yield { logical: lblock, physical: phys, count };
      } else {
        const leaf = e.readUInt32LE(4) + e.readUInt16LE(8) * 2 ** 32;
        if (lblock < nextLogical && i > 0) throw corrupt(`inode ${ino}: extent index goes backwards`);
        if (visited.has(leaf)) throw corrupt(`inode ${ino}: extent tree visits block ${leaf} twice (a loop)`);
        visited.add(leaf);
        yield* walk(await ctx.readBlock(leaf, op), d - 1, leaf);
      }
    }
  }
  yield* walk(iblock, undefined);
}

/** Classic block maps: 12 direct, single, double, triple indirect. A zero pointer is a hole (of its whole subtree). */
export async function* blockMapRuns(
  ctx: BlockMapContext,
  ino: number,
  iblock: Buffer,
  fileBlocks: number,
  op?: Op,
): AsyncGenerator<Run> {
  const per = ctx.blockBytes / 4;
  const seen = new Set<number>();
  let cur: Run | undefined;
  const emit = function* (logical: number, physical: number): Generator<Run> {
    if (cur && cur.logical + cur.count === logical && cur.physical + cur.count === physical) {
      cur.count++;
      return;
    }
    if (cur) yield cur;
    cur = { logical, physical, count: 1 };
  };
  async function* tree(ptr: number, level: number, first: number): AsyncGenerator<Run> {
    // level 0: ptr is a data block for logical block `first`
    if (first >= fileBlocks) return;
    if (ptr === 0) return;
    if (ptr >= ctx.blocksCount) throw corrupt(`inode ${ino}: block pointer ${ptr} is outside the filesystem`);
    if (level === 0) {
      yield* emit(first, ptr);
      return;
    }
    op?.signal?.throwIfAborted();
    // a real block map never uses an indirect block twice; a hostile one could make the walk quadratic
    if (seen.has(ptr)) throw corrupt(`inode ${ino}: indirect block ${ptr} is used twice`);
    seen.add(ptr);
    const blk = await ctx.readBlock(ptr, op);
    const span = per ** (level - 1);
    for (let i = 0; i < per; i++) {
      const l = first + i * span;
      if (l >= fileBlocks) break;
      yield* tree(blk.readUInt32LE(i * 4), level - 1, l);
    }
  }
  for (let i = 0; i < 12; i++) yield* tree(iblock.readUInt32LE(i * 4), 0, i);
  yield* tree(iblock.readUInt32LE(48), 1, 12);
  yield* tree(iblock.readUInt32LE(52), 2, 12 + per);
  yield* tree(iblock.readUInt32LE(56), 3, 12 + per + per * per);
  if (cur) yield cur;
}
