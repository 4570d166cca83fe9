import { corrupt } from './errors.js';

/** `length` clusters from virtual cluster `vcn` at logical cluster `lcn` (null: sparse, reads as zeros). */
export interface Run {
  vcn: number;
  lcn: number | null;
  length: number;
}

/**
 * More runs than this in one attribute is not a real file (a 2 TiB file in 4 KiB fragments is 2^29; we stop far
 * earlier).
 */
export const MAX_RUNS = 1 << 20;

function readSigned(b: Buffer, off: number, n: number): number {
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + b[off + i]!;
  if (n > 0 && b[off + n - 1]! & 0x80) v -= 2 ** (8 * n);
  return v;
}

/**
 * Decodes mapping pairs (docs/DESIGN.md §NTFS reader) starting at VCN `lowestVcn`: every run inside the volume, lengths
 * positive, VCNs ending at `highestVcn` + 1 exactly, at most MAX_RUNS runs. A buffer that ends without the 0 terminator
 * is corrupt.
 */
export function decodeRunlist(
  b: Buffer,
  lowestVcn: number,
  highestVcn: number,
  totalClusters: number,
  where: string,
): Run[] {
  const runs: Run[] = [];
  let p = 0;
  let vcn = lowestVcn;
  let lcn = 0;
  while (true) {
    if (p >= b.length) throw corrupt(`${where}: runlist runs past its attribute`);
    const h = b[p]!;
    if (h === 0) break;
    const lenBytes = h & 0xf;
    const offBytes = h >> 4;
    if (lenBytes === 0 || lenBytes > 8 || offBytes > 8 || p + 1 + lenBytes + offBytes > b.length)
      throw corrupt(`${where}: bad runlist header 0x${h.toString(16)} at ${p}`);
    const length = readSigned(b, p + 1, lenBytes);
    if (length <= 0 || !Number.isSafeInteger(length)) throw corrupt(`${where}: run of ${length} clusters`);
    let runLcn: number | null = null;
    if (offBytes > 0) {
      lcn += readSigned(b, p + 1 + lenBytes, offBytes);
      if (!Number.isSafeInteger(lcn) || lcn < 0 || lcn + length > totalClusters)
        throw corrupt(`${where}: run at cluster ${lcn} (+${length}) is outside the volume (${totalClusters} clusters)`);
      runLcn = lcn;
    }
    runs.push({ vcn, lcn: runLcn, length });
    if (runs.length > MAX_RUNS) throw corrupt(`${where}: more than ${MAX_RUNS} runs`);
    vcn += length;
    p += 1 + lenBytes + offBytes;
  }
  if (vcn !== highestVcn + 1 && !(runs.length === 0 && highestVcn === lowestVcn - 1))
    throw corrupt(`${where}: runs cover VCN ${lowestVcn}..${vcn - 1}, the attribute says ..${highestVcn}`);
  return runs;
}

/**
 * Allocated runs that share clusters (with each other) are a hostile or damaged runlist: a file could otherwise be
 * made to read the same clusters without end. O(n log n).
 */
export function checkNoOverlap(runs: Run[], where: string): void {
  const alloc = runs.filter((r) => r.lcn !== null).sort((a, b) => a.lcn! - b.lcn!);
  for (let i = 1; i < alloc.length; i++) {
    if (alloc[i]!.lcn! < alloc[i - 1]!.lcn! + alloc[i - 1]!.length)
      throw corrupt(`${where}: runs overlap at cluster ${alloc[i]!.lcn}`);
  }
}

/** The run holding `vcn` (runs ascending and contiguous in VCN), or undefined. */
export function findRun(runs: Run[], vcn: number): Run | undefined {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = runs[mid]!;
    if (vcn < r.vcn) hi = mid - 1;
    else if (vcn >= r.vcn + r.length) lo = mid + 1;
    else return r;
  }
  return undefined;
}
