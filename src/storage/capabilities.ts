import type { BlobName, Op } from '../shared/index.js';
import type { BlobStore, RetentionInfo } from './blob-store.js';

/** Access tiers of object storage (Azure names; S3 maps them to storage classes). */
export type AccessTier = 'Hot' | 'Cool' | 'Cold' | 'Archive';
export const ACCESS_TIERS: readonly AccessTier[] = ['Hot', 'Cool', 'Cold', 'Archive'];
export type RehydratePriority = 'Standard' | 'High';

export interface TierInfo {
  tier: AccessTier | undefined;
  /** set while an archived blob is being rehydrated (it stays unreadable until the copy is done) */
  rehydratingTo?: AccessTier;
  rehydratePriority?: RehydratePriority;
  /** when the blob entered its tier (early-deletion charges run from here) */
  tierChangedAt?: Date;
}

export interface LockRequest {
  /** retention until this time (cannot be shortened or removed before it passes) */
  until?: Date;
  /** a legal hold (until removed) */
  legalHold?: boolean;
}

/** Access tiers (Azure Blob, S3 storage classes). */
export interface Tiering {
  tierOf(name: BlobName, op?: Op): Promise<TierInfo | undefined>;
  /**
   * Moves a blob to a tier. From Archive to an online tier this starts a rehydration (hours on Azure:
   * Standard up to 15 h, High under 1 h for blobs under 10 GB) and resolves at once; poll tierOf.
   */
  setTier(name: BlobName, tier: AccessTier, opts?: { priority?: RehydratePriority }, op?: Op): Promise<void>;
}

/** Retention locks (Azure version-level immutability, S3 Object Lock, append-only). */
export interface Locking {
  /**
   * Locks a blob. Services refuse to shorten a lock (Azure Locked policies, S3 COMPLIANCE): callers ask `retention`
   * first and only extend (engine/lock.ts).
   */
  lock(name: BlobName, req: LockRequest, op?: Op): Promise<void>;
  retention(name: BlobName, op?: Op): Promise<RetentionInfo | undefined>;
}

/** Copying a blob from another store of its kind without the bytes passing through this machine. */
export interface ServerSideCopy {
  /** Copies `name` from `source` if absent; undefined when this pair cannot (then the caller copies the bytes). */
  serverSideCopyFrom(source: BlobStore, name: BlobName, op?: Op): Promise<'created' | 'exists' | undefined>;
}

/** Temporary files of crashed puts that the store keeps and can sweep (a local directory). */
export interface TempFiles {
  /** Removes temporary files older than `maxAgeMs`; returns how many. */
  sweepTemp(maxAgeMs: number, now?: number): Promise<number>;
}

/**
 * Put-if-absent in one request, whose `exists` answer costs no more requests than a `stat` would (object storage:
 * Put Blob / PutObject with If-None-Match: *). A writer of blobs that are probably new (a full backup's chunks) puts
 * without looking first: one request a new blob instead of two. Where a put of a present name is dearer than a stat
 * (a local directory writes and fsyncs a temporary file first) the store does not offer it.
 */
export interface PutFirst {
  readonly putAnswersExists: true;
}

/**
 * Blobs that are plain files on this machine, each whole at one path (a local directory). A reader that does its own
 * synchronous I/O off the main thread (a restore's codec workers: read, open and write a chunk in one step) reads
 * them there instead of through `get`. Wrappers that change how reads behave (throttling, fault injection) hide it.
 */
export interface LocalFiles {
  /** The file holding blob `name` (whether it exists or not). */
  fileOf(name: BlobName): string;
}

/** The optional capabilities of a store, by name. */
export interface StoreCapabilities {
  tiers: Tiering;
  locks: Locking;
  serverSideCopy: ServerSideCopy;
  tempFiles: TempFiles;
  putFirst: PutFirst;
  localFiles: LocalFiles;
}
export type CapabilityName = keyof StoreCapabilities;

/**
 * A store that answers which optional capabilities it has (restic's AsBackend, by capability). A backend answers for
 * itself; a wrapper (ForwardingBlobStore) for itself and what it wraps, adapting (retries), replacing (append-only
 * locks) or hiding (throttling hides server-side copy) a capability as it needs.
 */
export interface CapableBlobStore extends BlobStore {
  capability<K extends CapabilityName>(key: K): StoreCapabilities[K] | undefined;
}

/** The capability `key` of a store (through its wrappers), or undefined when it has none. */
export function capabilityOf<K extends CapabilityName>(store: BlobStore, key: K): StoreCapabilities[K] | undefined {
  const s = store as Partial<CapableBlobStore>;
  return typeof s.capability === 'function' ? s.capability(key) : undefined;
}

/** For a backend's `capability`: itself for the capabilities it lists, undefined for the others. */
export function ownCapabilities<S>(self: S, keys: readonly CapabilityName[]) {
  return <K extends CapabilityName>(key: K): StoreCapabilities[K] | undefined =>
    keys.includes(key) ? (self as unknown as StoreCapabilities[K]) : undefined;
}

export function isTiered(s: BlobStore): boolean {
  return capabilityOf(s, 'tiers') !== undefined;
}

export function isLocking(s: BlobStore): boolean {
  return capabilityOf(s, 'locks') !== undefined;
}

export function hasServerSideCopy(s: BlobStore): boolean {
  return capabilityOf(s, 'serverSideCopy') !== undefined;
}
