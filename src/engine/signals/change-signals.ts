import type { DiskSignals } from '../../format/index.js';

/** Regions a disk is divided into for the distribution of its changed chunks (FORMAT.md §6.2). */
export const SIGNAL_REGIONS = 16;
/**
 * A changed chunk counts as incompressible when its stored size is at least this share of its plaintext: zstd saved
 * less than 1/16 (encrypted or already compressed data; the writer stores a chunk uncompressed below 1/32 savings).
 */
export const INCOMPRESSIBLE_RATIO = 15 / 16;

/**
 * Per-disk change signals gathered while a backup runs (DESIGN.md §Ransomware signals): what changed against the parent
 * restore point, how well the changed chunks compressed (the codec compresses them anyway: the sealed size is the
 * measure, no extra read or compression), and where on the disk the changes are. O(1) per chunk.
 */
export class ChangeSignals {
  private changedBytes = 0;
  private changedChunks = 0;
  private measuredChunks = 0;
  private incompressibleChunks = 0;
  private readonly regions = new Array<number>(SIGNAL_REGIONS).fill(0);

  constructor(
    private readonly index: number,
    private readonly chunkCount: number,
  ) {}

  /**
   * One chunk differs from the parent's chunk at the same place (or there is no parent). `storedBytes`: the sealed
   * blob's size when this backup compressed it (a new chunk); undefined when the chunk was already stored.
   */
  changed(chunk: number, lengthBytes: number, storedBytes?: number): void {
    this.changedBytes += lengthBytes;
    this.changedChunks++;
    const r = Math.min(SIGNAL_REGIONS - 1, Math.floor((chunk * SIGNAL_REGIONS) / Math.max(1, this.chunkCount)));
    this.regions[r]!++;
    if (storedBytes === undefined || lengthBytes === 0) return;
    this.measuredChunks++;
    if (storedBytes >= lengthBytes * INCOMPRESSIBLE_RATIO) this.incompressibleChunks++;
  }

  result(hasParent: boolean): DiskSignals {
    return {
      index: this.index,
      hasParent,
      changedBytes: this.changedBytes,
      changedChunks: this.changedChunks,
      measuredChunks: this.measuredChunks,
      incompressibleChunks: this.incompressibleChunks,
      regions: [...this.regions],
    };
  }
}
