import { CofferError, cooperative, type Op } from '../shared/index.js';
import type { BlockReader } from './block-reader.js';
import { PIECE_BYTES, type FileExtent, type FsNode, type GuestFs } from './types.js';

/**
 * Read-only FAT12/FAT16/FAT32 with VFAT long names (docs/DESIGN.md §File-level restore). Cluster numbers are checked
 * against the volume, chains are bounded by the cluster count and by a visited set, LFN entries are used only when
 * their sequence and checksum are right (else the 8.3 name). Times are local wall-clock values without a zone: they
 * are read as UTC (what Linux does with tz=UTC); FAT has no owners, so uid/gid are 0, modes 0755/0644 (0444 read-only).
 */

const ATTR_RO = 0x01;
const ATTR_VOLUME = 0x08;
const ATTR_DIR = 0x10;
const ATTR_LFN = 0x0f;

function corrupt(msg: string, details: Record<string, unknown> = {}): CofferError {
  return new CofferError('FS_CORRUPT', `fat: ${msg}`, { details });
}

interface Bpb {
  sectorBytes: number;
  clusterSectors: number;
  reserved: number;
  fats: number;
  rootEntries: number;
  totalSectors: number;
  fatSectors: number;
  rootCluster: number;
}

function parseBpb(b: Buffer): Bpb | string {
  if (b.length < 512) return 'short boot sector';
  if (b[0] !== 0xeb && b[0] !== 0xe9) return 'no x86 jump at the start of the boot sector';
  const sectorBytes = b.readUInt16LE(11);
  if (![512, 1024, 2048, 4096].includes(sectorBytes)) return `bytes per sector ${sectorBytes}`;
  const clusterSectors = b[13]!;
  if (clusterSectors === 0 || (clusterSectors & (clusterSectors - 1)) !== 0)
    return `sectors per cluster ${clusterSectors}`;
  const reserved = b.readUInt16LE(14);
  const fats = b[16]!;
  if (reserved === 0 || fats === 0 || fats > 4) return `reserved sectors ${reserved}, FATs ${fats}`;
  const rootEntries = b.readUInt16LE(17);
  const totalSectors = b.readUInt16LE(19) || b.readUInt32LE(32);
  const fat16 = b.readUInt16LE(22);
  const fatSectors = fat16 || b.readUInt32LE(36);
  if (totalSectors === 0 || fatSectors === 0) return 'zero total or FAT sectors';
  if (b[21]! < 0xf0 && b[21] !== 0) return `media byte 0x${b[21]!.toString(16)}`;
  // FAT32 (no 16-bit FAT size): the root directory's cluster; 0 marks FAT12/16
  const rootCluster = fat16 ? 0 : b.readUInt32LE(44);
  if (!fat16 && rootCluster === 0) return 'FAT32 boot sector with root cluster 0';
  return { sectorBytes, clusterSectors, reserved, fats, rootEntries, totalSectors, fatSectors, rootCluster };
}

export function looksLikeFat(sector0: Buffer): boolean {
  return typeof parseBpb(sector0) !== 'string' && sector0.readUInt16LE(510) === 0xaa55;
}

interface FatRef {
  /** first cluster (0 for an empty file, or the fixed FAT12/16 root) */
  cluster: number;
  attr: number;
  fixedRoot?: boolean;
}

export class FatFs implements GuestFs {
  readonly kind: string;
  private readonly clusterBytes: number;
  private readonly clusterCount: number;
  private readonly bits: 12 | 16 | 32;
  private readonly fatStart: number;
  private readonly rootStart: number;
  private readonly rootBytes: number;
  private readonly dataStart: number;
  private readonly fatCache = new Map<number, Buffer>();
  private static readonly FAT_PAGE = 65536;

  private constructor(
    private readonly dev: BlockReader,
    private readonly bpb: Bpb,
  ) {
    const s = bpb.sectorBytes;
    this.clusterBytes = s * bpb.clusterSectors;
    this.fatStart = bpb.reserved * s;
    this.rootStart = this.fatStart + bpb.fats * bpb.fatSectors * s;
    this.rootBytes = Math.ceil((bpb.rootEntries * 32) / s) * s;
    this.dataStart = this.rootStart + this.rootBytes;
    const dataSectors = bpb.totalSectors - this.dataStart / s;
    this.clusterCount = Math.floor(dataSectors / bpb.clusterSectors);
    // as Linux does: a BPB without a 16-bit FAT size and without root entries is FAT32 whatever its cluster count
    // (mkfs.fat makes small FAT32 volumes); otherwise the cluster count decides between FAT12 and FAT16
    this.bits =
      bpb.rootCluster !== 0 || (bpb.rootEntries === 0 && this.clusterCount >= 65525)
        ? 32
        : this.clusterCount < 4085
          ? 12
          : 16;
    this.kind = `fat${this.bits}`;
  }

  static async open(dev: BlockReader, op?: Op): Promise<FatFs> {
    const bpb = parseBpb(await dev.read(0, 512, op));
    if (typeof bpb === 'string') throw corrupt(`not a FAT boot sector: ${bpb}`);
    const fs = new FatFs(dev, bpb);
    if (bpb.totalSectors * bpb.sectorBytes > dev.sizeBytes)
      throw corrupt(
        `the volume (${bpb.totalSectors} sectors of ${bpb.sectorBytes}) exceeds the partition (${dev.sizeBytes} bytes)`,
      );
    if (fs.clusterCount < 1 || fs.dataStart >= bpb.totalSectors * bpb.sectorBytes) throw corrupt('no data area');
    const fatEntriesFit = Math.floor((bpb.fatSectors * bpb.sectorBytes * 8) / fs.bits);
    if (fatEntriesFit < fs.clusterCount + 2)
      throw corrupt(`the FAT (${bpb.fatSectors} sectors) is too small for ${fs.clusterCount} clusters`);
    if (fs.bits === 32) {
      if (bpb.rootEntries !== 0) throw corrupt('FAT32 with a fixed root directory');
      fs.checkCluster(bpb.rootCluster, 'root directory');
    } else if (bpb.rootEntries === 0) throw corrupt(`FAT${fs.bits} without root directory entries`);
    return fs;
  }

  private checkCluster(c: number, what: string): void {
    if (c < 2 || c > this.clusterCount + 1)
      throw corrupt(`${what}: cluster ${c} is out of range (2..${this.clusterCount + 1})`, { cluster: c });
  }

  private async fatEntry(c: number, op?: Op): Promise<number> {
    const byte = this.bits === 12 ? c + (c >> 1) : c * (this.bits / 8);
    const page = Math.floor(byte / FatFs.FAT_PAGE);
    let buf = this.fatCache.get(page);
    if (!buf) {
      const fatBytes = this.bpb.fatSectors * this.bpb.sectorBytes;
      const len = Math.min(FatFs.FAT_PAGE + 4, fatBytes - page * FatFs.FAT_PAGE);
      buf = await this.dev.read(this.fatStart + page * FatFs.FAT_PAGE, len, op);
      if (this.fatCache.size > 256) this.fatCache.clear();
      this.fatCache.set(page, buf);
    }
    const o = byte - page * FatFs.FAT_PAGE;
    if (this.bits === 12) {
      const v = buf.readUInt16LE(o);
      return c & 1 ? v >> 4 : v & 0xfff;
    }
    if (this.bits === 16) return buf.readUInt16LE(o);
    return buf.readUInt32LE(o) & 0x0fffffff;
  }

  /** The cluster chain from `first`: at most `limit` clusters, every one in range, none twice. */
  private async chain(first: number, limit: number, what: string, op?: Op): Promise<number[]> {
    const eoc = this.bits === 12 ? 0xff8 : this.bits === 16 ? 0xfff8 : 0x0ffffff8;
    const out: number[] = [];
    const seen = new Set<number>();
    let c = first;
    while (true) {
      op?.signal?.throwIfAborted();
      this.checkCluster(c, what);
      if (seen.has(c)) throw corrupt(`${what}: the cluster chain loops at cluster ${c}`, { cluster: c });
      seen.add(c);
      out.push(c);
      if (out.length >= limit) return out;
      const next = await this.fatEntry(c, op);
      if (next >= eoc) return out;
      if (next === 0 || next === eoc - 1)
        throw corrupt(`${what}: the cluster chain hits a ${next === 0 ? 'free' : 'bad'} cluster after ${c}`, {
          cluster: c,
        });
      c = next;
    }
  }

  private node(
    name: string,
    attr: number,
    cluster: number,
    size: number,
    mtimeMs: number | undefined,
    atimeMs: number | undefined,
    extra: Partial<FatRef> = {},
  ): FsNode {
    const dir = (attr & ATTR_DIR) !== 0;
    const ref: FatRef = { cluster, attr, ...extra };
    return {
      name,
      type: dir ? 'dir' : 'file',
      sizeBytes: dir ? 0 : size,
      mode: dir ? 0o755 : attr & ATTR_RO ? 0o444 : 0o644,
      uid: 0,
      gid: 0,
      nlink: 1,
      mtimeMs,
      atimeMs,
      id: ref.fixedRoot ? 'root' : `cluster:${cluster}`,
      ref,
    };
  }

  async root(): Promise<FsNode> {
    if (this.bits === 32) return this.node('/', ATTR_DIR, this.bpb.rootCluster, 0, undefined, undefined);
    return this.node('/', ATTR_DIR, 0, 0, undefined, undefined, { fixedRoot: true });
  }

  private clusterOffset(c: number): number {
    return this.dataStart + (c - 2) * this.clusterBytes;
  }

  async list(dir: FsNode, op?: Op): Promise<FsNode[]> {
    if (dir.type !== 'dir') throw new CofferError('USAGE', `${dir.name} is not a directory`);
    const ref = dir.ref as FatRef;
    let data: Buffer;
    if (ref.fixedRoot) data = await this.dev.read(this.rootStart, this.rootBytes, op);
    else {
      // a directory holds at most 65536 entries (2 MiB)
      const clusters = await this.chain(
        ref.cluster,
        Math.ceil((65536 * 32) / this.clusterBytes),
        `directory ${dir.name}`,
        op,
      );
      data = Buffer.concat(
        await Promise.all(clusters.map((c) => this.dev.read(this.clusterOffset(c), this.clusterBytes, op))),
      );
    }
    return this.parseDir(data, op);
  }

  private async parseDir(data: Buffer, op?: Op): Promise<FsNode[]> {
    const out: FsNode[] = [];
    const tick = cooperative(); // 65536 slots do not hold the event loop (docs/DESIGN.md §File-level restore)
    let lfn: { parts: string[]; sum: number; expect: number } | undefined;
    for (let p = 0; p + 32 <= data.length; p += 32) {
      if (p % (32 * 256) === 0) op?.signal?.throwIfAborted();
      await tick();
      const e = data.subarray(p, p + 32);
      if (e[0] === 0x00) break;
      if (e[0] === 0xe5) {
        lfn = undefined;
        continue;
      }
      const attr = e[11]!;
      if ((attr & 0x3f) === ATTR_LFN) {
        const ord = e[0]!;
        const seq = ord & 0x1f;
        const chars = Buffer.concat([e.subarray(1, 11), e.subarray(14, 26), e.subarray(28, 32)]);
        let text = '';
        for (let i = 0; i < 26; i += 2) {
          const u = chars.readUInt16LE(i);
          if (u === 0 || u === 0xffff) break;
          text += String.fromCharCode(u);
        }
        if (ord & 0x40) lfn = seq >= 1 && seq <= 20 ? { parts: [text], sum: e[13]!, expect: seq - 1 } : undefined;
        else if (lfn && seq === lfn.expect && e[13] === lfn.sum && seq >= 1) {
          lfn.parts.unshift(text);
          lfn.expect = seq - 1;
        } else lfn = undefined;
        continue;
      }
      if (attr & ATTR_VOLUME) {
        lfn = undefined;
        continue;
      }
      const short = e.subarray(0, 11);
      let name: string | undefined;
      if (lfn && lfn.expect === 0 && lfnChecksum(short) === lfn.sum) name = lfn.parts.join('');
      lfn = undefined;
      name ??= shortName(e);
      if (name === '.' || name === '..') continue;
      const cluster = (this.bits === 32 ? e.readUInt16LE(20) << 16 : 0) + e.readUInt16LE(26);
      const size = e.readUInt32LE(28);
      const node = this.node(
        name,
        attr,
        cluster >>> 0,
        size,
        fatTime(e.readUInt16LE(24), e.readUInt16LE(22)),
        fatTime(e.readUInt16LE(18), 0),
        {},
      );
      // a name no path can reach: listed with its error, so `ls` and `get` report the same FS_CORRUPT
      const bad = name.includes('/')
        ? 'a name containing /'
        : name.includes('\0')
          ? 'a name containing NUL'
          : undefined;
      if (bad)
        out.push({
          ...node,
          type: 'unknown',
          error: corrupt(`the directory entry ${JSON.stringify(name)} has ${bad}`, { name }),
        });
      else out.push(node);
    }
    return out;
  }

  async readlink(node: FsNode): Promise<string> {
    throw new CofferError('USAGE', `${node.name} is not a symbolic link (FAT has none)`);
  }

  async *read(node: FsNode, op?: Op): AsyncIterable<FileExtent> {
    const ref = node.ref as FatRef;
    const size = node.sizeBytes;
    if (size === 0) return;
    const need = Math.ceil(size / this.clusterBytes);
    if (need > this.clusterCount) throw corrupt(`${node.name}: size ${size} exceeds the volume`, { size });
    const clusters = await this.chain(ref.cluster, need, node.name, op);
    if (clusters.length < need)
      throw corrupt(`${node.name}: the cluster chain ends after ${clusters.length} of ${need} clusters`);
    // contiguous clusters are read together, up to PIECE_BYTES
    let i = 0;
    while (i < clusters.length) {
      let j = i + 1;
      while (
        j < clusters.length &&
        clusters[j] === clusters[j - 1]! + 1 &&
        (j - i + 1) * this.clusterBytes <= PIECE_BYTES
      )
        j++;
      const offset = i * this.clusterBytes;
      const len = Math.min((j - i) * this.clusterBytes, size - offset);
      yield { offset, data: await this.dev.read(this.clusterOffset(clusters[i]!), len, op) };
      i = j;
    }
  }
}

export function lfnChecksum(short: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >> 1) + short[i]!) & 0xff;
  return sum;
}

function shortName(e: Buffer): string {
  const raw = Buffer.from(e.subarray(0, 11));
  if (raw[0] === 0x05) raw[0] = 0xe5;
  let base = raw.subarray(0, 8).toString('latin1').trimEnd();
  let ext = raw.subarray(8, 11).toString('latin1').trimEnd();
  const caseBits = e[12]!;
  if (caseBits & 0x08) base = base.toLowerCase();
  if (caseBits & 0x10) ext = ext.toLowerCase();
  return ext ? `${base}.${ext}` : base;
}

/** FAT date/time (local wall clock, no zone) read as UTC; undefined when the date is 0 or invalid. */
export function fatTime(date: number, time: number): number | undefined {
  if (date === 0) return undefined;
  const y = 1980 + (date >> 9);
  const mo = (date >> 5) & 0xf;
  const d = date & 0x1f;
  const h = time >> 11;
  const mi = (time >> 5) & 0x3f;
  const s = (time & 0x1f) * 2;
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return undefined;
  return Date.UTC(y, mo - 1, d, h, mi, s);
}
