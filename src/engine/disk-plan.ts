import type { FixedIndex } from '../format/index.js';
import type { BlockSource, Extent } from '../sources/index.js';
import { CofferError, type Op } from '../shared/index.js';

/** What to do with each chunk of a disk. */
export const PLAN_SKIP_ZERO = 0; // unallocated: reads as zeros, not read
export const PLAN_READ = 1;
export const PLAN_FROM_PARENT = 2; // unchanged since the parent: take the parent's chunk id

export interface DiskPlan {
  actions: Uint8Array;
  mode: 'full' | 'incremental';
  /** Chunks change tracking reported changed (incremental), for --verify-cbt. */
  changed: Uint8Array | undefined;
  changedBytes: number;
  /** Why an incremental was not possible, when change tracking was offered. */
  fallbackReason: string | undefined;
  /** Full reads of a source with an allocation map: the data extents, so a chunk reads only its allocated parts. */
  dataRanges: ExtentList | undefined;
}

/** Sorted, non-overlapping extents in two typed arrays (16 bytes an extent, no objects). */
export class ExtentList {
  private starts = new Float64Array(1024);
  private ends = new Float64Array(1024);
  count = 0;
  /** Past this many extents we stop recording (chunks are then read whole): memory stays bounded. */
  static readonly MAX = 4_000_000;
  overflow = false;

  add(offset: number, length: number): void {
    if (this.overflow) return;
    if (this.count === ExtentList.MAX) {
      this.overflow = true;
      return;
    }
    if (this.count === this.starts.length) {
      const grow = (a: Float64Array) => {
        const b = new Float64Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.starts = grow(this.starts);
      this.ends = grow(this.ends);
    }
    this.starts[this.count] = offset;
    this.ends[this.count] = offset + length;
    this.count++;
  }

  /** Extents intersecting [from, to), clipped to it. */
  *within(from: number, to: number): Iterable<{ offset: number; length: number }> {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid]! <= from) lo = mid + 1;
      else hi = mid;
    }
    for (let k = lo; k < this.count && this.starts[k]! < to; k++) {
      const s = Math.max(from, this.starts[k]!);
      const e = Math.min(to, this.ends[k]!);
      if (e > s) yield { offset: s, length: e - s };
    }
  }
}

/**
 * Decides per chunk: read it, take it from the parent, or skip it as zeros (DESIGN.md §Incremental).
 * Change tracking is used only on top of a usable parent index (same size and chunk size, checksum verified when
 * loaded); otherwise the disk is read in full, skipping what the source reports unallocated.
 */
export async function planDisk(
  source: BlockSource,
  index: FixedIndex,
  parentIndex: FixedIndex | undefined,
  parentProblem: string | undefined,
  opts: { verifyCbt: boolean; parentToken?: string | null } & Op,
): Promise<DiskPlan> {
  const n = index.entryCount;
  const cs = index.chunkSizeBytes;
  const mark = async (
    extents: AsyncIterable<Extent>,
    into: Uint8Array,
    value: number,
    record?: ExtentList,
  ): Promise<number> => {
    let bytes = 0;
    for await (const e of extents) {
      opts.signal?.throwIfAborted();
      if (e.length <= 0) continue;
      bytes += e.length;
      record?.add(e.offset, e.length);
      const first = Math.floor(e.offset / cs);
      const last = Math.min(n - 1, Math.floor((e.offset + e.length - 1) / cs));
      into.fill(value, first, last + 1);
    }
    return bytes;
  };

  let fallbackReason: string | undefined;
  if (source.changeTracking) {
    if (!parentIndex) fallbackReason = parentProblem ?? 'no previous restore point of this VM';
    else if (parentIndex.diskSizeBytes !== index.diskSizeBytes)
      fallbackReason = `the disk changed size (${parentIndex.diskSizeBytes} -> ${index.diskSizeBytes} bytes)`;
    else if (parentIndex.chunkSizeBytes !== cs) fallbackReason = 'the parent uses another chunk size';
    else if (source.changeTracking.needsBaseToken && !opts.parentToken)
      fallbackReason = 'the previous restore point has no change token for this disk';
    if (!fallbackReason) {
      const changed = new Uint8Array(n);
      let changedBytes = 0;
      try {
        changedBytes = await mark(source.changeTracking.changedExtents(opts, opts.parentToken ?? null), changed, 1);
      } catch (e) {
        if (!(e instanceof CofferError) || e.details.changeTrackingUnusable !== true) throw e;
        fallbackReason = e.message;
      }
      if (!fallbackReason) {
        const actions = new Uint8Array(n).fill(PLAN_FROM_PARENT);
        if (opts.verifyCbt) actions.fill(PLAN_READ);
        else for (let i = 0; i < n; i++) if (changed[i]) actions[i] = PLAN_READ;
        return {
          actions,
          mode: 'incremental',
          changed,
          changedBytes,
          fallbackReason: undefined,
          dataRanges: undefined,
        };
      }
    }
  }
  const actions = new Uint8Array(n);
  let dataRanges: ExtentList | undefined;
  if (source.dataExtents) {
    dataRanges = new ExtentList();
    await mark(source.dataExtents(opts), actions, PLAN_READ, dataRanges);
    if (dataRanges.overflow) dataRanges = undefined;
  } else actions.fill(PLAN_READ);
  return { actions, mode: 'full', changed: undefined, changedBytes: 0, fallbackReason, dataRanges };
}
