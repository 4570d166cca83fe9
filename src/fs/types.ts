import type { CofferError, Op } from '../shared/index.js';

export type FileType = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket' | 'unknown';

/** The file type in the S_IFMT bits of a Unix mode (ext and XFS inodes store the same values). */
export function fileTypeOfMode(mode: number): FileType {
  switch (mode & 0xf000) {
    case 0x8000:
      return 'file';
    case 0x4000:
      return 'dir';
    case 0xa000:
      return 'symlink';
    case 0x2000:
      return 'chardev';
    case 0x6000:
      return 'blockdev';
    case 0x1000:
      return 'fifo';
    case 0xc000:
      return 'socket';
    default:
      return 'unknown';
  }
}

/** One directory entry of a guest filesystem, with the metadata of the object it names. */
export interface FsNode {
  /** the name as stored (already decoded); '.' and '..' never appear */
  name: string;
  type: FileType;
  sizeBytes: number;
  /** permission bits incl. setuid/setgid/sticky (0o7777) */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  /** ms since the epoch; undefined where the filesystem has no such time */
  mtimeMs: number | undefined;
  atimeMs: number | undefined;
  /** metadata change time (ms), where the filesystem has one */
  ctimeMs?: number | undefined;
  /** file attribute flags by name (NTFS: readonly, hidden, system, compressed ...) */
  attributes?: string[];
  /** named data streams (NTFS alternate data streams); read with GuestFs.readStream */
  streams?: { name: string; sizeBytes: number }[];
  /** a stable identity inside this filesystem (inode number, first cluster): detects directory cycles */
  id: string;
  /** reader-private handle */
  readonly ref: unknown;
  /** set when the entry's own metadata could not be read (type 'unknown'): the rest of its directory is still listed */
  error?: CofferError;
}

/** One piece of file content: `data` belongs at `offset`; ranges not covered by any piece are holes (zeros). */
export interface FileExtent {
  offset: number;
  data: Buffer;
}

/** A read-only guest filesystem over a BlockReader. Every method validates what it reads (untrusted input). */
export interface GuestFs {
  readonly kind: string;
  /** things the user should know about what is read (e.g. a journal that could not be replayed) */
  readonly warnings?: string[];
  /** what the reader verified (e.g. metadata checksums, a journal replayed), for the output */
  readonly checks?: string[];
  root(op?: Op): Promise<FsNode>;
  /** the entries of a directory (no '.'/'..'), in on-disk order */
  list(dir: FsNode, op?: Op): Promise<FsNode[]>;
  /** a symlink's target text */
  readlink(node: FsNode, op?: Op): Promise<string>;
  /** a regular file's content in ascending pieces of at most ~1 MiB, holes skipped */
  read(node: FsNode, op?: Op): AsyncIterable<FileExtent>;
  /** a named data stream of a file (filesystems with alternate data streams), like read() */
  readStream?(node: FsNode, name: string, op?: Op): AsyncIterable<FileExtent>;
}

/** Longest symlink target accepted (Linux PATH_MAX). */
export const MAX_LINK_BYTES = 4096;
/** Piece size for file content. */
export const PIECE_BYTES = 1024 * 1024;
