import { closeSync, constants as fsc, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { AEAD_TAG_BYTES } from '../crypto/index.js';
import { ENVELOPE_HEADER_BYTES } from '../format/index.js';
import { localStoreError } from '../storage/index.js';
import { CofferError } from '../shared/index.js';
import type { ChunkCodec } from './chunk-codec.js';
import { chunkBlob } from './layout.js';

/**
 * One chunk of a restore to a file or device done in a single step on a codec worker: read the chunk's file (a local
 * repository) or take its sealed blob (fetched by the main thread from object storage), open it (decrypt, decompress,
 * optionally re-hash) and write the plaintext at `offset` of the target. No plaintext crosses between threads, no
 * buffer is allocated per chunk for it, and no write waits for the event loop (docs/DESIGN.md §Restore,
 * docs/BENCHMARKS.md issue 19).
 */
export interface ChunkFileRestore {
  /** the file that holds the sealed chunk (storage capability `localFiles`); absent: the blob comes with the request */
  file?: string;
  /** the chunk's id (hex) */
  idHex: string;
  checkId: boolean;
  /**
   * The file or block device written. Each worker opens it once, on its first chunk, never creates it, and keeps
   * it open until `closeTargetFile` (the end of the restore); the caller holds it open meanwhile.
   */
  target: string;
  /** how errors name the target (the path the user gave) */
  targetName: string;
  offset: number;
  /** the plaintext length the index expects at this position, and the position (for the error) */
  length: number;
  position: number;
}

/**
 * A worker's state for restoreChunkFile: reusable buffers (grown on demand, bounded by the codec's largest chunk) and
 * the targets it has open. One descriptor per target for the whole restore, not one per chunk: closing a block device
 * opened for writing makes udev re-probe it (a "change" event, the partition table re-read), and a network
 * filesystem flushes on every close.
 */
export interface ChunkFileScratch {
  sealed: Buffer;
  payload: Buffer;
  plain: Buffer;
  targets: Map<string, number>;
}

export function newChunkFileScratch(): ChunkFileScratch {
  return { sealed: Buffer.alloc(0), payload: Buffer.alloc(0), plain: Buffer.alloc(0), targets: new Map() };
}

/**
 * Closes the worker's descriptor of `target` (the end of a restore). A deferred write error that a filesystem reports
 * at close (NFS, CIFS: ENOSPC, EDQUOT, EIO) is STORAGE_FULL or TARGET_UNWRITABLE, naming `targetName`.
 */
export function closeTargetFile(scratch: ChunkFileScratch, target: string, targetName: string): void {
  const fd = scratch.targets.get(target);
  if (fd === undefined) return;
  scratch.targets.delete(target);
  try {
    closeSync(fd);
  } catch (e) {
    throw targetWriteError(e, targetName);
  }
}

/**
 * Synchronous: for worker threads only (it blocks the thread for one chunk's read, open and write). `sealed`: the
 * blob, when `req.file` is absent. The target stays open in `scratch` (closeTargetFile).
 */
export function restoreChunkFile(
  codec: ChunkCodec,
  req: ChunkFileRestore,
  scratch: ChunkFileScratch,
  sealed?: Buffer,
): void {
  const maxSealed = codec.maxChunkBytes + ENVELOPE_HEADER_BYTES + AEAD_TAG_BYTES;
  let blob: Buffer;
  if (req.file !== undefined) blob = readChunkFile(req.file, req.idHex, maxSealed, scratch);
  else if (sealed) blob = sealed;
  else throw new CofferError('INTERNAL', `chunk ${req.idHex}: neither a file nor a blob to restore from`);
  if (scratch.plain.length < codec.maxChunkBytes) scratch.plain = Buffer.allocUnsafeSlow(codec.maxChunkBytes);
  if (scratch.payload.length < blob.length) scratch.payload = Buffer.allocUnsafeSlow(Math.max(blob.length, maxSealed));
  const plain = codec.open(blob, req.idHex, req.checkId, scratch.plain, scratch.payload);
  if (plain.length !== req.length) {
    throw new CofferError(
      'CORRUPT',
      `chunk ${req.idHex} has ${plain.length} bytes where disk position ${req.position} needs ${req.length}`,
    );
  }
  let fd = scratch.targets.get(req.target);
  if (fd === undefined) {
    try {
      fd = openSync(req.target, fsc.O_WRONLY);
    } catch (e) {
      throw targetWriteError(e, req.targetName);
    }
    scratch.targets.set(req.target, fd);
  }
  try {
    let done = 0;
    while (done < plain.length) done += writeSync(fd, plain, done, plain.length - done, req.offset + done);
  } catch (e) {
    throw targetWriteError(e, req.targetName);
  }
}

function readChunkFile(file: string, idHex: string, maxBytes: number, scratch: ChunkFileScratch): Buffer {
  const what = chunkBlob(idHex);
  let fd: number;
  try {
    fd = openSync(file, fsc.O_RDONLY);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw missingChunkError(idHex);
    throw localStoreError(e, what, 'read');
  }
  try {
    const size = fstatSync(fd).size;
    // a sealed chunk is at most its plaintext (stored uncompressed) plus the envelope: anything larger is not one
    if (size > maxBytes) {
      throw new CofferError('CORRUPT', `chunk ${idHex}: ${size} bytes, larger than any sealed chunk (${maxBytes})`, {
        details: { chunk: idHex },
      });
    }
    if (scratch.sealed.length < size) scratch.sealed = Buffer.allocUnsafeSlow(maxBytes);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, scratch.sealed, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return scratch.sealed.subarray(0, got);
  } catch (e) {
    throw localStoreError(e, what, 'read');
  } finally {
    closeSync(fd);
  }
}

/** A chunk the repository lost: CORRUPT with details.missing (repair and verify look for it). */
export function missingChunkError(idHex: string): CofferError {
  return new CofferError('CORRUPT', `chunk ${idHex} is missing from the repository`, {
    details: { chunk: idHex, missing: true },
  });
}

/** A write to a restore target that failed: STORAGE_FULL when it is full, else TARGET_UNWRITABLE. */
export function targetWriteError(e: unknown, path: string): CofferError {
  if (e instanceof CofferError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOSPC' || err.code === 'EDQUOT')
    return new CofferError('STORAGE_FULL', `no space left writing ${path}`, { cause: e });
  return new CofferError('TARGET_UNWRITABLE', `cannot write restore target ${path}: ${err.message}`, {
    details: { errno: err.code },
    cause: e,
  });
}
