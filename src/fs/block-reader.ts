import { open, type FileHandle } from 'node:fs/promises';
import { CofferError, type Op } from '../shared/index.js';

/**
 * Random access to the bytes of a disk or partition: what the partition and filesystem readers need, nothing more.
 * Contract: read(offset, length) returns exactly `length` bytes or rejects; reading outside [0, sizeBytes) rejects
 * with FS_CORRUPT (a hostile structure pointing past the end), never returns short.
 */
export interface BlockReader {
  readonly sizeBytes: number;
  read(offset: number, length: number, op?: Op): Promise<Buffer>;
}

/** Largest single read a parser may issue (guards against absurd lengths from hostile metadata). */
export const MAX_READ_BYTES = 64 * 1024 * 1024;

export function checkRange(sizeBytes: number, offset: number, length: number, what = 'read'): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    length > MAX_READ_BYTES ||
    offset + length > sizeBytes
  ) {
    throw new CofferError(
      'FS_CORRUPT',
      `${what} of ${length} bytes at ${offset} is outside the volume (${sizeBytes} bytes)`,
      { details: { offset, length, sizeBytes } },
    );
  }
}

/** A window [start, start + sizeBytes) of another reader: a partition of a disk. */
export class SliceReader implements BlockReader {
  constructor(
    private readonly base: BlockReader,
    readonly startBytes: number,
    readonly sizeBytes: number,
  ) {
    checkRange(base.sizeBytes, startBytes, 0, 'partition start');
    if (startBytes + sizeBytes > base.sizeBytes)
      throw new CofferError(
        'FS_CORRUPT',
        `partition [${startBytes}, +${sizeBytes}) extends past the disk end (${base.sizeBytes} bytes)`,
      );
  }

  async read(offset: number, length: number, op?: Op): Promise<Buffer> {
    checkRange(this.sizeBytes, offset, length);
    return this.base.read(this.startBytes + offset, length, op);
  }
}

/** A reader over a buffer (unit tests). */
export class BufferReader implements BlockReader {
  readonly sizeBytes: number;
  constructor(private readonly buf: Buffer) {
    this.sizeBytes = buf.length;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this.sizeBytes, offset, length);
    return Buffer.from(this.buf.subarray(offset, offset + length));
  }
}

/** A reader over a local image file (unit tests, tools). */
export class FileReader implements BlockReader {
  private constructor(
    private readonly fh: FileHandle,
    readonly sizeBytes: number,
  ) {}
  static async open(path: string): Promise<FileReader> {
    const fh = await open(path, 'r');
    return new FileReader(fh, (await fh.stat()).size);
  }
  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this.sizeBytes, offset, length);
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return buf;
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}
