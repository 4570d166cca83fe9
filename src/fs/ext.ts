import { CofferError, cooperative, type Op } from '../shared/index.js';
import type { BlockReader } from './block-reader.js';
import { blockMapRuns, extentRuns, type Run } from './ext-block-map.js';
import { scanJournal, unescapeJournalBlock } from './ext-journal.js';
import { ExtChecksums } from './ext-checksums.js';
import { MAX_LINK_BYTES, PIECE_BYTES, fileTypeOfMode, type FileExtent, type FsNode, type GuestFs } from './types.js';

/**
 * Read-only ext2/ext3/ext4 (docs/DESIGN.md §File-level restore). Everything read is untrusted: every block number is
 * checked against the volume, extent trees are depth-bounded, directory records are bounds-checked. With
 * metadata_csum, the checksums of the superblock, group descriptors, inodes, extent blocks and directory blocks are
 * verified (ext-checksums.ts); a journal that needs recovery is replayed in memory as e2fsck would (ext-journal.ts).
 * Not read: bitmaps, xattrs/ACLs (except inline data's system.data).
 */

const MAGIC = 0xef53;
const ROOT_INO = 2;

const INCOMPAT = {
  COMPRESSION: 0x1,
  FILETYPE: 0x2,
  RECOVER: 0x4,
  JOURNAL_DEV: 0x8,
  META_BG: 0x10,
  EXTENTS: 0x40,
  BIT64: 0x80,
  MMP: 0x100,
  FLEX_BG: 0x200,
  EA_INODE: 0x400,
  DIRDATA: 0x1000,
  CSUM_SEED: 0x2000,
  LARGEDIR: 0x4000,
  INLINE_DATA: 0x8000,
  ENCRYPT: 0x10000,
  CASEFOLD: 0x20000,
} as const;
const INCOMPAT_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(INCOMPAT).map(([k, v]) => [v, k.toLowerCase()]),
);
const SUPPORTED_INCOMPAT =
  INCOMPAT.FILETYPE |
  INCOMPAT.RECOVER |
  INCOMPAT.META_BG |
  INCOMPAT.EXTENTS |
  INCOMPAT.BIT64 |
  INCOMPAT.MMP |
  INCOMPAT.FLEX_BG |
  INCOMPAT.EA_INODE |
  INCOMPAT.CSUM_SEED |
  INCOMPAT.LARGEDIR |
  INCOMPAT.INLINE_DATA |
  INCOMPAT.CASEFOLD;

const FL_INDEX = 0x1000;
const FL_ENCRYPT = 0x800;
const FL_EXTENTS = 0x80000;
const FL_INLINE = 0x10000000;
const FL_HUGE_FILE = 0x40000;
const RO_COMPAT_HUGE_FILE = 0x8;

function corrupt(msg: string, details: Record<string, unknown> = {}): CofferError {
  return new CofferError('FS_CORRUPT', `ext: ${msg}`, { details });
}

interface Inode {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  flags: number;
  atimeMs: number;
  mtimeMs: number;
  /** inode change time: set by the kernel on every write or metadata change, never from userspace */
  ctimeMs: number;
  /** 512-byte sectors (or fs blocks with HUGE_FILE) */
  blocks: number;
  fileAcl: number;
  /** i_block: 60 bytes */
  iblock: Buffer;
  raw: Buffer;
  extraIsize: number;
}

interface DirEntry {
  name: string;
  ino: number;
  /** why the name cannot be a path component */
  bad?: string;
}

export function looksLikeExt(sb: Buffer): boolean {
  return sb.length >= 1024 && sb.readUInt16LE(56) === MAGIC;
}

export class ExtFs implements GuestFs {
  readonly kind: string;
  readonly warnings: string[] = [];
  /** what was verified while reading (checksums, journal replay) */
  readonly checks: string[] = [];
  private csums: ExtChecksums | undefined;
  /** blocks whose newest committed copy is in the journal (replayed read-only at open) */
  private journal = new Map<number, { journalPhysical: number; escaped: boolean }>();
  /** transactions replayed from the journal */
  journalTransactions = 0;
  private readonly descCache = new Map<number, Buffer>();

  private constructor(
    private readonly dev: BlockReader,
    private readonly sb: Buffer,
    readonly blockBytes: number,
    private readonly blocksCount: number,
    private readonly inodesCount: number,
    private readonly inodesPerGroup: number,
    private readonly blocksPerGroup: number,
    private readonly inodeBytes: number,
    private readonly descBytes: number,
    private readonly groupCount: number,
    private readonly incompat: number,
    private readonly roCompat: number,
    kind: string,
  ) {
    this.kind = kind;
  }

  static async open(dev: BlockReader, op?: Op): Promise<ExtFs> {
    if (dev.sizeBytes < 2048) throw corrupt('the volume is too small for an ext superblock');
    const sb = await dev.read(1024, 1024, op);
    if (sb.readUInt16LE(56) !== MAGIC) throw corrupt('bad superblock magic');
    const logBlock = sb.readUInt32LE(24);
    if (logBlock > 6) throw corrupt(`absurd block size 2^${10 + logBlock}`, { logBlockSize: logBlock });
    const blockBytes = 1024 << logBlock;
    const rev = sb.readUInt32LE(76);
    const incompat = rev >= 1 ? sb.readUInt32LE(96) : 0;
    const roCompat = rev >= 1 ? sb.readUInt32LE(100) : 0;
    const compat = rev >= 1 ? sb.readUInt32LE(92) : 0;
    const unknown = incompat & ~SUPPORTED_INCOMPAT;
    if (unknown) {
      const names = [];
      for (let bit = 1; bit !== 0 && bit <= 0x80000000; bit = (bit << 1) >>> 0)
        if (unknown & bit) names.push(INCOMPAT_NAMES[bit] ?? `0x${bit.toString(16)}`);
      throw new CofferError(
        'FS_UNSUPPORTED',
        `ext: the filesystem uses incompatible features this reader cannot read: ${names.join(', ')}`,
        { details: { incompat: `0x${incompat.toString(16)}`, unsupported: names } },
      );
    }
    const is64 = (incompat & INCOMPAT.BIT64) !== 0;
    const blocksCount = sb.readUInt32LE(4) + (is64 ? sb.readUInt32LE(0x150) * 2 ** 32 : 0);
    const inodesCount = sb.readUInt32LE(0);
    const blocksPerGroup = sb.readUInt32LE(32);
    const inodesPerGroup = sb.readUInt32LE(40);
    const inodeBytes = rev >= 1 ? sb.readUInt16LE(88) : 128;
    const descBytes = is64 ? sb.readUInt16LE(254) : 32;
    const firstDataBlock = sb.readUInt32LE(20);
    if (blocksCount === 0 || blocksCount * blockBytes > dev.sizeBytes)
      throw corrupt(
        `the block count (${blocksCount} blocks of ${blockBytes}) exceeds the partition (${dev.sizeBytes} bytes)`,
      );
    if (blocksPerGroup === 0 || blocksPerGroup > blockBytes * 8)
      throw corrupt(`absurd blocks per group ${blocksPerGroup}`);
    if (inodesPerGroup === 0 || inodesPerGroup > blockBytes * 8)
      throw corrupt(`absurd inodes per group ${inodesPerGroup}`);
    if (inodeBytes < 128 || inodeBytes > blockBytes || (inodeBytes & (inodeBytes - 1)) !== 0)
      throw corrupt(`absurd inode size ${inodeBytes}`);
    if (descBytes < 32 || descBytes > 1024 || (is64 && descBytes < 64))
      throw corrupt(`absurd group descriptor size ${descBytes}`);
    if (firstDataBlock >= blocksCount) throw corrupt('first data block past the end');
    const groupCount = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);
    if (inodesCount === 0 || inodesCount > groupCount * inodesPerGroup)
      throw corrupt(`inode count ${inodesCount} does not fit ${groupCount} groups of ${inodesPerGroup}`);
    const journal = (compat & 0x4) !== 0;
    const kind =
      incompat & (INCOMPAT.EXTENTS | INCOMPAT.BIT64 | INCOMPAT.FLEX_BG | INCOMPAT.INLINE_DATA)
        ? 'ext4'
        : journal
          ? 'ext3'
          : 'ext2';
    const fs = new ExtFs(
      dev,
      sb,
      blockBytes,
      blocksCount,
      inodesCount,
      inodesPerGroup,
      blocksPerGroup,
      inodeBytes,
      descBytes,
      groupCount,
      incompat,
      roCompat,
      kind,
    );
    // metadata_csum: a superblock that fails its checksum is fatal (as for the kernel); the rest is checked as read
    fs.csums = ExtChecksums.open(sb, incompat, roCompat, inodeBytes, blockBytes, descBytes);
    if (fs.csums)
      fs.checks.push(
        'ext metadata checksums (crc32c): superblock verified; group descriptors, inodes, extent blocks and ' +
          'directory blocks verified as read',
      );
    else fs.checks.push('ext metadata checksums: none on this filesystem (no metadata_csum): structure checks only');
    if (journal && incompat & INCOMPAT.RECOVER) await fs.replayJournal(op);
    return fs;
  }

  /**
   * The filesystem was not cleanly unmounted (a crash-consistent backup of a running guest): committed transactions
   * still in the journal are applied, in memory, to what we read. A journal we cannot read is reported, not fatal.
   */
  private async replayJournal(op?: Op): Promise<void> {
    const inum = this.sb.readUInt32LE(0xe0);
    if (this.sb.readUInt32LE(0xe4) !== 0 || inum === 0) {
      this.warnings.push(
        'the filesystem needs journal recovery, but its journal is on another device: recent changes may be missing',
      );
      return;
    }
    try {
      const ino = await this.inode(inum, op);
      const blocks = Math.ceil(ino.size / this.blockBytes);
      if (blocks < 2 || blocks > 4 * 1024 * 1024) throw corrupt(`journal inode of ${blocks} blocks`);
      const map = new Float64Array(blocks);
      for await (const r of this.runs(ino, op)) for (let i = 0; i < r.count; i++) map[r.logical + i] = r.physical + i;
      const read = (i: number) => {
        const phys = map[i];
        if (!phys) throw corrupt(`journal block ${i} is not mapped`);
        return this.readBlocks(phys, 1, op);
      };
      const replay = await scanJournal(read, blocks, this.blocksCount, op);
      if (!replay) return;
      for (const [fsBlock, jb] of replay.blocks) {
        const journalPhysical = map[jb.journalBlock];
        if (!journalPhysical) throw corrupt(`journal block ${jb.journalBlock} is not mapped`);
        this.journal.set(fsBlock, { journalPhysical, escaped: jb.escaped });
      }
      this.journalTransactions = replay.transactions;
      this.checks.push(
        `ext journal: ${replay.transactions} committed transaction(s) replayed in ` +
          `memory${
            replay.checksums === 'none'
              ? ' (the journal has no checksums)'
              : `, journal checksums ${replay.checksums} verified`
          }`,
      );
      for (const s of replay.skipped)
        this.warnings.push(
          `journal recovery skipped ${s}: e2fsck would skip it too and report the filesystem as damaged`,
        );
    } catch (e) {
      if (!(e instanceof CofferError) || e.code === 'CANCELLED') throw e;
      this.journal.clear();
      this.warnings.push(
        `the filesystem needs journal recovery, but its journal cannot be replayed (${e.message}): ` +
          `recent changes may be missing`,
      );
    }
  }

  private async readBlocks(block: number, count: number, op?: Op): Promise<Buffer> {
    if (!Number.isSafeInteger(block) || block <= 0 || block + count > this.blocksCount)
      throw corrupt(`block ${block} (+${count}) is outside the filesystem (${this.blocksCount} blocks)`);
    const buf = await this.dev.read(block * this.blockBytes, count * this.blockBytes, op);
    if (this.journal.size > 0) {
      for (let i = 0; i < count; i++) {
        const j = this.journal.get(block + i);
        if (!j) continue;
        const copy = await this.dev.read(j.journalPhysical * this.blockBytes, this.blockBytes, op);
        if (j.escaped) unescapeJournalBlock(copy);
        copy.copy(buf, i * this.blockBytes);
      }
    }
    return buf;
  }

  /** Group descriptor `g` (classic layout: a table after the superblock; META_BG: one block per meta group). */
  private async groupDesc(g: number, op?: Op): Promise<Buffer> {
    if (g < 0 || g >= this.groupCount) throw corrupt(`group ${g} out of range`);
    const perBlock = Math.floor(this.blockBytes / this.descBytes);
    const descBlock = Math.floor(g / perBlock);
    let buf = this.descCache.get(descBlock);
    if (!buf) {
      const firstDataBlock = this.sb.readUInt32LE(20);
      let block: number;
      const firstMetaBg = this.sb.readUInt32LE(0x104);
      if (this.incompat & INCOMPAT.META_BG && descBlock >= firstMetaBg) {
        const group = descBlock * perBlock;
        block = firstDataBlock + group * this.blocksPerGroup + (this.groupHasSuper(group) ? 1 : 0);
      } else block = firstDataBlock + 1 + descBlock;
      buf = await this.readBlocks(block, 1, op);
      if (this.descCache.size > 1024) this.descCache.clear();
      this.descCache.set(descBlock, buf);
    }
    const off = (g % perBlock) * this.descBytes;
    const desc = buf.subarray(off, off + this.descBytes);
    this.csums?.checkGroupDesc(g, desc);
    return desc;
  }

  private groupHasSuper(g: number): boolean {
    if (!(this.roCompat & 0x1)) return true; // no sparse_super
    if (g <= 1) return true;
    for (const base of [3, 5, 7]) {
      let p = base;
      while (p < g) p *= base;
      if (p === g) return true;
    }
    return false;
  }

  private async inode(ino: number, op?: Op): Promise<Inode> {
    if (!Number.isSafeInteger(ino) || ino < 1 || ino > this.inodesCount)
      throw corrupt(`inode ${ino} out of range (1..${this.inodesCount})`);
    const g = Math.floor((ino - 1) / this.inodesPerGroup);
    const idx = (ino - 1) % this.inodesPerGroup;
    const d = await this.groupDesc(g, op);
    const table = d.readUInt32LE(8) + (this.descBytes >= 64 ? d.readUInt32LE(0x28) * 2 ** 32 : 0);
    const byteInTable = idx * this.inodeBytes;
    const block = table + Math.floor(byteInTable / this.blockBytes);
    const blk = await this.readBlocks(block, 1, op);
    const raw = blk.subarray(byteInTable % this.blockBytes, (byteInTable % this.blockBytes) + this.inodeBytes);
    this.csums?.checkInode(ino, raw);
    const extraIsize = this.inodeBytes > 128 ? raw.readUInt16LE(128) : 0;
    if (128 + extraIsize > this.inodeBytes || extraIsize % 4 !== 0)
      throw corrupt(`inode ${ino}: extra size ${extraIsize} overflows the inode or is not a multiple of 4`);
    const time = (base: number, extraOff: number) => {
      let s = raw.readInt32LE(base);
      let ns = 0;
      if (extraIsize >= extraOff + 4 - 128) {
        const extra = raw.readUInt32LE(extraOff);
        s += (extra & 3) * 2 ** 32;
        ns = extra >>> 2;
        if (ns > 999_999_999) ns = 0;
      }
      return s * 1000 + Math.floor(ns / 1e6);
    };
    const flags = raw.readUInt32LE(32);
    const blocksLo = raw.readUInt32LE(28);
    const blocksHi = raw.readUInt16LE(116);
    return {
      ino,
      mode: raw.readUInt16LE(0),
      uid: raw.readUInt16LE(2) | (raw.readUInt16LE(120) << 16),
      gid: raw.readUInt16LE(24) | (raw.readUInt16LE(122) << 16),
      size: raw.readUInt32LE(4) + raw.readUInt32LE(108) * 2 ** 32,
      nlink: raw.readUInt16LE(26),
      flags,
      atimeMs: time(8, 140),
      mtimeMs: time(16, 136),
      ctimeMs: time(12, 132),
      blocks:
        (blocksLo + blocksHi * 2 ** 32) *
        (this.roCompat & RO_COMPAT_HUGE_FILE && flags & FL_HUGE_FILE ? this.blockBytes / 512 : 1),
      fileAcl: raw.readUInt32LE(104) + raw.readUInt16LE(118) * 2 ** 32,
      iblock: raw.subarray(40, 100),
      raw,
      extraIsize,
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
    const ino = await this.inode(ROOT_INO, op);
    if ((ino.mode & 0xf000) !== 0x4000) throw corrupt('the root inode is not a directory');
    return this.node('/', ino);
  }

  /** The largest size a file can have here: 2^32 blocks (extents and block maps both address 32-bit logical blocks). */
  private checkSize(ino: Inode): void {
    const max = 2 ** 32 * this.blockBytes;
    if (ino.size > max || !Number.isSafeInteger(ino.size))
      throw corrupt(`inode ${ino.ino}: size ${ino.size} exceeds the largest possible file`);
    // allocated space beyond the partition cannot be real (sparse files may be larger than the partition, their blocks
    // cannot)
    if (ino.blocks * 512 > this.dev.sizeBytes + 2 ** 20 && !(ino.flags & FL_HUGE_FILE))
      throw corrupt(`inode ${ino.ino}: ${ino.blocks} allocated sectors exceed the partition`);
  }

  /** The block runs of a file in logical order (holes omitted), bounded by the file's block count. */
  private async *runs(ino: Inode, op?: Op): AsyncGenerator<Run> {
    this.checkSize(ino);
    const fileBlocks = Math.ceil(ino.size / this.blockBytes);
    const csums = this.csums;
    const ctx = {
      blocksCount: this.blocksCount,
      blockBytes: this.blockBytes,
      readBlock: (b: number, o?: Op) => this.readBlocks(b, 1, o),
      checkExtentBlock: csums
        ? (node: Buffer, block: number) => csums.checkExtentBlock(ino.ino, ino.raw, node, block)
        : undefined,
    };
    if (ino.flags & FL_EXTENTS) yield* extentRuns(ctx, ino.ino, ino.iblock, fileBlocks, op);
    else yield* blockMapRuns(ctx, ino.ino, ino.iblock, fileBlocks, op);
  }

  /**
   * Inline data (INLINE_DATA_FL): i_block then the value of the system.data xattr in the inode body. Every offset and
   * length from the image is checked as the kernel's xattr_check_inode does: entries inside the body and ending with a
   * 4-byte zero, a value neither before the end of the entries (it would be header bytes) nor past the body; and the
   * file's size must fit the inline space (60 bytes + the value).
   */
  private inlineData(ino: Inode): Buffer {
    const raw = ino.raw;
    const start = 128 + ino.extraIsize;
    let value: Buffer | undefined;
    let dataEntry: { offs: number; size: number } | undefined;
    if (start + 4 <= raw.length && raw.readUInt32LE(start) === 0xea020000) {
      const base = start + 4;
      let p = base;
      const found: { offs: number; size: number; inum: number }[] = [];
      for (;;) {
        if (p + 4 > raw.length) throw corrupt(`inode ${ino.ino}: in-inode xattr entries run past the inode`);
        if (raw.readUInt32LE(p) === 0) break;
        if (p + 16 > raw.length) throw corrupt(`inode ${ino.ino}: in-inode xattr entries run past the inode`);
        const nameLen = raw[p]!;
        const index = raw[p + 1]!;
        const entry = { offs: raw.readUInt16LE(p + 2), inum: raw.readUInt32LE(p + 4), size: raw.readUInt32LE(p + 8) };
        if (p + 16 + nameLen > raw.length)
          throw corrupt(`inode ${ino.ino}: an in-inode xattr name runs past the inode`);
        found.push(entry);
        if (index === 7 && raw.toString('latin1', p + 16, p + 16 + nameLen) === 'data') {
          if (entry.inum !== 0) throw corrupt(`inode ${ino.ino}: inline data stored in an EA inode`);
          dataEntry = entry;
        }
        p += (16 + nameLen + 3) & ~3;
      }
      const entriesEnd = p + 4; // after the terminating zero
      for (const e of found) {
        if (e.size === 0 || e.inum !== 0) continue;
        const at = base + e.offs;
        if (at < entriesEnd || at + e.size > raw.length || at + ((e.size + 3) & ~3) > raw.length) {
          throw corrupt(
            `inode ${ino.ino}: an in-inode xattr value (offset ${e.offs}, ${e.size} bytes) overlaps the entries or ` +
              `runs past the inode`,
            { inode: ino.ino, offset: e.offs, size: e.size },
          );
        }
      }
      if (dataEntry) value = raw.subarray(base + dataEntry.offs, base + dataEntry.offs + dataEntry.size);
    }
    if (ino.size > 60 + (value?.length ?? 0))
      throw corrupt(`inode ${ino.ino}: size ${ino.size} exceeds its inline data (${60 + (value?.length ?? 0)} bytes)`, {
        inode: ino.ino,
      });
    const all = value ? Buffer.concat([ino.iblock, value]) : ino.iblock;
    return all.subarray(0, ino.size);
  }

  async *read(node: FsNode, op?: Op): AsyncIterable<FileExtent> {
    const ino = node.ref as Inode;
    if (ino.flags & FL_ENCRYPT) throw new CofferError('FS_UNSUPPORTED', `ext: inode ${ino.ino} is encrypted (fscrypt)`);
    if (ino.flags & FL_INLINE) {
      const data = this.inlineData(ino);
      if (data.length > 0) yield { offset: 0, data };
      return;
    }
    const maxBlocks = Math.max(1, Math.floor(PIECE_BYTES / this.blockBytes));
    let total = 0; // blocks are not shared on ext: more data than the volume holds means a damaged map
    for await (const r of this.runs(ino, op)) {
      total += r.count * this.blockBytes;
      if (total > this.dev.sizeBytes)
        throw corrupt(`inode ${ino.ino}: its block map yields more data than the volume holds`);
      for (let done = 0; done < r.count; ) {
        op?.signal?.throwIfAborted();
        const n = Math.min(maxBlocks, r.count - done);
        const offset = (r.logical + done) * this.blockBytes;
        let data = await this.readBlocks(r.physical + done, n, op);
        if (offset + data.length > ino.size) data = data.subarray(0, ino.size - offset);
        yield { offset, data };
        done += n;
      }
    }
  }

  private async readAll(ino: Inode, maxBytes: number, op?: Op): Promise<Buffer> {
    if (ino.size > maxBytes)
      throw corrupt(`inode ${ino.ino}: size ${ino.size} exceeds the limit of ${maxBytes} for this kind of object`);
    const out = Buffer.alloc(ino.size);
    for await (const p of this.read(this.node('', ino), op)) p.data.copy(out, p.offset);
    return out;
  }

  async readlink(node: FsNode, op?: Op): Promise<string> {
    const ino = node.ref as Inode;
    if (node.type !== 'symlink') throw new CofferError('USAGE', `${node.name} is not a symbolic link`);
    if (ino.size > MAX_LINK_BYTES) throw corrupt(`inode ${ino.ino}: symlink target of ${ino.size} bytes`);
    let bytes: Buffer;
    const fast =
      !(ino.flags & (FL_EXTENTS | FL_INLINE)) &&
      ino.size < 60 &&
      (ino.blocks === 0 || (ino.fileAcl !== 0 && ino.blocks === this.blockBytes / 512));
    if (fast) bytes = ino.iblock.subarray(0, ino.size);
    else bytes = await this.readAll(ino, MAX_LINK_BYTES, op);
    if (bytes.includes(0)) throw corrupt(`inode ${ino.ino}: symlink target contains NUL`);
    return bytes.toString('utf8');
  }

  async list(dir: FsNode, op?: Op): Promise<FsNode[]> {
    const ino = dir.ref as Inode;
    if (dir.type !== 'dir') throw new CofferError('USAGE', `${dir.name} is not a directory`);
    if (ino.flags & FL_ENCRYPT)
      throw new CofferError('FS_UNSUPPORTED', `ext: directory inode ${ino.ino} is encrypted (fscrypt)`);
    // a directory larger than 256 MiB is not real (largedir allows 4 GiB in theory; keep memory bounded)
    const data = await this.readAll(ino, 256 * 1024 * 1024, op);
    const out: FsNode[] = [];
    const entries: DirEntry[] = [];
    const tick = cooperative(); // a huge directory does not hold the event loop (docs/DESIGN.md §File-level restore)
    if (ino.flags & FL_INLINE) {
      // 4 bytes of parent inode, then records up to the end of i_block; the xattr part continues the records
      const first = data.subarray(4, Math.min(60, data.length));
      this.parseRecords(first, ino.ino, entries, first.length);
      if (data.length > 60) this.parseRecords(data.subarray(60), ino.ino, entries, data.length - 60);
    } else {
      for (let off = 0; off < data.length; off += this.blockBytes) {
        const blk = data.subarray(off, off + this.blockBytes);
        this.csums?.checkDirBlock(ino.ino, ino.raw, blk, off / this.blockBytes, (ino.flags & FL_INDEX) !== 0);
        this.parseRecords(blk, ino.ino, entries, this.blockBytes);
        await tick();
      }
    }
    for (const e of entries) {
      op?.signal?.throwIfAborted();
      await tick();
      try {
        // a name no path can reach: listed with its error, so `ls` and `get` report the same FS_CORRUPT
        if (e.bad)
          throw corrupt(`directory inode ${ino.ino}: the entry ${JSON.stringify(e.name)} (inode ${e.ino}) ${e.bad}`, {
            inode: ino.ino,
            name: e.name,
          });
        out.push(this.node(e.name, await this.inode(e.ino, op)));
      } catch (err) {
        // one bad entry (inode out of range, its inode table in a missing chunk) does not hide the others
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

  /** Linear directory records of one block (htree index nodes are fake records with inode 0 and are skipped). */
  private parseRecords(blk: Buffer, dirIno: number, out: DirEntry[], unit: number): void {
    let p = 0;
    while (p + 8 <= blk.length) {
      const inode = blk.readUInt32LE(p);
      const recLen = blk.readUInt16LE(p + 4);
      const realLen = recLen === 0 && unit === 65536 ? 65536 : recLen; // 64 KiB blocks encode 65536 as 0
      const nameLen = blk[p + 6]!;
      if (realLen < 8 || realLen % 4 !== 0 || p + realLen > blk.length)
        throw corrupt(`directory inode ${dirIno}: bad record length ${recLen} at offset ${p}`, { inode: dirIno });
      if (8 + nameLen > realLen)
        throw corrupt(`directory inode ${dirIno}: name of ${nameLen} bytes overflows its record`, { inode: dirIno });
      if (inode !== 0 && nameLen > 0) {
        const nameBytes = blk.subarray(p + 8, p + 8 + nameLen);
        const name = nameBytes.toString('utf8');
        const bad = nameBytes.includes(0x2f)
          ? 'has a name containing /'
          : nameBytes.includes(0)
            ? 'has a name containing NUL'
            : undefined;
        if (name !== '.' && name !== '..') out.push(bad ? { name, ino: inode, bad } : { name, ino: inode });
      }
      p += realLen;
    }
  }
}
