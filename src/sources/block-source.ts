import type { Op } from '../shared/index.js';

export interface Extent {
  offset: number;
  length: number;
}

/** Change tracking of a source: what was written since the VM's previous restore point. */
export interface ChangeTracking {
  /** Identifies the change-tracking state, stored in the manifest (a bitmap name, a vSphere changeId). */
  readonly token: string;
  /**
   * Extents written since the previous restore point, sorted, non-overlapping. `baseToken` is the token this disk had
   * in the previous restore point (the engine passes it; sources whose tracking is relative to a stored token, such
   * as vSphere changeIds, need it). A source that cannot answer for that base (e.g. vCenter rejects an old changeId)
   * throws a CofferError with details.changeTrackingUnusable = true: the engine then reads the disk in full.
   */
  changedExtents(op?: Op, baseToken?: string | null): AsyncIterable<Extent>;
  /** True when changedExtents needs the previous restore point's token (without one the disk is read in full). */
  readonly needsBaseToken?: boolean;
}

/**
 * One disk to back up: a size and random-access reads, plus optional capabilities:
 * - dataExtents: ranges that may hold non-zero data (everything else reads as zeros and is skipped by fulls);
 * - changeTracking: ranges changed since the previous restore point (incrementals read only those).
 */
export interface BlockSource {
  /** For humans and the manifest ('file:///abs/disk.raw', 'nbd://host:port/export'); never carries secrets. */
  readonly uri: string;
  readonly sizeBytes: number;
  /** Reads exactly `length` bytes at `offset` into `into` (offset+length <= sizeBytes); a short read is an error. */
  read(offset: number, length: number, into: Buffer, op?: Op): Promise<void>;
  dataExtents?(op?: Op): AsyncIterable<Extent>;
  readonly changeTracking?: ChangeTracking | undefined;
  close(): Promise<void>;
}
