import type { BlobStore } from '../storage/index.js';
import {
  capabilityOf,
  type AccessTier,
  type RehydratePriority,
  type TierInfo,
  type Tiering,
} from '../storage/index.js';
import { CofferError, HEX64, type ChunkId, type Op } from '../shared/index.js';
import type { ChunkCodec } from './chunk-codec.js';
import { missingChunkError, type ChunkFileRestore } from './chunk-file.js';
import { IdSet } from './id-set.js';
import { CHUNKS_PREFIX, chunkBlob } from './layout.js';

/**
 * The sealing half of a codec (decrypt + decompress + re-hash, compress + encrypt), synchronous (ChunkCodec on this
 * thread) or on worker threads (engine/codec-pool.ts CodecPool has this shape). The chunk store holds one.
 */
export interface ChunkCipher {
  open(
    blob: Buffer,
    idHex: string,
    checkId?: boolean,
    into?: Buffer,
  ): Promise<{ plain: Buffer; spare: Buffer | undefined }>;
  seal(data: Buffer, idHex: string): Promise<{ sealed: Buffer; data: Buffer }>;
  /**
   * Opens and writes one chunk in one step off this thread (chunk-file.ts), reading it from `req.file` or given as
   * `sealed` (which it may take), when the cipher has threads that do their own I/O; false: it did nothing and took
   * nothing (the caller opens and writes the usual way).
   */
  restoreFile?(req: ChunkFileRestore, sealed?: Buffer): Promise<boolean>;
}

/** A ChunkCodec used on the calling thread, as a ChunkCipher. */
export function inlineCipher(codec: ChunkCodec): ChunkCipher {
  return {
    open: async (blob, idHex, checkId = true, into) => {
      const plain = codec.open(blob, idHex, checkId, into);
      return { plain, spare: into && plain.buffer !== into.buffer ? into : undefined };
    },
    seal: async (data, idHex) => ({ sealed: codec.seal(data, idHex), data }),
  };
}

/** A chunk to store: its plaintext, and its sealed blob when the caller has it already (sealed speculatively). */
export interface ChunkData {
  plain: Buffer;
  sealed?: Buffer | undefined;
  /** Called with the plaintext buffer as soon as it is not needed any more (after sealing, before the write). */
  release?: (plain: Buffer) => void;
}

export interface PutOutcome {
  stored: 'created' | 'exists';
  /** size of the sealed blob */
  sizeBytes: number;
  /** the plaintext buffer, handed back (a worker codec transfers it away and back) */
  plain: Buffer;
}

/** One stored chunk as listed: id, size, time of the put. */
export interface ChunkEntry {
  id: ChunkId;
  sizeBytes: number;
  modifiedAt: Date;
}

/**
 * The chunks of a repository (FORMAT.md §3), by id: get (read and open), put (seal and store), has, replace a damaged
 * one, list ids, delete (garbage collection only). It holds the codec, so no caller pairs a read with a decrypt or a
 * seal with a write. `Repository.chunks` uses a codec on this thread; `Repository.chunksVia(pool)` worker threads.
 */
export class ChunkStore {
  constructor(
    private readonly store: BlobStore,
    private readonly cipher: ChunkCipher,
  ) {}

  /** The same chunks through another codec (e.g. a worker pool). */
  via(cipher: ChunkCipher): ChunkStore {
    return new ChunkStore(this.store, cipher);
  }

  async has(id: ChunkId, op?: Op): Promise<boolean> {
    return (await this.store.stat(chunkBlob(id), op)) !== undefined;
  }

  /** The sealed blob as stored; a missing chunk is CORRUPT with details.missing (the repository lost it). */
  async getSealed(id: ChunkId, op?: Op): Promise<Buffer> {
    try {
      return await this.store.get(chunkBlob(id), undefined, op);
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') throw missingChunkError(id);
      throw e;
    }
  }

  /**
   * Reads and opens a chunk. `checkId` (default true) also re-hashes the plaintext to its id; `into` is a buffer the
   * caller gives up for the plaintext (see CodecPool.open), `spare` returns it when unused. CORRUPT when missing or
   * bad.
   */
  async get(
    id: ChunkId,
    opts: { checkId?: boolean; into?: Buffer } = {},
    op?: Op,
  ): Promise<{ plain: Buffer; spare: Buffer | undefined }> {
    const blob = await this.getSealed(id, op);
    return this.cipher.open(blob, id, opts.checkId ?? true, opts.into);
  }

  /**
   * Restores chunk `id` into a file or device (`to`) in one step on a codec worker: read there from its file when
   * the chunks are local files, else fetched here and handed over; the worker opens it and writes the plaintext, which
   * never comes back. Returns `{}` when done; with a cipher that has no workers (or has not started them yet) it
   * returns the plaintext as `get` does, for the caller to write. CORRUPT when missing or bad.
   */
  async restoreFile(
    id: ChunkId,
    to: Omit<ChunkFileRestore, 'file' | 'idHex' | 'checkId'>,
    opts: { checkId: boolean; into?: Buffer | undefined },
    op?: Op,
  ): Promise<{ plain?: Buffer; spare?: Buffer | undefined }> {
    const restoreFile = this.cipher.restoreFile?.bind(this.cipher);
    if (!restoreFile) return this.get(id, opts, op);
    op?.signal?.throwIfAborted();
    const req = { ...to, idHex: id, checkId: opts.checkId };
    const local = capabilityOf(this.store, 'localFiles');
    if (local) {
      if (await restoreFile({ ...req, file: local.fileOf(chunkBlob(id)) })) return { spare: opts.into };
      return this.get(id, opts, op);
    }
    const blob = await this.getSealed(id, op);
    if (await restoreFile(req, blob)) return { spare: opts.into };
    return this.cipher.open(blob, id, opts.checkId, opts.into);
  }

  /** The sealed blob, after checking that it opens and hashes to its id (a damaged chunk is not copied on). */
  async getSealedChecked(id: ChunkId, op?: Op): Promise<Buffer> {
    const blob = await this.getSealed(id, op);
    await this.cipher.open(Buffer.from(blob), id, true); // a copy: a worker codec takes the buffer it is given
    return blob;
  }

  /** Whether the stored chunk reads and hashes to its id (false: missing or corrupt). */
  async readsFine(id: ChunkId, op?: Op): Promise<boolean> {
    try {
      await this.get(id, { checkId: true }, op);
      return true;
    } catch (e) {
      if (e instanceof CofferError && e.code === 'CORRUPT') return false;
      throw e;
    }
  }

  /** Stores a sealed blob as it is (a copy between repositories with the same keys). Never overwrites. */
  putSealed(id: ChunkId, sealed: Uint8Array, op?: Op): Promise<'created' | 'exists'> {
    return this.store.put(chunkBlob(id), sealed, op);
  }

  /** Seals (unless `chunk.sealed` is given) and stores a chunk. Never overwrites: 'exists' leaves the stored one. */
  async put(id: ChunkId, chunk: ChunkData, op?: Op): Promise<PutOutcome> {
    let plain = chunk.plain;
    let sealed = chunk.sealed;
    if (!sealed) ({ sealed, data: plain } = await this.cipher.seal(plain, id));
    chunk.release?.(plain);
    const stored = await this.store.put(chunkBlob(id), sealed, op);
    return { stored, sizeBytes: sealed.length, plain };
  }

  /**
   * Replaces a damaged chunk with good data: when the stored blob reads fine it stays ('fine', healed meanwhile);
   * otherwise the bad blob goes first (put never overwrites) and `chunk` is stored ('replaced'). The caller must
   * know the plaintext hashes to `id`. GC never deletes a referenced chunk, so this cannot race with a sweep.
   */
  async replace(
    id: ChunkId,
    chunk: ChunkData,
    op?: Op,
  ): Promise<{ outcome: 'fine' | 'replaced'; sizeBytes: number; plain: Buffer }> {
    if (await this.readsFine(id, op)) return { outcome: 'fine', sizeBytes: 0, plain: chunk.plain };
    await this.store.delete(chunkBlob(id), op);
    const r = await this.put(id, chunk, op);
    return { outcome: 'replaced', sizeBytes: r.sizeBytes, plain: r.plain };
  }

  /** Every stored chunk, lazily, in no particular order (names that are not chunks are skipped). */
  async *entries(op?: Op): AsyncIterable<ChunkEntry> {
    for await (const b of this.store.list(CHUNKS_PREFIX, op)) {
      const hex = b.name.slice(b.name.lastIndexOf('/') + 1);
      if (HEX64.test(hex) && b.name === chunkBlob(hex))
        yield { id: hex as ChunkId, sizeBytes: b.sizeBytes, modifiedAt: b.modifiedAt };
    }
  }

  /** The ids of every stored chunk: one listing, a compact sorted set (32 bytes a chunk). */
  async listIds(op?: Op, onProgress?: (listed: number) => void): Promise<IdSet> {
    let all = Buffer.allocUnsafeSlow(32 * 65536);
    let count = 0;
    for await (const e of this.entries(op)) {
      if ((count + 1) * 32 > all.length) {
        const bigger = Buffer.allocUnsafeSlow(all.length * 2);
        all.copy(bigger, 0, 0, count * 32);
        all = bigger;
      }
      all.write(e.id, count * 32, 'hex');
      count++;
      if (count % 1000 === 0) onProgress?.(count);
    }
    return IdSet.fromConcatenated(all.subarray(0, count * 32));
  }

  /**
   * Deletes a chunk (garbage collection only: the sweep of ADR 0006 decides what may go). Returns the size of the
   * deleted blob, or undefined when it was not there. A locked blob rejects with IMMUTABLE and stays.
   */
  async delete(id: ChunkId, op?: Op): Promise<number | undefined> {
    const name = chunkBlob(id);
    const st = await this.store.stat(name, op);
    if (!st) return undefined;
    await this.store.delete(name, op);
    return st.sizeBytes;
  }

  /**
   * Whether a put of a present chunk costs no more requests than `has` (object storage: put-if-absent in one
   * request). Then a writer of chunks that are probably new puts without asking `has` first.
   */
  get putsFirst(): boolean {
    return capabilityOf(this.store, 'putFirst') !== undefined;
  }

  /** Whether `copyFrom` can ask the service to copy (Azure to Azure); otherwise the bytes pass through here. */
  get copiesServerSide(): boolean {
    return capabilityOf(this.store, 'serverSideCopy') !== undefined;
  }

  /** Copies a sealed chunk from another store service-side; undefined when this pair cannot (copy the bytes). */
  async copyFrom(source: ChunkStore, id: ChunkId, op?: Op): Promise<'created' | 'exists' | undefined> {
    const copier = capabilityOf(this.store, 'serverSideCopy');
    return copier ? copier.serverSideCopyFrom(source.store, chunkBlob(id), op) : undefined;
  }

  // ---- access tiers (DESIGN.md §Archive tier): only chunks ever leave the hot tier

  /** USAGE unless the store has access tiers. */
  private tiered(): Tiering {
    const tiers = capabilityOf(this.store, 'tiers');
    if (!tiers) {
      throw new CofferError('USAGE', `${this.store.location} has no access tiers`, {
        hint: 'access tiers exist on Azure Blob (Hot/Cool/Cold/Archive) repositories',
      });
    }
    return tiers;
  }

  /** Throws USAGE when the repository's store has no access tiers. */
  requireTiers(): void {
    this.tiered();
  }

  tierOf(id: ChunkId, op?: Op): Promise<TierInfo | undefined> {
    return this.tiered().tierOf(chunkBlob(id), op);
  }

  setTier(id: ChunkId, tier: AccessTier, opts: { priority?: RehydratePriority } = {}, op?: Op): Promise<void> {
    return this.tiered().setTier(chunkBlob(id), tier, opts, op);
  }
}
