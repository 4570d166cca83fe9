import { CofferError } from '../shared/index.js';

/**
 * Fixed index of one disk of a restore point (FORMAT.md §5): one 32-byte chunk id per chunk-sized
 * region of the disk, in disk order. All-zero regions carry the all-zero id and are not stored.
 * Plaintext layout (little-endian), stored inside a 'CFIX' envelope:
 *
 *   offset size field
 *   0      8    magic 'CFFIXv01'
 *   8      4    chunk size in bytes (power of two, 64 KiB .. 8 MiB)
 *   12     4    reserved, zero
 *   16     8    disk size in bytes
 *   24     8    entry count = ceil(disk size / chunk size)
 *   32     32*n entries
 */
export const FIXED_INDEX_MAGIC = 'CFFIXv01';
export const FIXED_INDEX_HEADER_BYTES = 32;
export const CHUNK_ID_BYTES = 32;
/** At most 2^23 entries (256 MiB of ids): 32 TiB at 4 MiB chunks. */
export const FIXED_INDEX_MAX_ENTRIES = 2 ** 23;
export const MIN_CHUNK_SIZE = 64 * 1024;
export const MAX_CHUNK_SIZE = 8 * 1024 * 1024;
/** 1 MiB: changed-block tracking reports small scattered extents; see docs/adr/0002. */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
export const ZERO_CHUNK_ID = Buffer.alloc(CHUNK_ID_BYTES);

export function isValidChunkSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE && (n & (n - 1)) === 0;
}

export class FixedIndex {
  private constructor(
    readonly chunkSizeBytes: number,
    readonly diskSizeBytes: number,
    /** The whole encoded plaintext: header then ids. */
    readonly bytes: Buffer,
  ) {}

  get entryCount(): number {
    return (this.bytes.length - FIXED_INDEX_HEADER_BYTES) / CHUNK_ID_BYTES;
  }

  static create(chunkSizeBytes: number, diskSizeBytes: number): FixedIndex {
    if (!isValidChunkSize(chunkSizeBytes)) throw new CofferError('INTERNAL', `invalid chunk size ${chunkSizeBytes}`);
    const count = Math.ceil(diskSizeBytes / chunkSizeBytes);
    if (!Number.isSafeInteger(diskSizeBytes) || diskSizeBytes < 0 || count > FIXED_INDEX_MAX_ENTRIES) {
      throw new CofferError(
        'SOURCE_UNREADABLE',
        `disk size ${diskSizeBytes} is out of range for chunk size ${chunkSizeBytes}`,
      );
    }
    const bytes = Buffer.alloc(FIXED_INDEX_HEADER_BYTES + count * CHUNK_ID_BYTES);
    bytes.write(FIXED_INDEX_MAGIC, 0, 'ascii');
    bytes.writeUInt32LE(chunkSizeBytes, 8);
    bytes.writeBigUInt64LE(BigInt(diskSizeBytes), 16);
    bytes.writeBigUInt64LE(BigInt(count), 24);
    return new FixedIndex(chunkSizeBytes, diskSizeBytes, bytes);
  }

  static decode(bytes: Buffer, name: string): FixedIndex {
    const bad = (why: string) => new CofferError('CORRUPT', `index ${name}: ${why}`, { details: { object: name } });
    if (bytes.length < FIXED_INDEX_HEADER_BYTES) throw bad('too short');
    if (bytes.toString('latin1', 0, 8) !== FIXED_INDEX_MAGIC) throw bad('bad magic');
    const chunkSize = bytes.readUInt32LE(8);
    if (!isValidChunkSize(chunkSize)) throw bad(`invalid chunk size ${chunkSize}`);
    if (bytes.readUInt32LE(12) !== 0) throw bad('reserved bytes are not zero');
    const size = bytes.readBigUInt64LE(16);
    const count = bytes.readBigUInt64LE(24);
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('disk size out of range');
    const expected = (size + BigInt(chunkSize) - 1n) / BigInt(chunkSize);
    if (count !== expected || count > BigInt(FIXED_INDEX_MAX_ENTRIES))
      throw bad(`entry count ${count} does not match disk size`);
    if (bytes.length !== FIXED_INDEX_HEADER_BYTES + Number(count) * CHUNK_ID_BYTES)
      throw bad('length does not match entry count');
    return new FixedIndex(chunkSize, Number(size), bytes);
  }

  /** Length of chunk i (the last one may be short). */
  chunkLength(i: number): number {
    return Math.min(this.chunkSizeBytes, this.diskSizeBytes - i * this.chunkSizeBytes);
  }

  /** A view (no copy) of entry i. */
  id(i: number): Buffer {
    const o = FIXED_INDEX_HEADER_BYTES + i * CHUNK_ID_BYTES;
    return this.bytes.subarray(o, o + CHUNK_ID_BYTES);
  }

  isZero(i: number): boolean {
    return this.id(i).equals(ZERO_CHUNK_ID);
  }

  set(i: number, id: Uint8Array): void {
    if (id.length !== CHUNK_ID_BYTES) throw new CofferError('INTERNAL', 'chunk id must be 32 bytes');
    this.bytes.set(id, FIXED_INDEX_HEADER_BYTES + i * CHUNK_ID_BYTES);
  }
}
