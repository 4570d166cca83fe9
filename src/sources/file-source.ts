import * as fs from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CofferError, type Op } from '../shared/index.js';
import type { BlockSource } from './block-source.js';

/** A raw disk image file or a block device, read with positional reads. */
export class FileSource implements BlockSource {
  private constructor(
    readonly uri: string,
    readonly sizeBytes: number,
    private readonly fh: fs.FileHandle,
    private readonly displayPath: string,
  ) {}

  static async open(spec: string): Promise<FileSource> {
    const p = specToPath(spec);
    const fh = await openImageFile(p);
    try {
      const st = await fh.stat();
      let size: number;
      if (st.isFile()) size = st.size;
      else if (st.isBlockDevice()) size = await blockDeviceSize(st.rdev);
      else throw new CofferError('SOURCE_UNREADABLE', `${p} is not a regular file or block device`);
      return new FileSource(`file://${p}`, size, fh, p);
    } catch (e) {
      await fh.close();
      throw e instanceof CofferError ? e : sourceError(e, p);
    }
  }

  async read(offset: number, length: number, into: Buffer, op?: Op): Promise<void> {
    op?.signal?.throwIfAborted();
    let got = 0;
    while (got < length) {
      let n: number;
      try {
        ({ bytesRead: n } = await this.fh.read(into, got, length - got, offset + got));
      } catch (e) {
        throw sourceError(e, this.displayPath);
      }
      if (n === 0) {
        throw new CofferError('SOURCE_UNREADABLE', `${this.displayPath}: unexpected end of file at ${offset + got} (was the image truncated during backup?)`);
      }
      got += n;
    }
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}

/**
 * Opens a file to read as an image: O_NONBLOCK so that a FIFO or a device that blocks cannot hang us in open(2),
 * then only regular files and block devices are accepted (O_NONBLOCK changes nothing for their reads).
 */
export async function openImageFile(p: string, allowDevices = true): Promise<fs.FileHandle> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(p, fsc.O_RDONLY | fsc.O_NONBLOCK);
  } catch (e) {
    throw sourceError(e, p);
  }
  const st = await fh.stat().catch(async (e: unknown) => {
    await fh.close();
    throw sourceError(e, p);
  });
  if (!st.isFile() && !(allowDevices && st.isBlockDevice())) {
    await fh.close();
    throw new CofferError('SOURCE_UNREADABLE', `${p} is not a regular file${allowDevices ? ' or block device' : ''}`, { details: { source: p } });
  }
  return fh;
}

export function specToPath(spec: string): string {
  if (spec.startsWith('file://')) {
    try {
      return fileURLToPath(spec);
    } catch (e) {
      throw new CofferError('USAGE', `invalid file URL ${spec}: ${(e as Error).message}`);
    }
  }
  return path.resolve(spec);
}

/** Size of a block device from sysfs (Node has no BLKGETSIZE64). */
export async function blockDeviceSize(rdev: number): Promise<number> {
  const major = Math.floor(rdev / 256) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
  try {
    const sectors = Number((await fs.readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8')).trim());
    return sectors * 512;
  } catch (e) {
    throw new CofferError('SOURCE_UNREADABLE', `cannot determine the size of block device ${major}:${minor}`, { cause: e });
  }
}

function sourceError(e: unknown, p: string): CofferError {
  if (e instanceof CofferError) return e;
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' || err.code === 'EPERM' ? 'permission denied' : err.code === 'EISDIR' ? 'is a directory' : err.message;
  return new CofferError('SOURCE_UNREADABLE', `cannot read source ${p}: ${why}`, { details: { source: p, errno: err.code }, cause: e });
}
