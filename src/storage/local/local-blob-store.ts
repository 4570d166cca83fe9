import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { CofferError, type BlobName, type Op } from '../../shared/index.js';
import { isValidBlobName, type BlobInfo, type ByteRange } from '../blob-store.js';
import { ownCapabilities, type CapableBlobStore, type LocalFiles, type TempFiles } from '../capabilities.js';

export interface LocalBlobStoreOptions {
  /** fsync file and directory before put resolves (default true). Tests may turn it off for speed. */
  durable?: boolean;
}

/**
 * The embedded default: blobs are files under a root directory; 'a/b/c' is ROOT/a/b/c.
 * put writes ROOT/a/b/.tmp-RANDOM, fsyncs it, hard-links it to the final name (link(2) fails with EEXIST
 * instead of replacing, which gives put-if-absent atomically), unlinks the temp name and fsyncs the directory.
 * A crash leaves at most a .tmp- file, which list never shows; `sweepTemp` removes old ones.
 *
 * Chunk directories (`chunks/XX/`) are the exception to "fsync the directory in every put": a full backup writes
 * thousands of chunks into 256 directories, and one directory fsync per chunk is an open, a journal commit and a
 * close each time (docs/BENCHMARKS.md, issue 19). Their names are made durable together, before the next put outside
 * `chunks/` (an index, a manifest, a lease, a GC record...) resolves: nothing that refers to a chunk can be durable
 * before the chunk's name is. A chunk found present (put -> 'exists', stat) marks its directory too, as it may be
 * another process's write whose name is not synced yet. The data of every chunk file is still fsynced before its
 * link, so a name never points at a torn file.
 */
export class LocalBlobStore implements CapableBlobStore, TempFiles, LocalFiles {
  readonly capability = ownCapabilities(this, ['tempFiles', 'localFiles']);
  readonly location: string;
  private readonly durable: boolean;
  private readonly knownDirs = new Set<string>();
  /** chunk directories with names not yet fsynced (see the class comment) */
  private readonly dirtyDirs = new Set<string>();
  private flushing: Promise<void> | undefined;

  constructor(
    readonly root: string,
    options: LocalBlobStoreOptions = {},
  ) {
    this.root = path.resolve(root);
    this.location = this.root;
    this.durable = options.durable ?? true;
  }

  fileOf(name: BlobName): string {
    return this.pathOf(name);
  }

  private pathOf(name: string): string {
    if (!isValidBlobName(name)) throw new CofferError('INTERNAL', `invalid blob name ${JSON.stringify(name)}`);
    return path.join(this.root, ...name.split('/'));
  }

  async put(name: BlobName, data: Uint8Array, op?: Op): Promise<'created' | 'exists'> {
    op?.signal?.throwIfAborted();
    const final = this.pathOf(name);
    const dir = path.dirname(final);
    const deferred = this.durable && name.startsWith('chunks/');
    // what this blob may refer to is durable first
    if (!deferred) await this.flushDirs();
    await this.ensureDir(dir);
    const tmp = path.join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
    try {
      const fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o444);
      try {
        let off = 0;
        while (off < data.length) {
          const { bytesWritten } = await fh.write(data, off, data.length - off, off);
          off += bytesWritten;
        }
        if (this.durable) await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await fs.link(tmp, final);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
          if (deferred) this.dirtyDirs.add(dir);
          return 'exists';
        }
        throw e;
      }
      if (deferred) this.dirtyDirs.add(dir);
      else if (this.durable) await syncDir(dir);
      return 'created';
    } catch (e) {
      throw translate(e, name, 'write');
    } finally {
      await fs.unlink(tmp).catch(() => undefined);
    }
  }

  async get(name: BlobName, range?: ByteRange, op?: Op): Promise<Buffer> {
    op?.signal?.throwIfAborted();
    const p = this.pathOf(name);
    try {
      if (!range) return await fs.readFile(p, { signal: op?.signal });
      const fh = await fs.open(p, 'r');
      try {
        const size = (await fh.stat()).size;
        const start = Math.min(range.offset, size);
        const len = Math.max(0, Math.min(range.length, size - start));
        const buf = Buffer.allocUnsafe(len);
        let got = 0;
        while (got < len) {
          const { bytesRead } = await fh.read(buf, got, len - got, start + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        return buf.subarray(0, got);
      } finally {
        await fh.close();
      }
    } catch (e) {
      throw translate(e, name, 'read');
    }
  }

  async stat(name: BlobName, op?: Op): Promise<BlobInfo | undefined> {
    op?.signal?.throwIfAborted();
    try {
      const p = this.pathOf(name);
      const st = await fs.stat(p);
      if (!st.isFile()) return undefined;
      if (this.durable && name.startsWith('chunks/')) this.dirtyDirs.add(path.dirname(p));
      return { name, sizeBytes: st.size, modifiedAt: st.mtime };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR')
        return undefined;
      throw translate(e, name, 'stat');
    }
  }

  async *list(prefix: string, op?: Op): AsyncIterable<BlobInfo> {
    // Walk only the directories that can hold names with this prefix.
    const slash = prefix.lastIndexOf('/');
    const dirPart = slash >= 0 ? prefix.slice(0, slash) : '';
    if (dirPart !== '' && !isValidBlobName(dirPart)) return;
    yield* this.walk(dirPart, prefix, op);
  }

  private async *walk(rel: string, prefix: string, op?: Op): AsyncIterable<BlobInfo> {
    op?.signal?.throwIfAborted();
    const abs = rel === '' ? this.root : path.join(this.root, ...rel.split('/'));
    let dir;
    try {
      dir = await fs.opendir(abs);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw translate(e, rel, 'list');
    }
    // Files are stat'ed 64 at a time (one at a time, a listing of a million chunks waits a million round trips
    // through the thread pool); subdirectories are walked after this directory's files.
    const files: { name: string; abs: string }[] = [];
    const dirs: string[] = [];
    const flush = async function* (): AsyncIterable<BlobInfo> {
      const batch = files.splice(0, files.length);
      // (undefined: deleted while listing)
      const stats = await Promise.all(batch.map((f) => fs.stat(f.abs).catch(() => undefined)));
      for (const [i, f] of batch.entries()) {
        const st = stats[i];
        if (st?.isFile()) yield { name: f.name as BlobName, sizeBytes: st.size, modifiedAt: st.mtime };
      }
    };
    for await (const ent of dir) {
      if (ent.name.startsWith('.')) continue;
      const name = rel === '' ? ent.name : `${rel}/${ent.name}`;
      if (ent.isDirectory()) {
        if (prefix.startsWith(name + '/') || name.startsWith(prefix) || (name + '/').startsWith(prefix))
          dirs.push(name);
      } else if (ent.isFile() && name.startsWith(prefix)) {
        files.push({ name, abs: path.join(abs, ent.name) });
        if (files.length >= 64) {
          op?.signal?.throwIfAborted();
          yield* flush();
        }
      }
    }
    yield* flush();
    for (const d of dirs) yield* this.walk(d, prefix, op);
  }

  async delete(name: BlobName, op?: Op): Promise<void> {
    op?.signal?.throwIfAborted();
    try {
      await fs.unlink(this.pathOf(name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw translate(e, name, 'delete');
    }
  }

  /**
   * Makes the names of the chunks put (or found) so far durable: one fsync per chunk directory touched since the
   * last flush. Every put outside `chunks/` calls it first.
   */
  async flushDirs(): Promise<void> {
    while (this.flushing) await this.flushing.catch(() => undefined);
    if (this.dirtyDirs.size === 0) return;
    const dirs = [...this.dirtyDirs];
    this.dirtyDirs.clear();
    const run = (async () => {
      try {
        // a few at a time: each is a thread-pool round trip and a journal commit
        for (let i = 0; i < dirs.length; i += 8) await Promise.all(dirs.slice(i, i + 8).map((d) => syncDir(d)));
      } catch (e) {
        for (const d of dirs) this.dirtyDirs.add(d); // (the next flush tries them again)
        throw translate(e, 'chunks/', 'sync');
      }
    })();
    this.flushing = run;
    try {
      await run;
    } finally {
      this.flushing = undefined;
    }
  }

  /** Removes .tmp- files older than maxAgeMs (left by crashed writers). */
  async sweepTemp(maxAgeMs: number, now = Date.now()): Promise<number> {
    let removed = 0;
    const visit = async (abs: string): Promise<void> => {
      let ents;
      try {
        ents = await fs.readdir(abs, { withFileTypes: true });
      } catch {
        return;
      }
      for (const ent of ents) {
        const p = path.join(abs, ent.name);
        if (ent.isDirectory()) await visit(p);
        else if (ent.name.startsWith('.tmp-')) {
          const st = await fs.stat(p).catch(() => undefined);
          if (st && now - st.mtimeMs > maxAgeMs) {
            await fs.unlink(p).catch(() => undefined);
            removed++;
          }
        }
      }
    };
    await visit(this.root);
    return removed;
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    try {
      const created = await fs.mkdir(dir, { recursive: true });
      if (created && this.durable) {
        // fsync the parent of the first new directory and every new directory down to `dir`
        let d = path.dirname(created);
        await syncDir(d);
        for (const seg of path.relative(d, dir).split(path.sep)) {
          d = path.join(d, seg);
          await syncDir(d);
        }
      }
    } catch (e) {
      throw translate(e, dir, 'mkdir');
    }
    this.knownDirs.add(dir);
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function translate(e: unknown, what: string, action: string): CofferError {
  if (e instanceof CofferError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err?.name === 'AbortError') return new CofferError('CANCELLED', 'cancelled', { cause: e });
  switch (err?.code) {
    case 'ENOENT':
      return new CofferError('NOT_FOUND', `blob ${what} not found`, { details: { blob: what }, cause: e });
    case 'ENOSPC':
    case 'EDQUOT':
      return new CofferError('STORAGE_FULL', `no space left on device while trying to ${action} ${what}`, {
        hint:
          'free space on the repository disk; data already committed is intact, and the ' +
          'next run reuses what was stored',
        details: { blob: what },
        cause: e,
      });
    case 'EMFILE':
    case 'ENFILE':
    case 'EAGAIN':
    case 'EBUSY':
      return new CofferError('TRANSIENT', `${action} ${what}: ${err.message}`, { cause: e });
    default:
      return new CofferError('IO', `cannot ${action} ${what}: ${err?.message ?? String(e)}`, {
        details: { blob: what, errno: err?.code },
        cause: e,
      });
  }
}
