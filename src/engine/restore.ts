import * as fs from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import type { FixedIndex } from '../format/index.js';
import { targetWriteError, type Repository } from '../repository/index.js';
import { CofferError, TaskWindow, asChunkId, type Op } from '../shared/index.js';
import { blockDeviceSize } from '../sources/index.js';
import type { CodecPool } from './codec-pool.js';
import { chunksAhead } from './in-flight.js';

export type RestoreTarget = { kind: 'path'; path: string; force?: boolean } | { kind: 'stream'; stream: Writable };

export interface RestoreProgress {
  bytesDone: number;
  bytesTotal: number;
}

export interface RestoreRequest extends Op {
  pointId: string;
  disk: number;
  target: RestoreTarget;
  onProgress?: (p: RestoreProgress) => void;
  /** Re-hash every chunk to its id (default: trust the AEAD tag, which binds the blob to its id). */
  checkIds?: boolean;
  /** fsync a restored file before reporting success (block devices are always synced). */
  sync?: boolean;
}

export interface RestoreResult {
  id: string;
  vm: string;
  disk: number;
  sizeBytes: number;
  bytesWritten: number;
  zeroChunks: number;
  durationMs: number;
  target: string;
}

/**
 * Restores one disk of a restore point (DESIGN.md §Restore). Chunks are fetched and opened (decrypt, decompress,
 * re-hash) ahead in a bounded window and written in disk order. To a regular file the zero chunks stay holes
 * (sparse); to a block device or a stream they are written as zeros. A file we created is removed on failure.
 */
export async function restoreDisk(repo: Repository, pool: CodecPool, req: RestoreRequest): Promise<RestoreResult> {
  const started = Date.now();
  const op: Op = { signal: req.signal };
  const manifest = await repo.loadManifest(req.pointId, op);
  const disk = manifest.disks[req.disk];
  if (!disk) {
    throw new CofferError(
      'NOT_FOUND',
      `restore point ${manifest.id} has no disk ${req.disk} (it has ${manifest.disks.length})`,
    );
  }
  const index = await repo.loadIndex(disk.indexId, op);
  if (index.diskSizeBytes !== disk.sizeBytes)
    throw new CofferError('CORRUPT', `index ${disk.indexId} does not match the manifest's disk size`);
  // a large restore starts the codec workers now: they load while the target opens, not after the first 8 MiB
  let dataBytes = 0;
  for (let i = 0; i < index.entryCount; i++) if (!index.isZero(i)) dataBytes += index.chunkLength(i);
  pool.expect(dataBytes);
  const sink = await openSink(req.target, index.diskSizeBytes, Boolean(req.sync));
  let ok = false;
  try {
    const { bytesWritten, zeroChunks } = await writeChunks(repo, pool, index, sink, req, op);
    await sink.finish();
    ok = true;
    return {
      id: manifest.id,
      vm: manifest.vm.name,
      disk: req.disk,
      sizeBytes: index.diskSizeBytes,
      bytesWritten,
      zeroChunks,
      durationMs: Date.now() - started,
      target: sink.description,
    };
  } finally {
    if (!ok) await sink.abort();
  }
}

interface Sink {
  description: string;
  /** True when skipped ranges read back as zeros (a fresh sparse file). */
  sparse: boolean;
  /** True when writes carry their offset and may run concurrently (files, devices). */
  positional: boolean;
  /** A path that other threads may open for positional writes while the restore runs (files, devices). */
  file?: string;
  write(data: Buffer, offset: number): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

async function openSink(target: RestoreTarget, sizeBytes: number, sync: boolean): Promise<Sink> {
  if (target.kind === 'stream') return streamSink(target.stream);
  let st;
  try {
    st = await fs.stat(target.path);
  } catch {
    st = undefined;
  }
  if (st?.isBlockDevice()) {
    const deviceBytes = await blockDeviceSize(st.rdev);
    if (deviceBytes < sizeBytes) {
      throw new CofferError(
        'TARGET_UNWRITABLE',
        `block device ${target.path} has ${deviceBytes} bytes, the disk needs ${sizeBytes}`,
      );
    }
    return fileSink(target.path, sizeBytes, 'device', false, true);
  }
  if (st && !target.force) {
    throw new CofferError('TARGET_EXISTS', `restore target ${target.path} exists`, {
      hint: 'pass --force to overwrite it',
    });
  }
  if (st && !st.isFile())
    throw new CofferError('TARGET_UNWRITABLE', `restore target ${target.path} is not a regular file or block device`);
  return fileSink(target.path, sizeBytes, 'file', Boolean(target.force), sync);
}

/**
 * A block device is written in place. A file is written under a temporary name beside the target and renamed over
 * it only when complete, so a failed restore never leaves a half image, nor destroys a file that --force would replace.
 */
async function fileSink(
  path: string,
  sizeBytes: number,
  kind: 'file' | 'device',
  force: boolean,
  sync: boolean,
): Promise<Sink> {
  let fh: fs.FileHandle;
  const tmp =
    kind === 'file' ? join(dirname(path), `.${basename(path)}.coffer-partial-${randomBytes(4).toString('hex')}`) : path;
  try {
    fh =
      kind === 'device'
        ? await fs.open(path, fsc.O_WRONLY)
        : await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    if (kind === 'file') await fh.truncate(sizeBytes);
  } catch (e) {
    if (kind === 'file') await fs.unlink(tmp).catch(() => undefined);
    throw targetWriteError(e, path);
  }
  return {
    description: path,
    sparse: kind === 'file',
    positional: true,
    file: tmp,
    async write(data, offset) {
      try {
        let done = 0;
        while (done < data.length) done += (await fh.write(data, done, data.length - done, offset + done)).bytesWritten;
      } catch (e) {
        throw targetWriteError(e, path);
      }
    },
    async finish() {
      try {
        if (sync) await fh.sync();
      } catch (e) {
        throw targetWriteError(e, path);
      } finally {
        await fh.close();
      }
      if (kind === 'device') return;
      try {
        if (force) await fs.rename(tmp, path);
        else {
          await fs.link(tmp, path); // fails if the target appeared meanwhile: never overwrite without --force
          await fs.unlink(tmp);
        }
      } catch (e) {
        await fs.unlink(tmp).catch(() => undefined);
        if ((e as NodeJS.ErrnoException).code === 'EEXIST')
          throw new CofferError('TARGET_EXISTS', `restore target ${path} appeared during the restore`);
        throw targetWriteError(e, path);
      }
    },
    async abort() {
      await fh.close().catch(() => undefined);
      if (kind === 'file') await fs.unlink(tmp).catch(() => undefined);
    },
  };
}

function streamSink(stream: Writable): Sink {
  let streamError: unknown;
  const onError = (e: unknown) => (streamError ??= e);
  stream.on('error', onError);
  return {
    description: 'stdout',
    sparse: false,
    positional: false,
    async write(data) {
      if (streamError) throw targetWriteError(streamError, 'stdout');
      if (!stream.write(data)) await Promise.race([once(stream, 'drain'), once(stream, 'error')]);
      if (streamError) throw targetWriteError(streamError, 'stdout');
    },
    async finish() {
      stream.off('error', onError);
    },
    async abort() {
      stream.off('error', onError);
    },
  };
}

/** A chunk a worker has written to the target itself (restoreFile). */
const WRITTEN = Symbol('written');

async function writeChunks(
  repo: Repository,
  pool: CodecPool,
  index: FixedIndex,
  sink: Sink,
  req: RestoreRequest,
  op: Op,
) {
  const n = index.entryCount;
  const cs = index.chunkSizeBytes;
  // more ahead on object storage (round trips); fewer when the plaintext comes back here (a stream)
  const ahead = chunksAhead(cs, pool.size, repo.chunks.putsFirst, sink.file !== undefined && pool.size > 0);
  const zeros = Buffer.alloc(cs);
  // Positions fetched ahead, in disk order. Zero chunks cost nothing, so only data chunks (being fetched, or fetched
  // and waiting to be written) count against `ahead`: memory stays bounded however slow the target is.
  const queue: { i: number; p: Promise<Buffer | null | typeof WRITTEN> }[] = [];
  let buffered = 0;
  const free: Buffer[] = [];
  let next = 0;
  let bytesWritten = 0;
  let zeroChunks = 0;
  let done = false;
  // Files and devices take positional writes, so several can be in flight; a stream is written in order.
  const writes = new TaskWindow(sink.positional ? 4 : 1);
  const chunks = repo.chunksVia(pool);
  const checkId = Boolean(req.checkIds);
  // To a file or device a worker opens each chunk and writes it itself (read there too from a local repository):
  // no plaintext comes back to this thread and no write waits for it. Before the workers start (the first few MiB)
  // and to a stream, chunks come back here and are written below.
  const file = sink.file;
  const fetch = (i: number): Promise<Buffer | null | typeof WRITTEN> => {
    if (index.isZero(i)) return Promise.resolve(null);
    const hex = asChunkId(index.id(i).toString('hex'));
    const len = index.chunkLength(i);
    buffered++; // until written (below, or by a worker)
    const got =
      file === undefined
        ? chunks.get(hex, { checkId, into: free.pop() }, op)
        : chunks.restoreFile(
            hex,
            { target: file, targetName: sink.description, offset: i * cs, length: len, position: i },
            { checkId, into: free.pop() },
            op,
          );
    return got.then(({ plain, spare }) => {
      if (spare) free.push(spare);
      if (!plain) return WRITTEN;
      if (plain.length !== len) {
        throw new CofferError(
          'CORRUPT',
          `chunk ${hex} has ${plain.length} bytes where disk position ${i} needs ${len}`,
        );
      }
      return plain;
    });
  };
  try {
    for (let i = 0; i < n; i++) {
      while (next < n && (queue.length === 0 || buffered < ahead) && queue.length < 65536) {
        const p = fetch(next);
        p.catch(() => undefined); // observed in order below
        queue.push({ i: next++, p });
      }
      op.signal?.throwIfAborted();
      const plain = await queue.shift()!.p;
      const len = index.chunkLength(i);
      if (plain === WRITTEN) {
        buffered--;
        bytesWritten += len;
      } else if (plain) {
        await writes.run(() =>
          sink.write(plain, i * cs).finally(() => {
            buffered--;
            // hand the whole buffer back for the next chunk's plaintext
            const whole = Buffer.from(plain.buffer, 0, plain.buffer.byteLength);
            // (not for streams: a Writable may still hold the buffer in its queue after write() returned)
            if (
              sink.positional &&
              whole.length >= cs &&
              !(plain.buffer instanceof SharedArrayBuffer) &&
              free.length < ahead + 4
            )
              free.push(whole);
          }),
        );
        bytesWritten += len;
      } else {
        zeroChunks++;
        if (!sink.sparse) {
          await writes.run(() => sink.write(len === cs ? zeros : zeros.subarray(0, len), i * cs));
          bytesWritten += len;
        }
      }
      req.onProgress?.({ bytesDone: Math.min((i + 1) * cs, index.diskSizeBytes), bytesTotal: index.diskSizeBytes });
    }
    await writes.drain();
    done = true;
  } finally {
    await writes.settle();
    await Promise.allSettled(queue.map((q) => q.p));
    // every worker write has settled: the workers close their descriptors of the target (a deferred write error
    // fails a restore that had otherwise succeeded; after a failure the first error stands)
    if (file !== undefined) {
      const closed = pool.closeTarget(file, sink.description);
      await (done ? closed : closed.catch(() => undefined));
    }
  }
  return { bytesWritten, zeroChunks };
}
