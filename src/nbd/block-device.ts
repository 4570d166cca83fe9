import type { Op } from '../shared/index.js';

/** What an NBD server exports: a byte range with reads, optional writes and allocation status. */
export interface BlockDevice {
  readonly sizeBytes: number;
  readonly writable: boolean;
  /** Reads [offset, offset+length) (inside the device). */
  read(offset: number, length: number, op?: Op): Promise<Buffer>;
  write?(offset: number, data: Buffer, op?: Op): Promise<void>;
  /** Writes zeros (WRITE_ZEROES, TRIM). */
  zero?(offset: number, length: number, op?: Op): Promise<void>;
  flush?(op?: Op): Promise<void>;
  /**
   * Allocation of [offset, offset+length) as contiguous extents starting at offset (may cover less than asked);
   * flags as base:allocation (1 hole, 2 reads as zeros).
   */
  blockStatus?(offset: number, length: number): Promise<{ length: number; flags: number }[]>;
}
