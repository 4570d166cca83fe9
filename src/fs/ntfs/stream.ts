import type { Op } from '../../shared/index.js';
import type { BlockReader } from '../block-reader.js';
import { PIECE_BYTES, type FileExtent } from '../types.js';
import { corrupt, unsupported } from './errors.js';
import { lznt1Decompress } from './lznt1.js';
import { ATTR_FLAG, type Attribute } from './record.js';
import { checkNoOverlap, findRun, type Run } from './runlist.js';

/** An attribute with all its extents joined: resident value, or one runlist from VCN 0. */
export interface Stream {
  type: number;
  name: string;
  flags: number;
  value?: Buffer;
  runs?: Run[];
  compressionUnit: number;
  dataSize: number;
  initializedSize: number;
  allocatedSize: number;
}

export interface Volume {
  dev: BlockReader;
  clusterBytes: number;
  totalClusters: number;
}

/**
 * Joins the extents of one attribute (from the base record and extension records): ascending VCNs without gaps or
 * overlaps, the first at VCN 0, the runs covering the allocated size; no cluster used twice.
 */
export function joinExtents(exts: Attribute[], vol: Volume, where: string): Stream {
  const sorted = [...exts].sort((a, b) => a.lowestVcn - b.lowestVcn);
  const first = sorted[0]!;
  const s: Stream = {
    type: first.type,
    name: first.name,
    flags: first.flags,
    compressionUnit: first.compressionUnit,
    dataSize: first.dataSize,
    initializedSize: first.initializedSize,
    allocatedSize: first.allocatedSize,
  };
  if (first.value) {
    if (sorted.length > 1) throw corrupt(`${where}: a resident attribute with several extents`);
    s.value = first.value;
    return s;
  }
  if (first.lowestVcn !== 0) throw corrupt(`${where}: the first extent starts at VCN ${first.lowestVcn}`);
  const runs: Run[] = [];
  let next = 0;
  for (const e of sorted) {
    if (!e.runs) throw corrupt(`${where}: resident and non-resident extents mixed`);
    if (e.lowestVcn !== next)
      throw corrupt(`${where}: extents leave a gap or overlap at VCN ${next} (next extent at ${e.lowestVcn})`);
    runs.push(...e.runs);
    next = e.highestVcn + 1;
  }
  const cb = vol.clusterBytes;
  if (next * cb < s.allocatedSize || s.dataSize > next * cb)
    throw corrupt(
      `${where}: runs cover ${next} clusters, the attribute allocates ${s.allocatedSize} bytes for ${s.dataSize}`,
    );
  checkNoOverlap(runs, where);
  s.runs = runs;
  return s;
}

async function readClusters(vol: Volume, lcn: number, count: number, op?: Op): Promise<Buffer> {
  if (lcn < 0 || lcn + count > vol.totalClusters) throw corrupt(`clusters ${lcn} (+${count}) outside the volume`);
  return vol.dev.read(lcn * vol.clusterBytes, count * vol.clusterBytes, op);
}

/** Bytes [offset, offset + length) of an uncompressed non-resident stream (sparse ranges zero). */
export async function readRange(vol: Volume, s: Stream, offset: number, length: number, op?: Op): Promise<Buffer> {
  const out = Buffer.alloc(length);
  const cb = vol.clusterBytes;
  let pos = offset;
  while (pos < offset + length) {
    const vcn = Math.floor(pos / cb);
    const r = findRun(s.runs ?? [], vcn);
    if (!r) throw corrupt(`${s.name || 'attribute'}: byte ${pos} is not mapped by its runlist`);
    const runEnd = (r.vcn + r.length) * cb;
    const n = Math.min(runEnd, offset + length) - pos;
    if (r.lcn !== null) {
      const within = pos - r.vcn * cb;
      const b = await vol.dev.read(r.lcn * cb + within, n, op);
      b.copy(out, pos - offset);
    }
    pos += n;
  }
  return out;
}

/** The whole value of a (small) attribute: resident, or read through its runs; at most `maxBytes`. */
export async function readValue(vol: Volume, s: Stream, maxBytes: number, where: string, op?: Op): Promise<Buffer> {
  if (s.value) return s.value;
  if (s.dataSize > maxBytes) throw corrupt(`${where}: ${s.dataSize} bytes, more than the ${maxBytes} allowed for it`);
  if (s.flags & (ATTR_FLAG.COMPRESSED | ATTR_FLAG.ENCRYPTED)) {
    const out = Buffer.alloc(s.dataSize);
    for await (const p of pieces(vol, s, where, op)) p.data.copy(out, p.offset);
    return out;
  }
  const b = await readRange(vol, s, 0, s.dataSize, op);
  if (s.initializedSize < s.dataSize) b.fill(0, s.initializedSize);
  return b;
}

/** The content of a data stream in ascending pieces (at most PIECE_BYTES, holes skipped), clipped to its data size. */
export async function* pieces(vol: Volume, s: Stream, where: string, op?: Op): AsyncGenerator<FileExtent> {
  if (s.flags & ATTR_FLAG.ENCRYPTED) throw unsupported(`${where} is EFS-encrypted`);
  if (s.value) {
    if (s.value.length > 0) yield { offset: 0, data: Buffer.from(s.value) };
    return;
  }
  const end = Math.min(s.dataSize, s.initializedSize);
  if (s.flags & ATTR_FLAG.COMPRESSED && s.compressionUnit !== 0) {
    yield* compressedPieces(vol, s, end, where, op);
    return;
  }
  const cb = vol.clusterBytes;
  const maxClusters = Math.max(1, Math.floor(PIECE_BYTES / cb));
  for (const r of s.runs ?? []) {
    if (r.vcn * cb >= end) break;
    if (r.lcn === null) continue;
    for (let done = 0; done < r.length; ) {
      op?.signal?.throwIfAborted();
      const offset = (r.vcn + done) * cb;
      if (offset >= end) break;
      const n = Math.min(maxClusters, r.length - done, Math.ceil((end - offset) / cb));
      let data = await readClusters(vol, r.lcn + done, n, op);
      if (offset + data.length > end) data = data.subarray(0, end - offset);
      yield { offset, data };
      done += n;
    }
  }
}

/**
 * Compressed streams: compression units of 2^compressionUnit clusters; a unit fully allocated is stored as is, one
 * entirely sparse is a hole, one partly allocated holds LZNT1 data in its allocated clusters.
 */
async function* compressedPieces(
  vol: Volume,
  s: Stream,
  end: number,
  where: string,
  op?: Op,
): AsyncGenerator<FileExtent> {
  if (s.compressionUnit > 8) throw corrupt(`${where}: compression unit of 2^${s.compressionUnit} clusters`);
  const cb = vol.clusterBytes;
  const cuClusters = 2 ** s.compressionUnit;
  const cuBytes = cuClusters * cb;
  if (cuBytes > 2 * 1024 * 1024) throw unsupported(`${where}: compression units of ${cuBytes} bytes`);
  const runs = s.runs ?? [];
  const units = Math.ceil(end / cuBytes);
  for (let u = 0; u < units; u++) {
    op?.signal?.throwIfAborted();
    const first = u * cuClusters;
    const segs: { lcn: number; count: number }[] = [];
    let allocated = 0;
    for (let v = first; v < first + cuClusters; ) {
      const r = findRun(runs, v);
      if (!r) throw corrupt(`${where}: VCN ${v} is not mapped`);
      const n = Math.min(r.vcn + r.length, first + cuClusters) - v;
      if (r.lcn !== null) {
        segs.push({ lcn: r.lcn + (v - r.vcn), count: n });
        allocated += n;
      }
      v += n;
    }
    if (allocated === 0) continue;
    const offset = u * cuBytes;
    const parts = [];
    for (const sg of segs) parts.push(await readClusters(vol, sg.lcn, sg.count, op));
    const raw = Buffer.concat(parts);
    let data: Buffer;
    if (allocated === cuClusters) data = raw;
    else {
      data = Buffer.alloc(cuBytes);
      lznt1Decompress(raw, data, `${where} unit ${u}`);
    }
    if (offset + data.length > end) data = data.subarray(0, end - offset);
    yield { offset, data };
  }
}
