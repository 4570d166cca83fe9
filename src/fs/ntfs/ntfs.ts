import { CofferError, cooperative, type Op } from '../../shared/index.js';
import type { BlockReader } from '../block-reader.js';
import { MAX_LINK_BYTES, type FileExtent, type FileType, type FsNode, type GuestFs } from '../types.js';
import { parseBoot, type NtfsBoot } from './boot.js';
import { NS, walkIndex } from './dir-index.js';
import { corrupt, unsupported } from './errors.js';
import { AT, ntTimeMs, parseRecord, type Attribute, type FileRecord } from './record.js';
import { describeTag, parseReparse, TAG, type Reparse } from './reparse.js';
import { joinExtents, pieces, readRange, readValue, type Stream, type Volume } from './stream.js';

/**
 * Read-only NTFS (docs/DESIGN.md §NTFS reader, docs/adr/0010-ntfs-reader.md). Everything read is untrusted: records
 * and index blocks have their fixups checked, runlists are bounded by the volume and may not overlap, index trees
 * are walked with cycle and depth checks, attribute lists may only name extension records of their own file.
 * Not done: $LogFile replay (a dirty volume is read as it is on disk, with a warning), EFS, BitLocker, case-insensitive
 * lookup.
 */

const ROOT_RECORD = 5;
const VOLUME_RECORD = 3;
/** Records below this are metafiles ($MFT, $Bitmap, $Extend ...): never listed. */
const FIRST_USER_RECORD = 16;
const MAX_ATTRIBUTE_LIST_BYTES = 256 * 1024;
const MAX_EXTENSION_RECORDS = 1024;
const MAX_DIRECTORY_INDEX_BYTES = 256 * 1024 * 1024;
/** MFT bytes read and cached at a time: records of one directory are usually neighbours. */
const WINDOW_BYTES = 64 * 1024;
const WINDOW_CACHE = 64;

const FILE_ATTRIBUTES: [number, string][] = [
  [0x1, 'readonly'],
  [0x2, 'hidden'],
  [0x4, 'system'],
  [0x20, 'archive'],
  [0x40, 'device'],
  [0x100, 'temporary'],
  [0x200, 'sparse'],
  [0x400, 'reparse-point'],
  [0x800, 'compressed'],
  [0x1000, 'offline'],
  [0x2000, 'not-content-indexed'],
  [0x4000, 'encrypted'],
];

/** One file: its base record and the attributes of all its records. */
interface NtfsFile {
  rec: FileRecord;
  attrs: Attribute[];
}

interface NtfsRef {
  record: number;
  file: NtfsFile;
  reparse?: Reparse;
}

export function fileAttributeNames(flags: number): string[] {
  return FILE_ATTRIBUTES.filter(([bit]) => flags & bit).map(([, n]) => n);
}

export class NtfsFs implements GuestFs {
  readonly kind = 'ntfs';
  readonly warnings: string[] = [];
  /** the $Volume flags' dirty bit */
  dirty = false;
  private readonly vol: Volume;
  private mft!: Stream;
  private recordCount = 0;
  private readonly windows = new Map<number, Buffer>();

  private constructor(
    private readonly dev: BlockReader,
    readonly boot: NtfsBoot,
  ) {
    this.vol = { dev, clusterBytes: boot.clusterBytes, totalClusters: boot.totalClusters };
  }

  static async open(dev: BlockReader, op?: Op): Promise<NtfsFs> {
    if (dev.sizeBytes < 8192) throw corrupt('the volume is too small for NTFS');
    const boot = parseBoot(await dev.read(0, 512, op), dev.sizeBytes);
    const fs = new NtfsFs(dev, boot);
    await fs.loadMft(op);
    await fs.readVolumeFlags(op);
    return fs;
  }

  /**
   * $MFT's own $DATA: from record 0 at the boot sector's MFT cluster; extension records found through the first extent.
   */
  private async loadMft(op?: Op): Promise<void> {
    const { mftLcn, mftRecordBytes: rb, clusterBytes: cb, totalClusters } = this.boot;
    const rec0 = parseRecord(await this.dev.read(mftLcn * cb, rb, op), 0, totalClusters);
    const first = rec0.attrs.find((a) => a.type === AT.DATA && a.name === '' && a.lowestVcn === 0);
    if (!first?.runs) throw corrupt('$MFT has no non-resident $DATA attribute');
    // bootstrap map: the first extent (it always maps the records that hold the others)
    const covered = (first.highestVcn + 1) * cb;
    this.mft = {
      type: AT.DATA,
      name: '',
      flags: 0,
      runs: first.runs,
      compressionUnit: 0,
      dataSize: Math.min(first.dataSize, covered),
      initializedSize: Math.min(first.initializedSize, covered),
      allocatedSize: covered,
    };
    this.recordCount = Math.floor(this.mft.dataSize / rb);
    const file = await this.file(0, op);
    const mft = joinExtents(
      file.attrs.filter((a) => a.type === AT.DATA && a.name === ''),
      this.vol,
      '$MFT $DATA',
    );
    if (mft.value || mft.flags !== 0) throw corrupt('$MFT $DATA is resident, compressed, sparse or encrypted');
    if (mft.dataSize > this.vol.totalClusters * cb)
      throw corrupt(`$MFT of ${mft.dataSize} bytes is larger than the volume`);
    this.mft = mft;
    this.recordCount = Math.floor(Math.min(mft.dataSize, mft.initializedSize) / rb);
    this.windows.clear();
    if (this.recordCount <= ROOT_RECORD) throw corrupt(`$MFT holds only ${this.recordCount} records`);
  }

  private async readVolumeFlags(op?: Op): Promise<void> {
    try {
      const f = await this.file(VOLUME_RECORD, op);
      const vi = f.attrs.find((a) => a.type === AT.VOLUME_INFORMATION)?.value;
      if (!vi || vi.length < 12) throw corrupt('$Volume has no volume information');
      const flags = vi.readUInt16LE(10);
      this.dirty = (flags & 0x0001) !== 0;
      if (this.dirty)
        this.warnings.push(
          'the NTFS volume is marked dirty (not cleanly unmounted, e.g. a crash-consistent backup of a running ' +
            'Windows): its $LogFile is not replayed, so the most recent changes may be missing or inconsistent',
        );
    } catch (e) {
      if (!(e instanceof CofferError) || e.code === 'CANCELLED') throw e;
      this.warnings.push(
        `the volume flags cannot be read (${e.message}): whether the volume was cleanly unmounted is unknown`,
      );
    }
  }

  /** A copy of MFT record `n` (fixups are applied to the copy). */
  private async rawRecord(n: number, op?: Op): Promise<Buffer> {
    const rb = this.boot.mftRecordBytes;
    if (!Number.isSafeInteger(n) || n < 0 || n >= this.recordCount)
      throw corrupt(`MFT record ${n} out of range (0..${this.recordCount - 1})`);
    const off = n * rb;
    const w = Math.floor(off / WINDOW_BYTES) * WINDOW_BYTES;
    let win = this.windows.get(w);
    if (!win) {
      win = await readRange(this.vol, this.mft, w, Math.min(WINDOW_BYTES, this.recordCount * rb - w), op);
      if (this.windows.size >= WINDOW_CACHE) this.windows.delete(this.windows.keys().next().value!);
      this.windows.set(w, win);
    }
    return Buffer.from(win.subarray(off - w, off - w + rb));
  }

  /** File record `n` with the attributes of its extension records (through $ATTRIBUTE_LIST). */
  private async file(n: number, op?: Op): Promise<NtfsFile> {
    const rec = parseRecord(await this.rawRecord(n, op), n, this.vol.totalClusters);
    if (!rec.inUse) throw corrupt(`MFT record ${n} is not in use (a stale directory entry)`);
    if (rec.base !== 0) throw corrupt(`MFT record ${n} is an extension record of ${rec.base}, not a file`);
    const attrs = [...rec.attrs];
    const lists = rec.attrs.filter((a) => a.type === AT.ATTRIBUTE_LIST);
    if (lists.length > 1) throw corrupt(`MFT record ${n} has ${lists.length} attribute lists`);
    if (lists[0]) {
      const where = `MFT record ${n} $ATTRIBUTE_LIST`;
      const list = await readValue(this.vol, joinExtents(lists, this.vol, where), MAX_ATTRIBUTE_LIST_BYTES, where, op);
      const ext = new Set<number>();
      for (let p = 0; p + 26 <= list.length; ) {
        const len = list.readUInt16LE(p + 4);
        if (len < 26 || p + len > list.length) throw corrupt(`${where}: entry at ${p} has bad length ${len}`);
        const r = list.readUInt32LE(p + 16) + list.readUInt16LE(p + 20) * 2 ** 32;
        if (r !== n) ext.add(r);
        if (ext.size > MAX_EXTENSION_RECORDS)
          throw corrupt(`${where}: more than ${MAX_EXTENSION_RECORDS} extension records`);
        p += len;
      }
      for (const r of ext) {
        op?.signal?.throwIfAborted();
        const x = parseRecord(await this.rawRecord(r, op), r, this.vol.totalClusters);
        if (!x.inUse || x.base !== n)
          throw corrupt(`${where}: record ${r} is not an extension record of ${n} (its base is ${x.base})`);
        if (x.attrs.some((a) => a.type === AT.ATTRIBUTE_LIST))
          throw corrupt(`${where}: extension record ${r} has an attribute list of its own`);
        attrs.push(...x.attrs);
      }
    }
    return { rec, attrs };
  }

  private stream(f: NtfsFile, type: number, name: string): Stream | undefined {
    const exts = f.attrs.filter((a) => a.type === type && a.name === name);
    return exts.length
      ? joinExtents(
          exts,
          this.vol,
          `MFT record ${f.rec.number} attribute 0x${type.toString(16)}${name ? ` "${name}"` : ''}`,
        )
      : undefined;
  }

  private async node(name: string, record: number, f: NtfsFile, op?: Op): Promise<FsNode> {
    const si = f.attrs.find((a) => a.type === AT.STANDARD_INFORMATION)?.value;
    if (!si || si.length < 48) throw corrupt(`MFT record ${record} has no $STANDARD_INFORMATION`);
    const flags = si.readUInt32LE(32);
    const ref: NtfsRef = { record, file: f };
    const rp = this.stream(f, AT.REPARSE_POINT, '');
    if (rp)
      ref.reparse = parseReparse(
        await readValue(this.vol, rp, 16 * 1024, `MFT record ${record} $REPARSE_POINT`, op),
        `MFT record ${record}`,
      );
    const isDir = f.rec.isDirectory;
    let type: FileType = isDir ? 'dir' : 'file';
    const tag = ref.reparse?.tag;
    if (tag === TAG.SYMLINK || tag === TAG.MOUNT_POINT) type = 'symlink';
    else if (tag === 0x80000023) type = 'socket';
    const names = f.attrs.filter(
      (a) => a.type === AT.FILE_NAME && a.value && a.value.length >= 66 && a.value[65] !== NS.DOS,
    ).length;
    const data = type === 'file' ? this.stream(f, AT.DATA, '') : undefined;
    const streams = f.attrs
      .filter((a) => a.type === AT.DATA && a.name !== '' && a.lowestVcn === 0)
      .map((a) => ({ name: a.name, sizeBytes: a.dataSize }));
    const mode = (isDir || type === 'symlink' ? 0o755 : 0o644) & (flags & 0x1 && type !== 'symlink' ? ~0o222 : 0o7777);
    const node: FsNode = {
      name,
      type,
      sizeBytes: type === 'symlink' ? Buffer.byteLength(ref.reparse?.target ?? '') : (data?.dataSize ?? 0),
      mode,
      uid: 0,
      gid: 0,
      nlink: Math.max(1, names),
      mtimeMs: ntTimeMs(si, 8),
      atimeMs: ntTimeMs(si, 24),
      ctimeMs: ntTimeMs(si, 16),
      id: `mft:${record}`,
      ref,
      attributes: fileAttributeNames(flags),
    };
    if (streams.length) node.streams = streams;
    return node;
  }

  async root(op?: Op): Promise<FsNode> {
    const f = await this.file(ROOT_RECORD, op);
    if (!f.rec.isDirectory) throw corrupt('the root (MFT record 5) is not a directory');
    const n = await this.node('/', ROOT_RECORD, f, op);
    if (n.type !== 'dir') throw corrupt('the root directory is a reparse point');
    return n;
  }

  async list(dir: FsNode, op?: Op): Promise<FsNode[]> {
    if (dir.type !== 'dir') throw new CofferError('USAGE', `${dir.name} is not a directory`);
    const { record, file } = dir.ref as NtfsRef;
    const where = `directory (MFT record ${record})`;
    const root = this.stream(file, AT.INDEX_ROOT, '$I30');
    if (!root?.value) throw corrupt(`${where} has no resident $INDEX_ROOT`);
    const blockBytes = root.value.length >= 12 ? root.value.readUInt32LE(8) : 0;
    const alloc = this.stream(file, AT.INDEX_ALLOCATION, '$I30');
    let block: ((vcn: number) => Promise<Buffer>) | undefined;
    if (alloc) {
      if (blockBytes < 256 || blockBytes > 65536 || (blockBytes & (blockBytes - 1)) !== 0)
        throw corrupt(`${where}: index blocks of ${blockBytes} bytes`);
      if (alloc.value || alloc.flags !== 0)
        throw corrupt(`${where}: $INDEX_ALLOCATION is resident, compressed or sparse`);
      if (alloc.dataSize > MAX_DIRECTORY_INDEX_BYTES) throw corrupt(`${where}: an index of ${alloc.dataSize} bytes`);
      const unit = blockBytes >= this.vol.clusterBytes ? this.vol.clusterBytes : 512;
      block = async (vcn: number) => {
        const off = vcn * unit;
        if (!Number.isSafeInteger(off) || off % blockBytes !== 0 || off + blockBytes > alloc.dataSize)
          throw corrupt(`${where}: index block VCN ${vcn} is outside its index allocation`);
        return readRange(this.vol, alloc, off, blockBytes, op);
      };
    }
    const tick = cooperative(); // a huge directory does not hold the event loop (docs/DESIGN.md §File-level restore)
    const entries = await walkIndex(root.value, block, blockBytes, where, op?.signal, tick);
    const out: FsNode[] = [];
    for (const e of entries) {
      if (e.namespace === NS.DOS || e.record === record || e.record < FIRST_USER_RECORD) continue;
      op?.signal?.throwIfAborted();
      await tick();
      try {
        const f = await this.file(e.record, op);
        if (e.sequence !== 0 && f.rec.sequence !== e.sequence)
          throw corrupt(
            `the entry ${JSON.stringify(e.name)} names MFT record ${e.record} sequence ${e.sequence}, the record ` +
              `has sequence ${f.rec.sequence} (a stale entry)`,
          );
        out.push(await this.node(e.name, e.record, f, op));
      } catch (err) {
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
          id: `mft:${e.record}`,
          ref: undefined,
          error: err,
        });
      }
    }
    return out;
  }

  async readlink(node: FsNode): Promise<string> {
    const ref = node.ref as NtfsRef;
    if (node.type !== 'symlink' || !ref.reparse?.target)
      throw new CofferError('USAGE', `${node.name} is not a symbolic link or junction`);
    const r = ref.reparse;
    // relative symlinks are made usable on restore (\ -> /); absolute targets and junctions are kept as stored
    const target = r.relative ? r.target!.replace(/\\/g, '/') : r.target!;
    if (target.includes('\0') || Buffer.byteLength(target) > MAX_LINK_BYTES)
      throw corrupt(`MFT record ${ref.record}: reparse target is too long or contains NUL`);
    return target;
  }

  async *read(node: FsNode, op?: Op): AsyncIterable<FileExtent> {
    yield* this.readStream(node, '', op);
  }

  /** A named data stream (alternate data stream) of a file; '' is the unnamed one (the file's content). */
  async *readStream(node: FsNode, name: string, op?: Op): AsyncIterable<FileExtent> {
    const ref = node.ref as NtfsRef;
    if (node.type !== 'file') throw new CofferError('USAGE', `${node.name} is not a regular file`);
    const tag = ref.reparse?.tag;
    if (tag !== undefined && name === '')
      throw unsupported(`${node.name} is ${describeTag(tag)}: its content is not stored in the file itself`, {
        reparseTag: `0x${tag.toString(16)}`,
      });
    const s = this.stream(ref.file, AT.DATA, name);
    if (!s) {
      if (name === '') return; // a file without $DATA reads as empty
      throw new CofferError('NOT_FOUND', `${node.name} has no stream ${JSON.stringify(name)}`);
    }
    yield* pieces(this.vol, s, `MFT record ${ref.record}${name ? ` stream "${name}"` : ''}`, op);
  }
}
