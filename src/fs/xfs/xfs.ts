import { CofferError, cooperative, type Op } from '../../shared/index.js';
import type { BlockReader } from '../block-reader.js';
import { MAX_LINK_BYTES, PIECE_BYTES, fileTypeOfMode, type FileExtent, type FsNode, type GuestFs } from '../types.js';
import { btreeExtents, extentList, type BmapContext, type XfsExtent } from './bmap.js';
import { xfsChecksumOk } from './crc32c.js';
import { dataBlockEntries, shortFormEntries, type DirContext, type DirEntry } from './dir.js';
import { logState } from './log.js';
import { parseSuperblock, XFS_MAGIC, type Superblock } from './superblock.js';

/**
 * Read-only XFS, v5 (CRC) and v4 (docs/DESIGN.md §XFS). Everything read is untrusted: block numbers are checked against
 * the allocation groups, v5 checksums (crc32c), uuids and owners are verified on every metadata block read, btrees are
 * depth-bounded and visited once, extents must ascend. Inodes are located from their numbers (AG, block, offset), so
 * path walks never need the inode btrees. Not read: the log (never replayed: a dirty log is reported), extended
 * attributes, the realtime device.
 */

const INODE_MAGIC = 0x494e; // 'IN'
const FMT = { DEV: 0, LOCAL: 1, EXTENTS: 2, BTREE: 3 } as const;
const DIFLAG_REALTIME = 0x1;
const DIFLAG2_BIGTIME = 1n << 3n;
const DIFLAG2_NREXT64 = 1n << 4n;
const SYMLINK_MAGIC = 0x58534c4d; // 'XSLM'
const LEAF_OFFSET_BYTES = 32 * 1024 ** 3;
/** directories larger than this are not real (keeps memory bounded) */
const MAX_DIR_BYTES = 256 * 1024 * 1024;
const INODE_CACHE_BLOCKS = 512;

interface Inode {
  ino: number;
  mode: number;
  format: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  nblocks: number;
  nextents: number;
  flags: number;
  atimeMs: number;
  /** inode change time (set by the kernel, never from userspace) */
  ctimeMs: number;
  mtimeMs: number;
  /** the data fork bytes */
  fork: Buffer;
}

function corrupt(msg: string, details: Record<string, unknown> = {}): CofferError {
  return new CofferError('FS_CORRUPT', `xfs: ${msg}`, { details });
}

export function looksLikeXfs(head: Buffer): boolean {
  return head.length >= 4 && head.readUInt32BE(0) === XFS_MAGIC;
}

export class XfsFs implements GuestFs {
  readonly kind: string;
  readonly warnings: string[] = [];
  private readonly inodeBlocks = new Map<number, Buffer>();

  private constructor(
    private readonly dev: BlockReader,
    readonly sb: Superblock,
  ) {
    this.kind = sb.version === 5 ? 'xfs' : 'xfs (v4)';
  }

  static async open(dev: BlockReader, op?: Op): Promise<XfsFs> {
    if (dev.sizeBytes < 4096) throw corrupt('the volume is too small for an XFS superblock');
    const head = await dev.read(0, 512, op);
    const sectorBytes = head.readUInt16BE(102);
    const sbuf =
      sectorBytes > 512 && sectorBytes <= 32768 && sectorBytes <= dev.sizeBytes
        ? await dev.read(0, sectorBytes, op)
        : head;
    const sb = parseSuperblock(sbuf, dev.sizeBytes);
    const fs = new XfsFs(dev, sb);
    await fs.checkAg0(op);
    if (sb.needsRepair)
      fs.warnings.push('the filesystem is marked as needing xfs_repair: what is read may be inconsistent');
    await fs.checkLog(op);
    return fs;
  }

  /** AG 0's free-space and inode headers (AGF, AGI): a damaged one is reported, path walks do not need them. */
  private async checkAg0(op?: Op): Promise<void> {
    const s = this.sb.sectorBytes;
    const buf = await this.dev.read(s, 2 * s, op);
    const agf = buf.subarray(0, s);
    const agi = buf.subarray(s, 2 * s);
    const bad: string[] = [];
    if (
      agf.readUInt32BE(0) !== 0x58414746 ||
      agf.readUInt32BE(8) !== 0 ||
      (this.sb.version === 5 && !xfsChecksumOk(agf, 216))
    )
      bad.push('AGF');
    if (
      agi.readUInt32BE(0) !== 0x58414749 ||
      agi.readUInt32BE(8) !== 0 ||
      (this.sb.version === 5 && !xfsChecksumOk(agi, 312))
    )
      bad.push('AGI');
    if (bad.length)
      this.warnings.push(
        `allocation group 0's ${bad.join(' and ')} header is damaged (not needed to read files; the ` +
          `filesystem may be inconsistent)`,
      );
  }

  private async checkLog(op?: Op): Promise<void> {
    const { logStart, logBlocks, blockBytes } = this.sb;
    if (logStart === 0) {
      this.warnings.push(
        'the log is on an external device: whether it was clean cannot be told (it is never replayed)',
      );
      return;
    }
    try {
      const base = this.fsbToBytes(logStart);
      const sectors = (logBlocks * blockBytes) / 512;
      if (!Number.isSafeInteger(sectors) || base + sectors * 512 > this.dev.sizeBytes)
        throw corrupt('the log lies outside the volume');
      const state = await logState((s, n, o) => this.dev.read(base + s * 512, n * 512, o), sectors, op);
      if (state === 'dirty')
        this.warnings.push(
          'the filesystem log is dirty (not cleanly unmounted: a crash-consistent backup); the log is not replayed, ' +
            'so the most recent changes may be missing',
        );
      else if (state === 'unknown')
        this.warnings.push('the state of the filesystem log could not be determined (it is never replayed)');
    } catch (e) {
      if (!(e instanceof CofferError) || e.code === 'CANCELLED') throw e;
      this.warnings.push(`the filesystem log could not be read (${e.message}); it is never replayed`);
    }
  }

  /**
   * Byte offset of filesystem block `fsb` (AG number << agblklog | AG block), checked against the AG and the volume.
   */
  fsbToBytes(fsb: number): number {
    const { agBlockLog, agBlocks, agCount, blockBytes, dataBlocks } = this.sb;
    if (!Number.isSafeInteger(fsb) || fsb < 0) throw corrupt(`block number ${fsb} is invalid`);
    const agno = Math.floor(fsb / 2 ** agBlockLog);
    const agbno = fsb % 2 ** agBlockLog;
    const linear = agno * agBlocks + agbno;
    if (agno >= agCount || agbno >= agBlocks || linear >= dataBlocks)
      throw corrupt(
        `block ${agno}/${agbno} is outside the filesystem (${agCount} allocation groups of ${agBlocks} blocks)`,
        { fsb },
      );
    return linear * blockBytes;
  }

  private async readFsBlocks(fsb: number, count: number, op?: Op): Promise<Buffer> {
    const at = this.fsbToBytes(fsb);
    if (count > 1) this.fsbToBytes(fsb + count - 1);
    return this.dev.read(at, count * this.sb.blockBytes, op);
  }

  private bmapContext(ino: number): BmapContext {
    return {
      ino,
      v5: this.sb.version === 5,
      blockBytes: this.sb.blockBytes,
      metaUuid: this.sb.metaUuid,
      fsbToBytes: (f) => this.fsbToBytes(f),
      readBlock: (f, o) => this.readFsBlocks(f, 1, o),
    };
  }

  private dirContext(ino: number): DirContext {
    return { ino, v5: this.sb.version === 5, ftype: this.sb.ftype, metaUuid: this.sb.metaUuid };
  }

  /** Inode `ino` (AG number, AG block, index in the block), its v3 checksum, number and uuid checked. */
  private async inode(ino: number, op?: Op): Promise<Inode> {
    const { agBlockLog, inodesPerBlockLog, agCount, inodeBytes, blockBytes, version } = this.sb;
    if (!Number.isSafeInteger(ino) || ino <= 0) throw corrupt(`inode number ${ino} is invalid`);
    const perBlock = 2 ** inodesPerBlockLog;
    const agno = Math.floor(ino / 2 ** (agBlockLog + inodesPerBlockLog));
    if (agno >= agCount) throw corrupt(`inode ${ino} is in allocation group ${agno} of ${agCount}`);
    const blockInAg = Math.floor(ino / perBlock) % 2 ** agBlockLog;
    const fsb = agno * 2 ** agBlockLog + blockInAg;
    let blk = this.inodeBlocks.get(fsb);
    if (!blk) {
      blk = await this.readFsBlocks(fsb, 1, op);
      if (this.inodeBlocks.size >= INODE_CACHE_BLOCKS) this.inodeBlocks.clear();
      this.inodeBlocks.set(fsb, blk);
    }
    const off = (ino % perBlock) * inodeBytes;
    const raw = blk.subarray(off, off + inodeBytes);
    if (off + inodeBytes > blockBytes || raw.readUInt16BE(0) !== INODE_MAGIC)
      throw corrupt(`inode ${ino}: bad magic (not an inode)`, { inode: ino });
    const iv = raw[4]!;
    const v3 = version === 5;
    if (v3 ? iv !== 3 : iv !== 1 && iv !== 2)
      throw corrupt(`inode ${ino}: version ${iv} on a v${version} filesystem`, { inode: ino });
    if (v3) {
      if (!xfsChecksumOk(raw, 100))
        throw corrupt(`inode ${ino}: checksum mismatch (crc32c): the inode is damaged`, { inode: ino });
      if (raw.readBigUInt64BE(152) !== BigInt(ino))
        throw corrupt(`inode ${ino}: the inode says it is inode ${raw.readBigUInt64BE(152)}`, { inode: ino });
      if (!raw.subarray(160, 176).equals(this.sb.metaUuid))
        throw corrupt(`inode ${ino}: belongs to another filesystem (uuid)`, { inode: ino });
    }
    const flags2 = v3 ? raw.readBigUInt64BE(120) : 0n;
    const bigtime = (flags2 & DIFLAG2_BIGTIME) !== 0n;
    const time = (o: number): number => {
      if (bigtime) return Number(raw.readBigUInt64BE(o) / 1_000_000n) - 2 ** 31 * 1000;
      const ns = raw.readUInt32BE(o + 4);
      return raw.readInt32BE(o) * 1000 + (ns < 1e9 ? Math.floor(ns / 1e6) : 0);
    };
    const size = raw.readBigInt64BE(56);
    if (size < 0n || size > BigInt(Number.MAX_SAFE_INTEGER))
      throw corrupt(`inode ${ino}: absurd size ${size}`, { inode: ino });
    const core = v3 ? 176 : 100;
    const forkoff = raw[82]!;
    const forkBytes = forkoff ? forkoff * 8 : inodeBytes - core;
    if (forkBytes > inodeBytes - core)
      throw corrupt(`inode ${ino}: attribute fork offset ${forkoff} is past the inode`, { inode: ino });
    const nextents = v3 && flags2 & DIFLAG2_NREXT64 ? Number(raw.readBigUInt64BE(24)) : raw.readUInt32BE(76);
    return {
      ino,
      mode: raw.readUInt16BE(2),
      format: raw[5]!,
      uid: raw.readUInt32BE(8),
      gid: raw.readUInt32BE(12),
      nlink: iv === 1 ? raw.readUInt16BE(6) : raw.readUInt32BE(16),
      size: Number(size),
      nblocks: Number(raw.readBigUInt64BE(64)),
      nextents,
      flags: raw.readUInt16BE(90),
      atimeMs: time(32),
      mtimeMs: time(40),
      ctimeMs: time(48),
      fork: Buffer.from(raw.subarray(core, core + forkBytes)),
    };
  }

  private node(name: string, ino: Inode): FsNode {
    const type = fileTypeOfMode(ino.mode);
    return {
      name,
      type,
      sizeBytes: ino.size,
      mode: ino.mode & 0o7777,
      uid: ino.uid,
      gid: ino.gid,
      nlink: ino.nlink,
      mtimeMs: ino.mtimeMs,
      atimeMs: ino.atimeMs,
      ctimeMs: ino.ctimeMs,
      id: `inode:${ino.ino}`,
      ref: ino,
    };
  }

  async root(op?: Op): Promise<FsNode> {
    const ino = await this.inode(this.sb.rootIno, op);
    if ((ino.mode & 0xf000) !== 0x4000) throw corrupt('the root inode is not a directory');
    return this.node('/', ino);
  }

  /** The data fork's extents in ascending order (format extents or btree); anything else is not a mapped fork. */
  private async *extents(ino: Inode, op?: Op): AsyncGenerator<XfsExtent> {
    if (ino.flags & DIFLAG_REALTIME)
      throw new CofferError('FS_UNSUPPORTED', `xfs: inode ${ino.ino} is on the realtime device (not read)`, {
        details: { inode: ino.ino },
      });
    // extents cannot outnumber the filesystem's blocks: a hostile count does not buy unbounded work
    const max = Math.min(ino.nextents, this.sb.dataBlocks);
    if (ino.format === FMT.EXTENTS) yield* extentList(this.bmapContext(ino.ino), ino.fork, max);
    else if (ino.format === FMT.BTREE) yield* btreeExtents(this.bmapContext(ino.ino), ino.fork, max, op);
    else throw corrupt(`inode ${ino.ino}: data fork format ${ino.format} cannot hold file data`, { inode: ino.ino });
  }

  async *read(node: FsNode, op?: Op): AsyncIterable<FileExtent> {
    const ino = node.ref as Inode;
    if (node.type !== 'file' && node.type !== 'symlink' && node.type !== 'dir')
      throw new CofferError('USAGE', `${node.name} has no content`);
    const { blockBytes } = this.sb;
    const fileBlocks = Math.ceil(ino.size / blockBytes);
    const maxBlocks = Math.max(1, Math.floor(PIECE_BYTES / blockBytes));
    let total = 0;
    for await (const e of this.extents(ino, op)) {
      if (e.logical >= fileBlocks) break; // ascending: nothing later is inside the file (post-EOF preallocation)
      if (e.unwritten) continue;
      const count = Math.min(e.count, fileBlocks - e.logical);
      total += count * blockBytes;
      if (total > this.dev.sizeBytes)
        throw corrupt(`inode ${ino.ino}: its extents yield more data than the volume holds`, { inode: ino.ino });
      for (let done = 0; done < count; ) {
        op?.signal?.throwIfAborted();
        const n = Math.min(maxBlocks, count - done);
        const offset = (e.logical + done) * blockBytes;
        let data = await this.readFsBlocks(e.fsb + done, n, op);
        if (offset + data.length > ino.size) data = data.subarray(0, ino.size - offset);
        yield { offset, data };
        done += n;
      }
    }
  }

  async readlink(node: FsNode, op?: Op): Promise<string> {
    const ino = node.ref as Inode;
    if (node.type !== 'symlink') throw new CofferError('USAGE', `${node.name} is not a symbolic link`);
    if (ino.size === 0 || ino.size > MAX_LINK_BYTES)
      throw corrupt(`inode ${ino.ino}: symlink target of ${ino.size} bytes`, { inode: ino.ino });
    let bytes: Buffer;
    if (ino.format === FMT.LOCAL) {
      if (ino.size > ino.fork.length)
        throw corrupt(`inode ${ino.ino}: inline symlink of ${ino.size} bytes overflows the inode`, { inode: ino.ino });
      bytes = ino.fork.subarray(0, ino.size);
    } else bytes = await this.remoteSymlink(ino, op);
    if (bytes.includes(0)) throw corrupt(`inode ${ino.ino}: symlink target contains NUL`, { inode: ino.ino });
    return bytes.toString('utf8');
  }

  /** A symlink target in blocks: v5 blocks start with an XSLM header (checksum, owner, offset of its piece). */
  private async remoteSymlink(ino: Inode, op?: Op): Promise<Buffer> {
    const parts: Buffer[] = [];
    let got = 0;
    const v5 = this.sb.version === 5;
    for await (const e of this.extents(ino, op)) {
      for (let i = 0; i < e.count && got < ino.size; i++) {
        const b = await this.readFsBlocks(e.fsb + i, 1, op);
        if (!v5) {
          const piece = b.subarray(0, Math.min(b.length, ino.size - got));
          parts.push(piece);
          got += piece.length;
          continue;
        }
        if (b.readUInt32BE(0) !== SYMLINK_MAGIC || !xfsChecksumOk(b, 12))
          throw corrupt(`inode ${ino.ino}: symlink block bad magic or checksum`, { inode: ino.ino });
        if (b.readBigUInt64BE(32) !== BigInt(ino.ino) || !b.subarray(16, 32).equals(this.sb.metaUuid))
          throw corrupt(`inode ${ino.ino}: symlink block belongs to another inode`, { inode: ino.ino });
        const offset = b.readUInt32BE(4);
        const n = b.readUInt32BE(8);
        if (offset !== got || n === 0 || 56 + n > b.length || got + n > ino.size)
          throw corrupt(`inode ${ino.ino}: symlink block piece ${offset}+${n} out of order`, { inode: ino.ino });
        parts.push(b.subarray(56, 56 + n));
        got += n;
      }
      if (got >= ino.size) break;
    }
    if (got !== ino.size)
      throw corrupt(`inode ${ino.ino}: symlink target is ${got} of ${ino.size} bytes`, { inode: ino.ino });
    return Buffer.concat(parts);
  }

  async list(dir: FsNode, op?: Op): Promise<FsNode[]> {
    const ino = dir.ref as Inode;
    if (dir.type !== 'dir') throw new CofferError('USAGE', `${dir.name} is not a directory`);
    const tick = cooperative(); // a huge directory does not hold the event loop (docs/DESIGN.md §File-level restore)
    const entries =
      ino.format === FMT.LOCAL
        ? shortFormEntries(this.dirContext(ino.ino), ino.fork, ino.size)
        : await this.blockDirEntries(ino, tick, op);
    const out: FsNode[] = [];
    for (const e of entries) {
      op?.signal?.throwIfAborted();
      await tick();
      try {
        out.push(this.node(e.name, await this.inode(e.ino, op)));
      } catch (err) {
        // a damaged inode (bad checksum, out of range) is reported on its entry; the rest of the directory is listed
        if (!(err instanceof CofferError) || err.code === 'CANCELLED') throw err;
        out.push({
          name: e.name,
          type: 'unknown',
          sizeBytes: 0,
          mode: 0,
          uid: 0,
          gid: 0,
          nlink: 0,
          mtimeMs: undefined,
          atimeMs: undefined,
          id: `inode:${e.ino}`,
          ref: undefined,
          error: err,
        });
      }
    }
    return out;
  }

  /** Entries of a block/leaf/node/btree directory: its data blocks (directory offsets below 32 GiB), in order. */
  private async blockDirEntries(ino: Inode, tick: () => Promise<void> | undefined, op?: Op): Promise<DirEntry[]> {
    const { blockBytes, dirBlockBytes } = this.sb;
    const perDir = dirBlockBytes / blockBytes;
    const leafBlock = LEAF_OFFSET_BYTES / blockBytes;
    const out: DirEntry[] = [];
    let pending: { dirBlock: number; parts: Buffer[]; have: number } | undefined;
    let bytes = 0;
    for await (const e of this.extents(ino, op)) {
      if (e.logical >= leafBlock) break;
      if (e.unwritten) throw corrupt(`directory inode ${ino.ino}: unwritten extent`, { inode: ino.ino });
      const count = Math.min(e.count, leafBlock - e.logical);
      bytes += count * blockBytes;
      if (bytes > MAX_DIR_BYTES)
        throw corrupt(`directory inode ${ino.ino} holds more than ${MAX_DIR_BYTES} bytes of entries`, {
          inode: ino.ino,
        });
      for (let done = 0; done < count; ) {
        op?.signal?.throwIfAborted();
        const n = Math.min(count - done, Math.max(perDir, Math.floor(PIECE_BYTES / blockBytes)));
        const buf = await this.readFsBlocks(e.fsb + done, n, op);
        for (let i = 0; i < n; i++) {
          const logical = e.logical + done + i;
          const dirBlock = Math.floor(logical / perDir);
          if (!pending || pending.dirBlock !== dirBlock) {
            if (pending)
              throw corrupt(`directory inode ${ino.ino}: directory block ${pending.dirBlock} is incomplete`, {
                inode: ino.ino,
              });
            if (logical % perDir !== 0)
              throw corrupt(`directory inode ${ino.ino}: directory block ${dirBlock} starts mid-block`, {
                inode: ino.ino,
              });
            pending = { dirBlock, parts: [], have: 0 };
          }
          pending.parts.push(buf.subarray(i * blockBytes, (i + 1) * blockBytes));
          if (++pending.have === perDir) {
            dataBlockEntries(
              this.dirContext(ino.ino),
              perDir === 1 ? pending.parts[0]! : Buffer.concat(pending.parts),
              dirBlock,
              out,
            );
            pending = undefined;
            await tick();
          }
        }
        done += n;
      }
    }
    if (pending)
      throw corrupt(`directory inode ${ino.ino}: directory block ${pending.dirBlock} is incomplete`, {
        inode: ino.ino,
      });
    return out;
  }
}
