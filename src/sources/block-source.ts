import type { Op } from '../shared/index.js';

export interface Extent {
  offset: number;
  length: number;
}

/**
 * One disk to back up: a size and random-access reads. Optional capabilities (issue "block sources"):
 * an allocation map (unallocated ranges read as zeros and are skipped) and changed extents since a token.
 */
export interface BlockSource {
  /** For humans and the manifest ('file:///abs/disk.raw'). */
  readonly uri: string;
  readonly sizeBytes: number;
  /** Reads exactly `length` bytes at `offset` into `into` (offset+length <= sizeBytes); a short read is an error. */
  read(offset: number, length: number, into: Buffer, op?: Op): Promise<void>;
  /** Allocated extents, sorted; undefined when the source cannot tell (everything is read). */
  allocatedExtents?(op?: Op): Promise<Extent[] | undefined>;
  close(): Promise<void>;
}
