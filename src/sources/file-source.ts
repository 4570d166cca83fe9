import * as fs from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CofferError, type Op } from '../shared/index.js';
import type { BlockSource, Extent } from './block-source.js';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A raw disk image file or a block device, read with positional reads. */
export class FileSource implements BlockSource {
  private constructor(
    readonly uri: string,
    readonly sizeBytes: number,
    private readonly fh: fs.FileHandle,
    private readonly displayPath: string,
    private readonly regularFile: boolean,
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
      return new FileSource(`file://${p}`, size, fh, p, st.isFile());
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
        throw new CofferError(
          'SOURCE_UNREADABLE',
          `${this.displayPath}: unexpected end of file at ${offset + got} (was the image truncated during backup?)`,
        );
      }
      got += n;
    }
  }

  /**
   * Data extents of a regular file from `qemu-img map` (SEEK_DATA/SEEK_HOLE, which Node does not expose), so a full
   * backup never reads holes. All or nothing: if qemu-img is missing or fails, the whole file counts as data.
   */
  async *dataExtents(op?: Op): AsyncIterable<Extent> {
    const whole: Extent = { offset: 0, length: this.sizeBytes };
    if (!this.regularFile || this.sizeBytes === 0) {
      yield whole;
      return;
    }
    const extents = await qemuImgMap(this.displayPath, this.sizeBytes, op);
    if (!extents) {
      yield whole;
      return;
    }
    yield* extents;
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}

const MAP_MAX_EXTENTS = 1_000_000;

async function qemuImgMap(path: string, sizeBytes: number, op?: Op): Promise<Extent[] | undefined> {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn('qemu-img', ['map', '--output=json', '-f', 'raw', path], {
        stdio: ['ignore', 'pipe', 'ignore'],
        signal: op?.signal,
      });
    } catch {
      return resolve(undefined);
    }
    const out: Extent[] = [];
    let ok = true;
    let covered = 0;
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      if (!ok) return;
      const m = /"start":\s*(\d+),\s*"length":\s*(\d+),.*"data":\s*(true|false)/.exec(line);
      if (!m) return;
      const start = Number(m[1]);
      const length = Number(m[2]);
      if (start !== covered || !Number.isSafeInteger(start + length)) ok = false; // not contiguous: distrust
      covered = start + length;
      if (m[3] !== 'true' || length === 0) return;
      const last = out[out.length - 1];
      if (last && last.offset + last.length === start) last.length += length;
      else out.push({ offset: start, length });
      if (out.length > MAP_MAX_EXTENTS) ok = false;
    });
    child.on('error', () => {
      ok = false;
    });
    // QEMU sizes a raw image in whole 512-byte sectors: the map may cover up to 511 bytes past the end
    child.on('close', (code) => {
      if (!ok || code !== 0 || covered < sizeBytes || covered - sizeBytes >= 512) return resolve(undefined);
      const clipped = out
        .filter((e) => e.offset < sizeBytes)
        .map((e) => ({ offset: e.offset, length: Math.min(e.length, sizeBytes - e.offset) }));
      resolve(clipped);
    });
  });
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
    throw new CofferError('SOURCE_UNREADABLE', `${p} is not a regular file${allowDevices ? ' or block device' : ''}`, {
      details: { source: p },
    });
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
    throw new CofferError('SOURCE_UNREADABLE', `cannot determine the size of block device ${major}:${minor}`, {
      cause: e,
    });
  }
}

function sourceError(e: unknown, p: string): CofferError {
  if (e instanceof CofferError) return e;
  const err = e as NodeJS.ErrnoException;
  const why =
    err.code === 'ENOENT'
      ? 'no such file'
      : err.code === 'EACCES' || err.code === 'EPERM'
        ? 'permission denied'
        : err.code === 'EISDIR'
          ? 'is a directory'
          : err.message;
  return new CofferError('SOURCE_UNREADABLE', `cannot read source ${p}: ${why}`, {
    details: { source: p, errno: err.code },
    cause: e,
  });
}
