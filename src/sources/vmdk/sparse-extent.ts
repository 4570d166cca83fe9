import type { FileHandle } from 'node:fs/promises';
import { inflateSync } from 'node:zlib';
import type { Extent } from '../block-source.js';
import { MAX_CAPACITY_SECTORS, vmdkError } from './vmdk-descriptor.js';

/** Hosted sparse extent header (VMware Virtual Disk Format 1.1, "Hosted Sparse Extent Header"), little-endian. */
export interface SparseHeader {
  version: number;
  flags: number;
  capacitySectors: number;
  grainSectors: number;
  descriptorOffset: number;
  descriptorSectors: number;
  numGTEsPerGT: number;
  gdOffset: number;
  compressAlgorithm: number;
}

export const SPARSE_MAGIC = 0x564d444b; // 'KDMV'
export const SECTOR = 512;
export const GD_AT_END = 0xffffffffffffffffn;
const FLAG_COMPRESSED = 1 << 16;
const GT_CACHE_MAX = 256;

export function parseSparseHeader(b: Buffer, path: string): SparseHeader & { gdAtEnd: boolean } {
  if (b.length < 512 || b.readUInt32LE(0) !== SPARSE_MAGIC) throw vmdkError(path, 'bad sparse extent magic');
  const big = (o: number, what: string) => {
    const v = b.readBigUInt64LE(o);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw vmdkError(path, `absurd ${what}`);
    return Number(v);
  };
  const version = b.readUInt32LE(4);
  if (version < 1 || version > 3) throw vmdkError(path, `unsupported sparse extent version ${version}`);
  const gdRaw = b.readBigUInt64LE(56);
  const h = {
    version,
    flags: b.readUInt32LE(8),
    capacitySectors: big(12, 'capacity'),
    grainSectors: big(20, 'grain size'),
    descriptorOffset: big(28, 'descriptor offset'),
    descriptorSectors: big(36, 'descriptor size'),
    numGTEsPerGT: b.readUInt32LE(44),
    gdAtEnd: gdRaw === GD_AT_END,
    gdOffset: gdRaw === GD_AT_END ? 0 : big(56, 'grain directory offset'),
    compressAlgorithm: b.readUInt16LE(77),
  };
  if (h.capacitySectors > MAX_CAPACITY_SECTORS)
    throw vmdkError(path, `absurd capacity of ${h.capacitySectors} sectors`);
  if (h.grainSectors < 8 || h.grainSectors > 2048 || (h.grainSectors & (h.grainSectors - 1)) !== 0)
    throw vmdkError(path, `invalid grain size ${h.grainSectors} sectors`);
  if (h.numGTEsPerGT !== 512)
    throw vmdkError(path, `unsupported ${h.numGTEsPerGT} entries per grain table (must be 512)`);
  if (h.descriptorSectors > 128) throw vmdkError(path, 'embedded descriptor larger than 64 KiB');
  if (h.flags & FLAG_COMPRESSED && h.compressAlgorithm !== 1)
    throw vmdkError(path, `unknown compression algorithm ${h.compressAlgorithm}`);
  return h;
}

/**
 * One sparse extent file (monolithicSparse, twoGbMaxExtentSparse, streamOptimized): grain directory -> grain tables
 * -> grains. Every offset read from the file is checked against the file size; compressed grains are inflated with a
 * hard output limit. Grain tables are cached (LRU, 256 x 2 KiB).
 */
export class SparseExtent {
  private gd!: Uint32Array;
  private readonly gtCache = new Map<number, Uint32Array>();
  readonly grainBytes: number;
  readonly compressed: boolean;

  private constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    readonly header: SparseHeader,
    private readonly fileBytes: number,
  ) {
    this.grainBytes = header.grainSectors * SECTOR;
    this.compressed = (header.flags & FLAG_COMPRESSED) !== 0;
  }

  get sizeBytes(): number {
    return this.header.capacitySectors * SECTOR;
  }

  static async open(fh: FileHandle, path: string): Promise<SparseExtent> {
    const fileBytes = (await fh.stat()).size;
    const head = await readAt(fh, 0, 512, path);
    let h = parseSparseHeader(head, path);
    if (h.gdAtEnd) {
      // streamOptimized: the real header is the footer at the end (footer marker + header copy, then EOS marker)
      if (fileBytes < 1536) throw vmdkError(path, 'stream-optimized file too short for a footer');
      const footer = await readAt(fh, fileBytes - 1024, 512, path);
      h = parseSparseHeader(footer, path);
      if (h.gdAtEnd) throw vmdkError(path, 'footer has no grain directory offset');
    }
    const ext = new SparseExtent(fh, path, h, fileBytes);
    await ext.loadGrainDirectory();
    return ext;
  }

  /** The embedded descriptor (monolithicSparse, streamOptimized) or '' */
  async embeddedDescriptor(): Promise<string> {
    const { descriptorOffset: off, descriptorSectors: n } = this.header;
    if (off === 0 || n === 0) return '';
    this.checkRange(off * SECTOR, n * SECTOR, 'descriptor');
    return (await readAt(this.fh, off * SECTOR, n * SECTOR, this.path)).toString('latin1').replace(/\0+$/, '');
  }

  private get grainCount(): number {
    return Math.ceil(this.header.capacitySectors / this.header.grainSectors);
  }

  private async loadGrainDirectory(): Promise<void> {
    const gdEntries = Math.ceil(this.grainCount / 512);
    const bytes = gdEntries * 4;
    // (with markers, as in streamOptimized, gdOffset points at the directory itself, after its marker sector)
    const off = this.header.gdOffset * SECTOR;
    this.checkRange(off, bytes, 'grain directory');
    const b = await readAt(this.fh, off, bytes, this.path);
    this.gd = new Uint32Array(gdEntries);
    for (let i = 0; i < gdEntries; i++) this.gd[i] = b.readUInt32LE(i * 4);
  }

  private checkRange(offset: number, length: number, what: string): void {
    if (offset < 0 || offset + length > this.fileBytes) {
      throw vmdkError(
        this.path,
        `${what} at byte ${offset} (+${length}) lies outside the file (${this.fileBytes} bytes)`,
      );
    }
  }

  private async grainTable(gdIndex: number): Promise<Uint32Array | null> {
    const sector = this.gd[gdIndex]!;
    if (sector === 0) return null;
    const hit = this.gtCache.get(gdIndex);
    if (hit) {
      this.gtCache.delete(gdIndex);
      this.gtCache.set(gdIndex, hit);
      return hit;
    }
    this.checkRange(sector * SECTOR, 2048, 'grain table');
    const b = await readAt(this.fh, sector * SECTOR, 2048, this.path);
    const gt = new Uint32Array(512);
    for (let i = 0; i < 512; i++) gt[i] = b.readUInt32LE(i * 4);
    this.gtCache.set(gdIndex, gt);
    if (this.gtCache.size > GT_CACHE_MAX) this.gtCache.delete(this.gtCache.keys().next().value!);
    return gt;
  }

  /** Sector of grain g's data (or marker), 0 when unallocated or a zeroed grain. */
  private async grainSector(g: number): Promise<number> {
    const gt = await this.grainTable(Math.floor(g / 512));
    if (!gt) return 0;
    const s = gt[g % 512]!;
    return s === 1 ? 0 : s; // 1 = zeroed grain (version 2+)
  }

  /** Reads [offset, offset+length) of this extent into `into` (grain by grain). */
  async read(offset: number, length: number, into: Buffer): Promise<void> {
    let done = 0;
    while (done < length) {
      const pos = offset + done;
      const g = Math.floor(pos / this.grainBytes);
      const inGrain = pos - g * this.grainBytes;
      const n = Math.min(this.grainBytes - inGrain, length - done);
      const sector = await this.grainSector(g);
      if (sector === 0) into.fill(0, done, done + n);
      else {
        const grain = await this.readGrain(g, sector);
        grain.copy(into, done, inGrain, inGrain + n);
      }
      done += n;
    }
  }

  private async readGrain(g: number, sector: number): Promise<Buffer> {
    const at = sector * SECTOR;
    if (!this.compressed) {
      const len = Math.min(this.grainBytes, this.fileBytes - at);
      this.checkRange(at, this.grainBytes, `grain ${g}`);
      return readAt(this.fh, at, len, this.path);
    }
    this.checkRange(at, 12, `grain ${g} marker`);
    const m = await readAt(this.fh, at, 12, this.path);
    const lba = m.readBigUInt64LE(0);
    const size = m.readUInt32LE(8);
    if (lba !== BigInt(g * this.header.grainSectors))
      throw vmdkError(this.path, `grain ${g} marker names sector ${lba}`);
    if (size === 0 || size > this.grainBytes * 2 + 1024)
      throw vmdkError(this.path, `grain ${g} has an absurd compressed size ${size}`);
    this.checkRange(at + 12, size, `grain ${g}`);
    const data = await readAt(this.fh, at + 12, size, this.path);
    let out: Buffer;
    try {
      out = inflateSync(data, { maxOutputLength: this.grainBytes });
    } catch (e) {
      throw vmdkError(this.path, `grain ${g} does not inflate: ${(e as Error).message}`);
    }
    if (out.length < this.grainBytes) out = Buffer.concat([out, Buffer.alloc(this.grainBytes - out.length)]);
    return out;
  }

  /** Allocated ranges of this extent (merged), from the grain tables. */
  async *allocated(): AsyncIterable<Extent> {
    let run: Extent | undefined;
    const total = this.grainCount;
    for (let t = 0; t < this.gd.length; t++) {
      const gt = await this.grainTable(t);
      if (!gt) continue;
      for (let i = 0; i < 512; i++) {
        const g = t * 512 + i;
        if (g >= total) break;
        const s = gt[i]!;
        if (s === 0 || s === 1) continue;
        const offset = g * this.grainBytes;
        const length = Math.min(this.grainBytes, this.sizeBytes - offset);
        if (run && run.offset + run.length === offset) run.length += length;
        else {
          if (run) yield run;
          run = { offset, length };
        }
      }
    }
    if (run) yield run;
  }
}

export async function readAt(fh: FileHandle, offset: number, length: number, path: string): Promise<Buffer> {
  const b = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(b, got, length - got, offset + got);
    if (bytesRead === 0) throw vmdkError(path, `unexpected end of file at byte ${offset + got}`);
    got += bytesRead;
  }
  return b;
}
