import type { BlobName, Op } from '../shared/index.js';

export interface ByteRange {
  offset: number;
  length: number;
}

export interface BlobInfo {
  name: BlobName;
  sizeBytes: number;
  modifiedAt: Date;
}

/**
 * A flat namespace of immutable blobs: a directory tree, an Azure container, an S3 bucket, memory.
 * Names match BLOB_NAME_RE: '/'-separated non-empty segments of [A-Za-z0-9._-] that do not start with '.'.
 *
 * Contract (every implementation passes storage/testing/blob-store-suite.ts):
 * - put is atomic: readers see nothing or the whole blob, never a prefix, also after a crash.
 *   It never overwrites: when the name exists it resolves 'exists' and leaves the stored blob alone.
 *   A resolved put is durable (fsync'd / acknowledged by the service). Once put has resolved it holds no reference
 *   to `data`: the caller may reuse the buffer (a backup recycles its sealed-chunk buffers).
 * - get of a missing name rejects with NOT_FOUND. A range past the end is cut at the end (a short read is
 *   not an error; a range starting past the end yields an empty buffer).
 * - stat of a missing name resolves undefined.
 * - list yields every blob whose name starts with prefix, lazily, in no particular order; blobs put or deleted
 *   while listing may or may not appear. Temporary files of a put in progress never appear.
 * - delete is idempotent: deleting a missing blob resolves. A store that enforces retention locks (Azure
 *   immutability/legal hold, S3 Object Lock, a local append-only repository) rejects deleting a locked blob
 *   with IMMUTABLE and leaves it alone; callers (forget, prune, GC) treat that as "kept: locked", not as a failure.
 * - Failures reject with CofferError: NOT_FOUND, STORAGE_FULL, IO, TRANSIENT (only TRANSIENT is worth retrying),
 *   IMMUTABLE (delete of a locked blob).
 */
export interface BlobStore {
  readonly location: string;
  put(name: BlobName, data: Uint8Array, op?: Op): Promise<'created' | 'exists'>;
  get(name: BlobName, range?: ByteRange, op?: Op): Promise<Buffer>;
  stat(name: BlobName, op?: Op): Promise<BlobInfo | undefined>;
  list(prefix: string, op?: Op): AsyncIterable<BlobInfo>;
  delete(name: BlobName, op?: Op): Promise<void>;
  /**
   * Optional, for stores with retention locks: the lock on a blob, or undefined when it is not locked (or missing).
   * Lets forget/prune show "locked" in a dry run without trying to delete.
   */
  retention?(name: BlobName, op?: Op): Promise<RetentionInfo | undefined>;
}

/** A retention lock on one blob. */
export interface RetentionInfo {
  /** ISO 8601 time until which the blob cannot be deleted or overwritten; absent for a legal hold only */
  lockedUntil?: string;
  /** a legal hold: no deletion until the hold is removed, whatever the time */
  legalHold: boolean;
}

/** Segments start with [A-Za-z0-9_-]: no '.', '..' or hidden names (backends keep temp files in dot-names). */
export const BLOB_NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]*(?:\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/;

export function isValidBlobName(name: string): boolean {
  return name.length <= 512 && BLOB_NAME_RE.test(name);
}
