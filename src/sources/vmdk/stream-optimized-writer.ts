import { randomBytes } from 'node:crypto';
import { deflateSync, constants as zc } from 'node:zlib';
import { CofferError } from '../../shared/index.js';
import { SECTOR, SPARSE_MAGIC } from './sparse-extent.js';

/**
 * A streamOptimized VMDK generated on the fly from a raw disk stream (VMware Virtual Disk Format 1.1, "Stream-Optimized
 * Compressed Sparse Extents"), for NFC uploads (ImportVApp device URLs take exactly this). Layout:
 *   sector 0: sparse header (version 3, flags: valid newline test | compressed grains | markers, gdOffset = -1:
 *             the directory is at the end), sectors 1..: the embedded descriptor;
 *   per non-zero grain: marker {lba u64, size u32} + zlib (RFC 1950) data, padded to a sector;
 *   after each 512 grains that had data: GT marker {lba = 4 sectors, size 0, type 1} + the grain table (4 sectors);
 *   at the end: GD marker (type 2) + directory, footer marker (type 3) + a header copy with gdOffset set, EOS marker.
 * Zero grains are not written (their table entry stays 0), so only allocated data crosses the wire.
 */
export interface StreamOptimizedOptions {
  capacityBytes: number;
  /** extent file name written in the embedded descriptor */
  fileName?: string;
  /** ddb.adapterType (default lsilogic) */
  adapterType?: string;
  /** grain size in sectors (default 128 = 64 KiB, as VMware writes) */
  grainSectors?: number;
  /** zlib level (default 1: the wire, not the size, is what matters) */
  level?: number;
}

export interface StreamOptimizedStats {
  grains: number;
  zeroGrains: number;
  bytesOut: number;
}

const GTES_PER_GT = 512;
const FLAGS = 1 | (1 << 16) | (1 << 17); // valid newline detection, compressed grains, markers
const MARKER_EOS = 0;
const MARKER_GT = 1;
const MARKER_GD = 2;
const MARKER_FOOTER = 3;

function descriptorText(capacitySectors: number, o: StreamOptimizedOptions): string {
  const cid = randomBytes(4).toString('hex');
  const cylinders = Math.min(65535, Math.max(1, Math.floor(capacitySectors / (255 * 63))));
  return [
    '# Disk DescriptorFile',
    'version=1',
    'encoding="UTF-8"',
    `CID=${cid}`,
    'parentCID=ffffffff',
    'createType="streamOptimized"',
    '',
    '# Extent description',
    `RW ${capacitySectors} SPARSE "${(o.fileName ?? 'disk.vmdk').replace(/"/g, '')}"`,
    '',
    '# The Disk Data Base',
    '#DDB',
    '',
    `ddb.adapterType = "${o.adapterType ?? 'lsilogic'}"`,
    `ddb.geometry.cylinders = "${cylinders}"`,
    'ddb.geometry.heads = "255"',
    'ddb.geometry.sectors = "63"',
    'ddb.virtualHWVersion = "4"',
    '',
  ].join('\n');
}

function header(capacitySectors: number, grainSectors: number, descSectors: number, gdOffset: bigint): Buffer {
  const b = Buffer.alloc(SECTOR);
  b.writeUInt32LE(SPARSE_MAGIC, 0);
  b.writeUInt32LE(3, 4);
  b.writeUInt32LE(FLAGS, 8);
  b.writeBigUInt64LE(BigInt(capacitySectors), 12);
  b.writeBigUInt64LE(BigInt(grainSectors), 20);
  b.writeBigUInt64LE(1n, 28); // descriptorOffset
  b.writeBigUInt64LE(BigInt(descSectors), 36);
  b.writeUInt32LE(GTES_PER_GT, 44);
  b.writeBigUInt64LE(0n, 48); // rgdOffset
  b.writeBigUInt64LE(gdOffset, 56);
  b.writeBigUInt64LE(BigInt(1 + descSectors), 64); // overHead: header + descriptor
  b[72] = 0; // uncleanShutdown
  b[73] = 0x0a;
  b[74] = 0x20;
  b[75] = 0x0d;
  b[76] = 0x0a;
  b.writeUInt16LE(1, 77); // compressAlgorithm: deflate
  return b;
}

function metaMarker(sectors: number, type: number): Buffer {
  const m = Buffer.alloc(SECTOR);
  m.writeBigUInt64LE(BigInt(sectors), 0);
  m.writeUInt32LE(type, 12);
  return m;
}

const ZEROS = Buffer.alloc(1 << 20);

/** Whether a grain is all zeros (memcmp against a zero buffer, not a byte loop). */
function isZero(b: Buffer): boolean {
  for (let o = 0; o < b.length; o += ZEROS.length) {
    const n = Math.min(ZEROS.length, b.length - o);
    if (!b.subarray(o, o + n).equals(ZEROS.subarray(0, n))) return false;
  }
  return true;
}

/**
 * Converts a raw disk image (exactly capacityBytes, in order) into a streamOptimized VMDK. A source shorter or longer
 * than the capacity is an error (never a padded or truncated disk). `stats` is filled as the stream is consumed.
 */
export async function* streamOptimizedVmdk(
  raw: AsyncIterable<Buffer | Uint8Array>,
  o: StreamOptimizedOptions,
  stats: StreamOptimizedStats = { grains: 0, zeroGrains: 0, bytesOut: 0 },
): AsyncGenerator<Buffer> {
  const grainSectors = o.grainSectors ?? 128;
  const grainBytes = grainSectors * SECTOR;
  if (!Number.isSafeInteger(o.capacityBytes) || o.capacityBytes <= 0 || o.capacityBytes % SECTOR !== 0)
    throw new CofferError('USAGE', `a streamOptimized VMDK needs a whole number of sectors, not ${o.capacityBytes}`);
  const capacitySectors = o.capacityBytes / SECTOR;
  const numGrains = Math.ceil(capacitySectors / grainSectors);
  const numGTs = Math.ceil(numGrains / GTES_PER_GT);
  const gd = new Uint32Array(numGTs);
  let gt = new Uint32Array(GTES_PER_GT);
  let gtUsed = false;
  let sector = 0; // output position in sectors
  const emit = (b: Buffer) => {
    sector += b.length / SECTOR;
    stats.bytesOut += b.length;
    return b;
  };

  const desc = Buffer.from(descriptorText(capacitySectors, o), 'utf8');
  const descSectors = Math.ceil(desc.length / SECTOR);
  const descBuf = Buffer.alloc(descSectors * SECTOR);
  desc.copy(descBuf);
  yield emit(header(capacitySectors, grainSectors, descSectors, 0xffffffffffffffffn));
  yield emit(descBuf);

  const flushGT = function* (gtIndex: number): Generator<Buffer> {
    if (gtUsed) {
      yield emit(metaMarker(GTES_PER_GT / 128, MARKER_GT));
      gd[gtIndex] = sector;
      yield emit(Buffer.from(gt.buffer, gt.byteOffset, gt.byteLength));
    }
    gt = new Uint32Array(GTES_PER_GT);
    gtUsed = false;
  };

  const grainOut = (g: number, data: Buffer): Buffer[] => {
    if (isZero(data)) {
      stats.zeroGrains++;
      return [];
    }
    const z = deflateSync(data, { level: o.level ?? zc.Z_BEST_SPEED });
    const total = Math.ceil((12 + z.length) / SECTOR) * SECTOR;
    const m = Buffer.alloc(total);
    m.writeBigUInt64LE(BigInt(g * grainSectors), 0);
    m.writeUInt32LE(z.length, 8);
    z.copy(m, 12);
    gt[g % GTES_PER_GT] = sector;
    gtUsed = true;
    stats.grains++;
    return [emit(m)];
  };

  let g = 0;
  let fill = 0;
  let cur = Buffer.alloc(grainBytes);
  let seen = 0;
  for await (const chunk0 of raw) {
    const chunk = Buffer.isBuffer(chunk0) ? chunk0 : Buffer.from(chunk0.buffer, chunk0.byteOffset, chunk0.byteLength);
    seen += chunk.length;
    if (seen > o.capacityBytes)
      throw new CofferError('INTERNAL', `the disk stream has more than ${o.capacityBytes} bytes`);
    let off = 0;
    while (off < chunk.length) {
      if (fill === 0 && chunk.length - off >= grainBytes) {
        // a whole grain straight from the chunk
        yield* grainOut(g, chunk.subarray(off, off + grainBytes));
        off += grainBytes;
      } else {
        const n = Math.min(grainBytes - fill, chunk.length - off);
        chunk.copy(cur, fill, off, off + n);
        fill += n;
        off += n;
        if (fill < grainBytes) break;
        yield* grainOut(g, cur);
        cur = Buffer.alloc(grainBytes);
        fill = 0;
      }
      g++;
      if (g % GTES_PER_GT === 0) yield* flushGT(g / GTES_PER_GT - 1);
    }
  }
  if (seen !== o.capacityBytes)
    throw new CofferError('INTERNAL', `the disk stream ended after ${seen} of ${o.capacityBytes} bytes`);
  if (fill > 0) {
    // the last, partial grain (capacity not a multiple of the grain size): zero-padded as VMware pads it
    yield* grainOut(g, cur);
    g++;
  }
  if (g % GTES_PER_GT !== 0) yield* flushGT(Math.floor(g / GTES_PER_GT));
  const gdSectors = Math.ceil((numGTs * 4) / SECTOR);
  yield emit(metaMarker(gdSectors, MARKER_GD));
  const gdOffset = sector;
  const gdBuf = Buffer.alloc(gdSectors * SECTOR);
  for (let i = 0; i < numGTs; i++) gdBuf.writeUInt32LE(gd[i]!, i * 4);
  yield emit(gdBuf);
  yield emit(metaMarker(1, MARKER_FOOTER));
  yield emit(header(capacitySectors, grainSectors, descSectors, BigInt(gdOffset)));
  yield emit(metaMarker(0, MARKER_EOS));
}
