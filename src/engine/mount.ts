import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FixedIndex } from '../format/index.js';
import type { BlockDevice } from '../nbd/index.js';
import type { Repository } from '../repository/index.js';
import { CofferError, asChunkId, type Op } from '../shared/index.js';
import type { CodecPool } from './codec-pool.js';

const OVERLAY_BLOCK = 4096;
const NBD_STATE_HOLE = 1;
const NBD_STATE_ZERO = 2;

export interface RestorePointDeviceOptions {
  /** Decoded chunks kept in memory (default 24: 96 MiB at 4 MiB chunks). */
  cacheChunks?: number;
  /** Writable: writes go to a local copy-on-write overlay file, never to the repository. */
  writable?: boolean;
  /** Overlay file path (default: a temporary file, removed at close). */
  overlayPath?: string;
}

/**
 * One disk of a restore point as a block device, read straight from the repository (instant recovery):
 * chunks are fetched, decrypted and decompressed on demand into an LRU cache, sequential reads prefetch ahead,
 * zero chunks cost nothing. Writable mounts keep every write in a sparse overlay file (4 KiB blocks + a bitmap).
 */
export class RestorePointDevice implements BlockDevice {
  readonly sizeBytes: number;
  readonly writable: boolean;
  private readonly cache = new Map<number, Promise<Buffer>>();
  private readonly cacheMax: number;
  private lastChunkRead = -2;
  private overlay: { fh: FileHandle; bitmap: Uint8Array; path: string; temp: string | undefined } | undefined;
  private writeLock: Promise<void> = Promise.resolve();
  /** chunks fetched from the repository so far (cache misses, zero chunks not counted) */
  chunksFetched = 0;

  private constructor(
    private readonly repo: Repository,
    private readonly pool: CodecPool,
    private readonly index: FixedIndex,
    opts: RestorePointDeviceOptions,
  ) {
    this.sizeBytes = index.diskSizeBytes;
    this.writable = Boolean(opts.writable);
    this.cacheMax = Math.max(4, opts.cacheChunks ?? 24);
  }

  static async open(
    repo: Repository,
    pool: CodecPool,
    index: FixedIndex,
    opts: RestorePointDeviceOptions = {},
  ): Promise<RestorePointDevice> {
    const dev = new RestorePointDevice(repo, pool, index, opts);
    if (opts.writable) {
      const temp = opts.overlayPath ? undefined : await mkdtemp(join(tmpdir(), 'coffer-overlay-'));
      const path = opts.overlayPath ?? join(temp!, 'overlay.raw');
      let fh: FileHandle;
      try {
        fh = await open(path, 'wx+', 0o600);
        await fh.truncate(index.diskSizeBytes);
      } catch (e) {
        if (temp) await rm(temp, { recursive: true, force: true });
        throw new CofferError('TARGET_UNWRITABLE', `cannot create the overlay ${path}: ${(e as Error).message}`, {
          cause: e,
        });
      }
      dev.overlay = { fh, path, temp, bitmap: new Uint8Array(Math.ceil(index.diskSizeBytes / OVERLAY_BLOCK / 8)) };
    }
    return dev;
  }

  get overlayPath(): string | undefined {
    return this.overlay?.path;
  }

  private chunk(i: number, op?: Op): Promise<Buffer> {
    const hit = this.cache.get(i);
    if (hit) {
      this.cache.delete(i);
      this.cache.set(i, hit);
      return hit;
    }
    const len = this.index.chunkLength(i);
    let p: Promise<Buffer>;
    if (this.index.isZero(i)) p = Promise.resolve(Buffer.alloc(len));
    else {
      const hex = this.index.id(i).toString('hex');
      this.chunksFetched++;
      p = this.repo
        .chunksVia(this.pool)
        .get(asChunkId(hex), { checkId: false }, op)
        .then(({ plain }) => {
          if (plain.length !== len)
            throw new CofferError('CORRUPT', `chunk ${hex} has ${plain.length} bytes, expected ${len}`);
          return plain;
        });
      p.catch(() => this.cache.delete(i)); // do not cache failures
    }
    this.cache.set(i, p);
    while (this.cache.size > this.cacheMax) this.cache.delete(this.cache.keys().next().value!);
    return p;
  }

  async read(offset: number, length: number, op?: Op): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    const cs = this.index.chunkSizeBytes;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + length - 1) / cs);
    // sequential access: prefetch the next two chunks
    if (first === this.lastChunkRead || first === this.lastChunkRead + 1) {
      for (let k = last + 1; k <= last + 2 && k < this.index.entryCount; k++) this.chunk(k, op).catch(() => undefined);
    }
    this.lastChunkRead = last;
    await Promise.all(
      Array.from({ length: last - first + 1 }, async (_, k) => {
        const i = first + k;
        const data = await this.chunk(i, op);
        const from = Math.max(offset, i * cs);
        const to = Math.min(offset + length, i * cs + data.length);
        data.copy(out, from - offset, from - i * cs, to - i * cs);
      }),
    );
    if (this.overlay) await this.mergeOverlay(out, offset);
    return out;
  }

  private isWritten(block: number): boolean {
    return (this.overlay!.bitmap[block >> 3]! & (1 << (block & 7))) !== 0;
  }

  /** Replaces the parts of `out` (at `offset`) that were written in the overlay. */
  private async mergeOverlay(out: Buffer, offset: number): Promise<void> {
    const o = this.overlay!;
    const firstBlock = Math.floor(offset / OVERLAY_BLOCK);
    const lastBlock = Math.floor((offset + out.length - 1) / OVERLAY_BLOCK);
    for (let b = firstBlock; b <= lastBlock; b++) {
      if (!this.isWritten(b)) continue;
      let e = b;
      while (e + 1 <= lastBlock && this.isWritten(e + 1)) e++;
      const from = Math.max(offset, b * OVERLAY_BLOCK);
      const to = Math.min(offset + out.length, (e + 1) * OVERLAY_BLOCK);
      await o.fh.read(out, from - offset, to - from, from);
      b = e;
    }
  }

  async write(offset: number, data: Buffer): Promise<void> {
    const o = this.overlay;
    if (!o) throw new CofferError('USAGE', 'read-only mount');
    // Writes are serialized: a partial block is read-modified-written as a whole.
    const run = this.writeLock.then(async () => {
      const start = Math.floor(offset / OVERLAY_BLOCK) * OVERLAY_BLOCK;
      const end = Math.min(this.sizeBytes, Math.ceil((offset + data.length) / OVERLAY_BLOCK) * OVERLAY_BLOCK);
      let buf = data;
      if (start !== offset || end !== offset + data.length) {
        buf = await this.read(start, end - start);
        data.copy(buf, offset - start);
      }
      let done = 0;
      while (done < buf.length) done += (await o.fh.write(buf, done, buf.length - done, start + done)).bytesWritten;
      for (let b = start / OVERLAY_BLOCK; b * OVERLAY_BLOCK < end; b++) o.bitmap[b >> 3]! |= 1 << (b & 7);
    });
    this.writeLock = run.catch(() => undefined);
    await run;
  }

  async zero(offset: number, length: number): Promise<void> {
    for (let done = 0; done < length; ) {
      const n = Math.min(4 * 1024 * 1024, length - done);
      await this.write(offset + done, Buffer.alloc(n));
      done += n;
    }
  }

  async flush(): Promise<void> {
    await this.writeLock;
    await this.overlay?.fh.sync();
  }

  async blockStatus(offset: number, length: number): Promise<{ length: number; flags: number }[]> {
    const cs = this.index.chunkSizeBytes;
    const out: { length: number; flags: number }[] = [];
    let pos = offset;
    const end = Math.min(this.sizeBytes, offset + length);
    while (pos < end && out.length < 4096) {
      const i = Math.floor(pos / cs);
      const chunkEnd = Math.min(end, (i + 1) * cs);
      const zero = this.index.isZero(i) && !this.overlayTouches(i * cs, (i + 1) * cs);
      const flags = zero ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0;
      const prev = out[out.length - 1];
      if (prev && prev.flags === flags) prev.length += chunkEnd - pos;
      else out.push({ length: chunkEnd - pos, flags });
      pos = chunkEnd;
    }
    return out;
  }

  private overlayTouches(from: number, to: number): boolean {
    if (!this.overlay) return false;
    for (let b = Math.floor(from / OVERLAY_BLOCK); b * OVERLAY_BLOCK < Math.min(to, this.sizeBytes); b++)
      if (this.isWritten(b)) return true;
    return false;
  }

  async close(): Promise<void> {
    const o = this.overlay;
    this.overlay = undefined;
    if (!o) return;
    await this.writeLock;
    await o.fh.close().catch(() => undefined);
    if (o.temp) await rm(o.temp, { recursive: true, force: true });
  }
}
