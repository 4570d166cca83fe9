import { randomBytes } from 'node:crypto';
import { deriveRepoKeys, keyedDigest, newMasterKey, type RepoKeys } from '../crypto/index.js';
import {
  DEFAULT_CHUNK_SIZE,
  FIXED_INDEX_HEADER_BYTES,
  FIXED_INDEX_MAX_ENTRIES,
  CHUNK_ID_BYTES,
  FORMAT_VERSION,
  FixedIndex,
  REPO_MAGIC,
  canonicalConfigBytes,
  decodeManifest,
  decodeRepoConfig,
  encodeManifest,
  encodeRepoConfig,
  isValidChunkSize,
  type KeyFile,
  type Manifest,
  type RepoConfig,
  type UnsignedRepoConfig,
} from '../format/index.js';
import {
  APPEND_ONLY_BLOB,
  capabilityOf,
  type BlobStore,
  type LockRequest,
  type RetentionInfo,
} from '../storage/index.js';
import {
  CofferError,
  HEX32,
  silentLogger,
  TaskWindow,
  type ChunkId,
  type Logger,
  type Op,
  type RestorePointId,
} from '../shared/index.js';
import { ChunkCodec } from './chunk-codec.js';
import { ChunkStore, inlineCipher, type ChunkCipher } from './chunk-store.js';
import { GcRecords } from './gc-records.js';
import { addHold, listHolds, removeHolds, type Hold } from './holds.js';
import { referencedIds, walkPoints, type PointWalk, type ReferencedIds, type WalkSource } from './point-walk.js';
import { openObject, sealObject } from './object-codec.js';
import { listKeyFiles, unlockKeyFile, unlockMasterKey, writeKeyFile, type KdfCost } from './key-ring.js';
import { Lease, type LeaseOptions } from './lease.js';
import {
  CONFIG_BLOB,
  INDEXES_PREFIX,
  KEYS_PREFIX,
  POINTS_PREFIX,
  VERIFICATIONS_PREFIX,
  baseName,
  chunkBlob,
  indexBlob,
  keyBlob,
  pointBlob,
  verificationBlob,
  checkBlob,
  CHECKS_PREFIX,
  INDICATORS_PREFIX,
  indicatorsBlob,
} from './layout.js';

export interface InitOptions {
  chunkSizeBytes?: number;
  zstdLevel?: number;
  kdf?: KdfCost;
  logger?: Logger;
}

/** manifests listPoints reads at once */
const LIST_POINTS_IN_FLIGHT = 16;

/** zstd level 2: on OS data ~1.8x the speed of level 3 for ~7% more bytes (docs/BENCHMARKS.md). */
/** One verification of one restore point (FORMAT.md §8). */
export interface VerificationRecord {
  pointId: string;
  time: string;
  ok: boolean;
  /** Share of the point's chunks whose data was read and checked (0: presence only). */
  readDataFraction: number;
  problems: { kind: string; id: string; message: string }[];
}

/** One object of a restore point, by kind and id. */
export type ObjectRef = { kind: 'chunk'; id: ChunkId } | { kind: 'index' | 'point'; id: string };

/** Retention locks on repository objects (Repository.retentionLocks). */
export interface ObjectLocks {
  retention(o: ObjectRef, op?: Op): Promise<RetentionInfo | undefined>;
  lock(o: ObjectRef, req: LockRequest, op?: Op): Promise<void>;
}

export const DEFAULT_ZSTD_LEVEL = 2;
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

/**
 * A repository over a BlobStore: config, keys, chunks, fixed indexes, restore-point manifests, leases.
 * It knows formats and names, not backup logic (engine/).
 */
export class Repository {
  /** The chunks, opened and sealed on this thread (`chunksVia(pool)` for worker threads). */
  readonly chunks: ChunkStore;
  /** Garbage-collection bookkeeping: condemned generations, rescues, leases (ADR 0006). */
  readonly gc: GcRecords;

  private constructor(
    private readonly store: BlobStore,
    readonly config: RepoConfig,
    private readonly master: Buffer,
    private readonly keys: RepoKeys,
    readonly keyId: string,
    readonly logger: Logger,
  ) {
    const codec = new ChunkCodec(
      { encKey: keys.encKey, idKey: keys.idKey },
      config.compression.level,
      config.chunkSizeBytes,
    );
    this.chunks = new ChunkStore(store, inlineCipher(codec));
    this.gc = new GcRecords(store);
    this.hasher = codec;
  }

  private readonly hasher: ChunkCodec;

  get id(): string {
    return this.config.id;
  }

  /** Where the repository lives (the store's location), for messages. */
  get location(): string {
    return this.store.location;
  }

  /** The chunks through another codec, e.g. the CodecPool of a command (worker threads). */
  chunksVia(cipher: ChunkCipher): ChunkStore {
    return this.chunks.via(cipher);
  }

  /** The id a plaintext chunk has in this repository (keyed hash), or null for an all-zero chunk (never stored). */
  chunkIdOf(plain: Uint8Array): ChunkId | null {
    const id = this.hasher.hash(plain);
    return id ? (id.toString('hex') as ChunkId) : null;
  }

  /** Same repository id and keys: chunk ids and sealed blobs are valid in both (`init --copy-of`). */
  sharesKeysWith(other: Repository): boolean {
    return (
      this.id === other.id && this.keys.encKey.equals(other.keys.encKey) && this.keys.idKey.equals(other.keys.idKey)
    );
  }

  get chunkSizeBytes(): number {
    return this.config.chunkSizeBytes;
  }

  get codecParams(): { encKey: Buffer; idKey: Buffer; zstdLevel: number; maxChunkBytes: number } {
    return {
      encKey: this.keys.encKey,
      idKey: this.keys.idKey,
      zstdLevel: this.config.compression.level,
      maxChunkBytes: this.config.chunkSizeBytes,
    };
  }

  static async init(store: BlobStore, password: string, opts: InitOptions = {}): Promise<Repository> {
    if (await store.stat(CONFIG_BLOB)) {
      throw new CofferError('REPO_EXISTS', `a repository already exists at ${store.location}`);
    }
    const chunkSizeBytes = opts.chunkSizeBytes ?? DEFAULT_CHUNK_SIZE;
    if (!isValidChunkSize(chunkSizeBytes)) {
      throw new CofferError('USAGE', `chunk size ${chunkSizeBytes} must be a power of two from 64 KiB to 8 MiB`);
    }
    const level = opts.zstdLevel ?? DEFAULT_ZSTD_LEVEL;
    if (!Number.isInteger(level) || level < -7 || level > 19)
      throw new CofferError('USAGE', `zstd level ${level} must be an integer from -7 to 19`);
    const id = randomBytes(16).toString('hex');
    const master = newMasterKey();
    const keys = deriveRepoKeys(master, id);
    const unsigned: UnsignedRepoConfig = {
      magic: REPO_MAGIC,
      formatVersion: FORMAT_VERSION,
      id,
      createdAt: new Date().toISOString(),
      chunkSizeBytes,
      chunkIdAlgorithm: 'hmac-sha256',
      cipher: 'aes-256-gcm',
      compression: { algorithm: 'zstd', level },
    };
    const config: RepoConfig = {
      ...unsigned,
      mac: keyedDigest(keys.macKey, canonicalConfigBytes(unsigned)).toString('hex'),
    };
    // The key first: a crash between the two leaves no config, i.e. no half repository anyone would open.
    const key = await writeKeyFile(store, id, master, password, 'initial key', opts.kdf);
    if ((await store.put(CONFIG_BLOB, encodeRepoConfig(config))) === 'exists') {
      await store.delete(keyBlob(key.id));
      throw new CofferError('REPO_EXISTS', `a repository already exists at ${store.location}`);
    }
    return new Repository(store, config, master, keys, key.id, opts.logger ?? silentLogger);
  }

  /**
   * Creates `target` as a replica of `source` (`init --copy-of`): the same config (id, chunk size) and key files,
   * hence the same master key, chunk ids and ciphertexts, so `copy` moves blobs unchanged (server-side on Azure).
   * The password must open the source. Key files first, the config last (a crash leaves no half repository).
   */
  /**
   * Makes a new repository location append-only before anything else is written (FORMAT.md §9): the marker comes
   * first, so the repository is never, not even for a moment, deletable. Refused where a repository already exists.
   */
  static async markAppendOnly(store: BlobStore): Promise<void> {
    if (await store.stat(CONFIG_BLOB))
      throw new CofferError('REPO_EXISTS', `a repository already exists at ${store.location}`);
    await store.put(
      APPEND_ONLY_BLOB,
      Buffer.from(JSON.stringify({ appendOnly: true, since: new Date().toISOString() }) + '\n'),
    );
  }

  static async initCopyOf(
    target: BlobStore,
    source: BlobStore,
    password: string,
    opts: { logger?: Logger } = {},
  ): Promise<Repository> {
    if (await target.stat(CONFIG_BLOB))
      throw new CofferError('REPO_EXISTS', `a repository already exists at ${target.location}`);
    await Repository.open(source, password, opts); // the password must open the source
    for await (const b of source.list(KEYS_PREFIX)) await target.put(b.name, await source.get(b.name));
    if ((await target.put(CONFIG_BLOB, await source.get(CONFIG_BLOB))) === 'exists') {
      throw new CofferError('REPO_EXISTS', `a repository already exists at ${target.location}`);
    }
    return Repository.open(target, password, opts);
  }

  /** Reads the config only (no key needed): is this a repository, which version? */
  static async readConfig(store: BlobStore, op?: Op): Promise<RepoConfig> {
    let bytes: Buffer;
    try {
      bytes = await store.get(CONFIG_BLOB, undefined, op);
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') {
        throw new CofferError('REPO_NOT_FOUND', `${store.location} is not a Coffer repository (no config)`, {
          hint: 'create one with `coffer init --repo PATH`',
        });
      }
      throw e;
    }
    return decodeRepoConfig(bytes);
  }

  static async open(store: BlobStore, password: string, opts: { logger?: Logger } = {}): Promise<Repository> {
    const logger = opts.logger ?? silentLogger;
    // the config and the key files are read at once (one round trip less to a distant object store)
    const keyFiles = listKeyFiles(store, logger);
    keyFiles.catch(() => undefined); // (a failing config read is the error reported)
    const config = await Repository.readConfig(store);
    const { master, keyId } = await unlockMasterKey(store, config.id, password, logger, await keyFiles);
    const keys = deriveRepoKeys(master, config.id);
    const { mac, ...unsigned } = config;
    const expected = keyedDigest(keys.macKey, canonicalConfigBytes(unsigned)).toString('hex');
    if (expected !== mac)
      throw new CofferError('CORRUPT', 'repository config failed authentication (modified or damaged)');
    return new Repository(store, config, master, keys, keyId, logger);
  }

  // ---- keys

  async listKeys(): Promise<KeyFile[]> {
    return listKeyFiles(this.store, this.logger);
  }

  async addKey(password: string, label = '', kdf?: KdfCost): Promise<KeyFile> {
    return writeKeyFile(this.store, this.id, this.master, password, label, kdf);
  }

  /**
   * Changes the password of the key in use: writes a key file for the new password, checks that it opens, then
   * deletes the current key file. Other keys are untouched. Returns the new key id.
   */
  async changePassword(newPassword: string, kdf?: KdfCost): Promise<KeyFile> {
    const current = (await this.listKeys()).find((k) => k.id === this.keyId);
    const added = await writeKeyFile(this.store, this.id, this.master, newPassword, current?.label ?? '', kdf);
    const check = await unlockKeyFile(this.store, this.id, added.id, newPassword);
    if (!check.equals(this.master)) {
      await this.store.delete(keyBlob(added.id));
      throw new CofferError('INTERNAL', 'the new key file does not unwrap to the master key');
    }
    await this.store.delete(keyBlob(this.keyId));
    return added;
  }

  async removeKey(keyId: string): Promise<void> {
    const keys = await this.listKeys();
    if (!keys.some((k) => k.id === keyId)) throw new CofferError('NOT_FOUND', `no key ${keyId}`);
    if (keyId === this.keyId)
      throw new CofferError(
        'KEY_IN_USE',
        `key ${keyId} is the one in use; open the repository with another key to remove it`,
      );
    if (keys.length <= 1) throw new CofferError('KEY_IN_USE', 'cannot remove the last key');
    await this.store.delete(keyBlob(keyId));
  }

  // ---- chunks

  // (the chunk store is `chunks`; these three stay for callers written before it)

  /** @deprecated use `chunks.has` */
  async hasChunk(idHex: string, op?: Op): Promise<boolean> {
    return this.chunks.has(idHex as ChunkId, op);
  }

  /** @deprecated use `chunks.putSealed` */
  async putChunkBlob(idHex: string, blob: Uint8Array, op?: Op): Promise<'created' | 'exists'> {
    return this.chunks.putSealed(idHex as ChunkId, blob, op);
  }

  /** @deprecated use `chunks.get` (reads and opens) or `chunks.getSealed` */
  async getChunkBlob(idHex: string, op?: Op): Promise<Buffer> {
    return this.chunks.getSealed(idHex as ChunkId, op);
  }

  // ---- indexes

  /** An index's id: the keyed digest of its plaintext, recorded in the manifest as its checksum. */
  indexId(indexBytes: Uint8Array): string {
    return keyedDigest(this.keys.idKey, indexBytes).toString('hex');
  }

  async putIndex(index: FixedIndex, op?: Op): Promise<string> {
    const id = this.indexId(index.bytes);
    const name = indexBlob(id);
    // object storage puts if absent in one request: no HEAD first (issue 19); elsewhere a present index is not sealed
    if (capabilityOf(this.store, 'putFirst') === undefined && (await this.store.stat(name, op))) return id;
    await this.store.put(
      name,
      sealObject(this.keys.encKey, 'index', id, index.bytes, this.config.compression.level),
      op,
    );
    return id;
  }

  /** Every stored index id with its size and time (garbage collection lists them). */
  async *indexEntries(op?: Op): AsyncIterable<{ id: string; sizeBytes: number; modifiedAt: Date }> {
    for await (const b of this.store.list(INDEXES_PREFIX, op)) {
      const hex = baseName(b.name);
      if (/^[0-9a-f]{64}$/.test(hex) && b.name === indexBlob(hex))
        yield { id: hex, sizeBytes: b.sizeBytes, modifiedAt: b.modifiedAt };
    }
  }

  /**
   * Deletes an index (garbage collection only). Its size, or undefined when it was not there; IMMUTABLE when locked.
   */
  async deleteIndex(id: string, op?: Op): Promise<number | undefined> {
    const st = await this.store.stat(indexBlob(id), op);
    if (!st) return undefined;
    await this.store.delete(indexBlob(id), op);
    return st.sizeBytes;
  }

  /** Copies an index blob unchanged from a repository with the same keys (see sharesKeysWith). */
  async copyIndexFrom(source: Repository, id: string, op?: Op): Promise<void> {
    await this.store.put(indexBlob(id), await source.store.get(indexBlob(id), undefined, op), op);
  }

  /** Loads and authenticates an index: its content must hash to its id (the manifest's checksum). */
  async loadIndex(id: string, op?: Op): Promise<FixedIndex> {
    let blob: Buffer;
    try {
      blob = await this.store.get(indexBlob(id), undefined, op);
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') {
        throw new CofferError('CORRUPT', `index ${id} is missing from the repository`, {
          details: { index: id, missing: true },
        });
      }
      throw e;
    }
    const plain = openObject(
      this.keys.encKey,
      'index',
      id,
      blob,
      FIXED_INDEX_HEADER_BYTES + FIXED_INDEX_MAX_ENTRIES * CHUNK_ID_BYTES,
    );
    if (this.indexId(plain) !== id) {
      throw new CofferError('CORRUPT', `index ${id}: content does not match its id`, { details: { index: id } });
    }
    return FixedIndex.decode(plain, id);
  }

  // ---- restore points

  async commitManifest(m: Manifest, op?: Op): Promise<void> {
    const blob = sealObject(this.keys.encKey, 'manifest', m.id, encodeManifest(m), this.config.compression.level);
    if ((await this.store.put(pointBlob(m.id), blob, op)) === 'exists') {
      throw new CofferError('INTERNAL', `restore point ${m.id} already exists`);
    }
  }

  async loadManifest(id: string, op?: Op): Promise<Manifest> {
    let blob: Buffer;
    try {
      blob = await this.store.get(pointBlob(id), undefined, op);
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND')
        throw new CofferError('NOT_FOUND', `no restore point ${id}`);
      throw e;
    }
    return decodeManifest(openObject(this.keys.encKey, 'manifest', id, blob, MAX_MANIFEST_BYTES), id);
  }

  /** Ids of all committed restore points (names only; no decryption). */
  async *pointIds(op?: Op): AsyncIterable<RestorePointId> {
    for await (const b of this.store.list(POINTS_PREFIX, op)) {
      const id = baseName(b.name);
      // not points/sub/<id>: only exact names are points
      if (HEX32.test(id) && b.name === pointBlob(id)) yield id as RestorePointId;
    }
  }

  async hasPoint(id: string, op?: Op): Promise<boolean> {
    return (await this.store.stat(pointBlob(id), op)) !== undefined;
  }

  /**
   * Deletes a restore point: its manifest, the commit point (FORMAT.md §0); its chunks and indexes become garbage
   * for prune. Rejects IMMUTABLE when the manifest is under a retention lock (the point stays whole).
   */
  async deletePoint(id: string, op?: Op): Promise<void> {
    await this.store.delete(pointBlob(id), op);
  }

  /** Copies a manifest unchanged from a repository with the same keys (its commit in this one). */
  async copyPointFrom(source: Repository, id: string, op?: Op): Promise<void> {
    await this.store.put(pointBlob(id), await source.store.get(pointBlob(id), undefined, op), op);
  }

  /** The storage retention lock on a point's manifest, if the store reports locks (DESIGN.md §Immutability). */
  async pointRetention(id: string, op?: Op): Promise<RetentionInfo | undefined> {
    return this.store.retention ? this.store.retention(pointBlob(id), op) : undefined;
  }

  /**
   * The referenced-ids walk: each restore point of `points` (ids, or manifests already loaded) with each of its
   * disk indexes, through the handlers (see point-walk.ts). Cancellation always stops it.
   */
  walkPoints(points: WalkSource, walk: PointWalk, op?: Op): Promise<void> {
    return walkPoints(this, points, walk, op);
  }

  /** The chunk and index ids referenced by these restore points (any unreadable manifest or index throws). */
  referencedIds(points: WalkSource, op?: Op, walk: Omit<PointWalk, 'onIndex'> = {}): Promise<ReferencedIds> {
    return referencedIds(this, points, walk, op);
  }

  // ---- holds (FORMAT.md §10)

  addHold(pointId: string, opts: { until?: string; reason?: string; now?: number } = {}, op?: Op): Promise<Hold> {
    return addHold(this.store, pointId, opts, op);
  }

  listHolds(pointId?: string, op?: Op): Promise<Hold[]> {
    return listHolds(this.store, pointId, op);
  }

  removeHolds(pointId: string, op?: Op): Promise<number> {
    return removeHolds(this.store, pointId, op);
  }

  /**
   * Loads every restore point, oldest first. Unreadable manifests are reported through `onError`
   * (default: thrown), so listing can go on past one damaged point.
   */
  async listPoints(op?: Op, onError?: (id: string, e: CofferError) => void): Promise<Manifest[]> {
    const out: Manifest[] = [];
    // up to LIST_POINTS_IN_FLIGHT manifests are read at once: one after the other, a proxy's first backup against a
    // distant object store waited a round trip per restore point of the whole repository (issue 19)
    const window = new TaskWindow(LIST_POINTS_IN_FLIGHT);
    try {
      for await (const id of this.pointIds(op)) {
        await window.run(async () => {
          try {
            out.push(await this.loadManifest(id, op));
          } catch (e) {
            if (!onError || !(e instanceof CofferError) || e.code === 'CANCELLED') throw e;
            onError(id, e);
          }
        });
      }
      await window.drain();
    } catch (e) {
      await window.settle();
      throw e;
    }
    return out.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id));
  }

  /** Resolves a full id or a unique prefix (at least 4 hex chars), or 'latest'. */
  async resolvePoint(ref: string, op?: Op): Promise<string> {
    if (ref === 'latest') {
      const all = await this.listPoints(op);
      const last = all.at(-1);
      if (!last) throw new CofferError('NOT_FOUND', 'the repository has no restore points');
      return last.id;
    }
    if (!/^[0-9a-f]{4,32}$/.test(ref))
      throw new CofferError('USAGE', `${JSON.stringify(ref)} is not a restore point id`);
    const matches: string[] = [];
    for await (const id of this.pointIds(op)) if (id.startsWith(ref)) matches.push(id);
    if (matches.length === 0) throw new CofferError('NOT_FOUND', `no restore point ${ref}`);
    if (matches.length > 1)
      throw new CofferError('AMBIGUOUS', `${ref} matches ${matches.length} restore points`, { details: { matches } });
    return matches[0]!;
  }

  // ---- verification records (FORMAT.md §8)

  /** Records the outcome of verifying one restore point. Append-only: each run adds a record. */
  async recordVerification(pointId: string, result: VerificationRecord, op?: Op): Promise<void> {
    const time = Date.parse(result.time);
    await this.store.put(verificationBlob(pointId, time, result.ok), Buffer.from(JSON.stringify(result)), op);
  }

  /** The newest verification outcome of a restore point, from blob names only. */
  async lastVerification(pointId: string, op?: Op): Promise<{ time: string; ok: boolean } | undefined> {
    let best: { ms: number; ok: boolean } | undefined;
    for await (const b of this.store.list(`${VERIFICATIONS_PREFIX}${pointId}/`, op)) {
      const m = /\/(\d{15})-(ok|failed)$/.exec(b.name);
      if (!m || b.name !== verificationBlob(pointId, Number(m[1]), m[2] === 'ok')) continue;
      const ms = Number(m[1]);
      // two records in the same millisecond: the failed one wins (the safe side)
      if (!best || ms > best.ms || (ms === best.ms && m[2] === 'failed')) best = { ms, ok: m[2] === 'ok' };
    }
    return best ? { time: new Date(best.ms).toISOString(), ok: best.ok } : undefined;
  }

  // ---- recoverability check records (FORMAT.md §8.1)

  /** Records the outcome of a recoverability check (`coffer check`) of one restore point. Append-only. */
  async recordCheck(pointId: string, record: { time: string; ok: boolean }, op?: Op): Promise<void> {
    const time = Date.parse(record.time);
    await this.store.put(checkBlob(pointId, time, record.ok), Buffer.from(JSON.stringify(record)), op);
  }

  /** The newest check outcome of a restore point, from blob names only (a failed record wins a tie). */
  async lastCheck(pointId: string, op?: Op): Promise<{ time: string; ok: boolean } | undefined> {
    let best: { ms: number; ok: boolean } | undefined;
    for await (const b of this.store.list(`${CHECKS_PREFIX}${pointId}/`, op)) {
      const m = /\/(\d{15})-(ok|failed)$/.exec(b.name);
      if (!m || b.name !== checkBlob(pointId, Number(m[1]), m[2] === 'ok')) continue;
      const ms = Number(m[1]);
      if (!best || ms > best.ms || (ms === best.ms && m[2] === 'failed')) best = { ms, ok: m[2] === 'ok' };
    }
    return best ? { time: new Date(best.ms).toISOString(), ok: best.ok } : undefined;
  }

  // ---- file-level indicator records (FORMAT.md §8.2)

  /** Records the file-level ransomware indicators found in one restore point (`coffer check --files`). Append-only. */
  async recordIndicators(pointId: string, record: { time: string; found: boolean }, op?: Op): Promise<void> {
    const time = Date.parse(record.time);
    await this.store.put(indicatorsBlob(pointId, time, record.found), Buffer.from(JSON.stringify(record)), op);
  }

  /** The newest indicators outcome of a restore point, from blob names only (`found` wins a tie). */
  async lastIndicators(pointId: string, op?: Op): Promise<{ time: string; found: boolean } | undefined> {
    let best: { ms: number; found: boolean } | undefined;
    for await (const b of this.store.list(`${INDICATORS_PREFIX}${pointId}/`, op)) {
      const m = /\/(\d{15})-(found|none)$/.exec(b.name);
      if (!m || b.name !== indicatorsBlob(pointId, Number(m[1]), m[2] === 'found')) continue;
      const ms = Number(m[1]);
      if (!best || ms > best.ms || (ms === best.ms && m[2] === 'found')) best = { ms, found: m[2] === 'found' };
    }
    return best ? { time: new Date(best.ms).toISOString(), found: best.found } : undefined;
  }

  /** The newest check record of a restore point, parsed (undefined if none or unreadable). */
  async lastCheckRecord(pointId: string, op?: Op): Promise<unknown> {
    const last = await this.lastCheck(pointId, op);
    if (!last) return undefined;
    try {
      const name = checkBlob(pointId, Date.parse(last.time), last.ok);
      return JSON.parse((await this.store.get(name, undefined, op)).toString('utf8'));
    } catch {
      return undefined;
    }
  }

  /**
   * The newest record of each restore point whose newest verification failed (FORMAT.md §8), parsed; records deleted
   * meanwhile or unreadable are skipped (records describe, nothing depends on them).
   */
  async *newestFailedVerifications(op?: Op): AsyncIterable<{ pointId: string; problems?: unknown }> {
    const newest = new Map<string, { ms: number; name: string; ok: boolean }>();
    for await (const b of this.store.list(VERIFICATIONS_PREFIX, op)) {
      const m = /^verifications\/([0-9a-f]{32})\/(\d{15})-(ok|failed)$/.exec(b.name);
      if (!m) continue;
      const ms = Number(m[2]);
      const cur = newest.get(m[1]!);
      if (!cur || ms > cur.ms || (ms === cur.ms && m[3] === 'failed'))
        newest.set(m[1]!, { ms, name: b.name, ok: m[3] === 'ok' });
    }
    for (const [pointId, rec] of newest) {
      if (rec.ok) continue;
      let doc: { problems?: unknown };
      try {
        doc = JSON.parse((await this.store.get(rec.name as never, undefined, op)).toString('utf8'));
      } catch {
        continue;
      }
      yield { pointId, problems: doc?.problems };
    }
  }

  newPointId(): RestorePointId {
    return randomBytes(16).toString('hex') as RestorePointId;
  }

  // ---- storage facts (statistics, retention locks)

  /** Bytes stored in all, in chunks, and the number of chunks (one listing of the whole repository). */
  async storedBytes(op?: Op): Promise<{ storedBytes: number; chunkBytes: number; chunks: number }> {
    let storedBytes = 0;
    let chunkBytes = 0;
    let chunks = 0;
    for await (const b of this.store.list('', op)) {
      storedBytes += b.sizeBytes;
      if (b.name.startsWith('chunks/')) {
        chunkBytes += b.sizeBytes;
        chunks++;
      }
    }
    return { storedBytes, chunkBytes, chunks };
  }

  /**
   * Retention locks on the objects of restore points (engine/lock.ts; DESIGN.md §Immutability). USAGE when the store
   * cannot hold locks.
   */
  retentionLocks(): ObjectLocks {
    const store = capabilityOf(this.store, 'locks');
    if (!store) {
      throw new CofferError('USAGE', `${this.store.location} does not support retention locks`, {
        hint:
          'use an Azure container with version-level immutability or an S3 bucket with Object Lock; a local ' +
          'repository can be made append-only (`coffer init --append-only`)',
      });
    }
    const name = (o: ObjectRef) =>
      o.kind === 'chunk' ? chunkBlob(o.id) : o.kind === 'index' ? indexBlob(o.id) : pointBlob(o.id);
    return {
      retention: (o, op) => store.retention(name(o), op),
      lock: (o, req, op) => store.lock(name(o), req, op),
    };
  }

  // ---- leases

  /** Scope name for per-VM work, keyed so that lock names do not reveal VM names. */
  vmScope(vmName: string): string {
    return `vm-${keyedDigest(this.keys.macKey, Buffer.from(`vm:${vmName}`))
      .toString('hex')
      .slice(0, 32)}`;
  }

  async acquireLease(scope: string, operation: string, opts: LeaseOptions = {}): Promise<Lease> {
    return Lease.acquire(this.store, scope, operation, { logger: this.logger, ...opts });
  }
}
