import { CofferError, type BlobName, type Op } from '../shared/index.js';
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

/** A store whose blobs have access tiers (Azure Blob, S3 storage classes). */
export interface TieredBlobStore extends BlobStore {
  readonly tiered: true;
  tierOf(name: BlobName, op?: Op): Promise<TierInfo | undefined>;
  /**
   * Moves a blob to a tier. From Archive to an online tier this starts a rehydration (hours on Azure:
   * Standard up to 15 h, High under 1 h for blobs under 10 GB) and resolves at once; poll tierOf.
   */
  setTier(name: BlobName, tier: AccessTier, opts?: { priority?: RehydratePriority }, op?: Op): Promise<void>;
}

export interface LockRequest {
  /** retention until this time (cannot be shortened or removed before it passes) */
  until?: Date;
  /** a legal hold (until removed) */
  legalHold?: boolean;
}

/** A store that can put retention locks on blobs (Azure version-level immutability, S3 Object Lock, append-only). */
export interface LockingBlobStore extends BlobStore {
  readonly locking: true;
  /**
   * Locks a blob. Services refuse to shorten a lock (Azure Locked policies, S3 COMPLIANCE): callers ask `retention`
   * first and only extend (engine/lock.ts).
   */
  lock(name: BlobName, req: LockRequest, op?: Op): Promise<void>;
  retention(name: BlobName, op?: Op): Promise<RetentionInfo | undefined>;
}

export function isTiered(s: BlobStore): s is TieredBlobStore {
  return (s as Partial<TieredBlobStore>).tiered === true;
}

export function isLocking(s: BlobStore): s is LockingBlobStore {
  return (s as Partial<LockingBlobStore>).locking === true;
}

/** A store that can copy a blob from another store of its kind without the bytes passing through this machine. */
export interface ServerSideCopy {
  /** Copies `name` from `source` if absent; undefined when this pair cannot (then the caller copies the bytes). */
  serverSideCopyFrom(source: BlobStore, name: BlobName, op?: Op): Promise<'created' | 'exists' | undefined>;
}

export function hasServerSideCopy(s: BlobStore): s is BlobStore & ServerSideCopy {
  return typeof (s as Partial<ServerSideCopy>).serverSideCopyFrom === 'function';
}

/** The store under wrappers (RetryingBlobStore, ThrottledBlobStore...): wrappers expose it as `inner`. */
export function innermost(s: BlobStore): BlobStore {
  let x = s as BlobStore & { inner?: BlobStore };
  while (x.inner) x = x.inner as BlobStore & { inner?: BlobStore };
  return x;
}

const FLAGS = ['tiered', 'locking'] as const;
const METHODS = ['retention', 'lock', 'tierOf', 'setTier', 'serverSideCopyFrom'] as const;

/**
 * Gives a wrapper the optional capabilities of the store it wraps (tiers, locks, server-side copy), delegating to it,
 * except methods the wrapper defines itself and those in `except`. Wrappers stay transparent to `isTiered` etc.
 */
export function forwardCapabilities(wrapper: BlobStore, inner: BlobStore, except: readonly string[] = []): void {
  const w = wrapper as unknown as Record<string, unknown>;
  const i = inner as unknown as Record<string, unknown>;
  for (const f of FLAGS) if (i[f] === true && !except.includes(f)) w[f] = true;
  for (const m of METHODS) {
    if (typeof i[m] === 'function' && typeof w[m] !== 'function' && !except.includes(m)) w[m] = (i[m] as (...a: unknown[]) => unknown).bind(inner);
  }
}

/**
 * A lock request the service refused because the container or bucket cannot hold locks (no version-level
 * immutability, no Object Lock, an emulator's 501) becomes a USAGE error with `hint`; anything else is returned as is.
 */
export function lockRefusal(e: unknown, location: string, hint: string): unknown {
  if (
    e instanceof CofferError &&
    (e.details.unsupported || ['InvalidRequest', 'ImmutableStorageWithVersioningNotEnabled', 'ObjectLockConfigurationNotFoundError'].includes(e.details.serviceCode as string))
  ) {
    return new CofferError('USAGE', `${location} cannot hold retention locks: ${e.message}`, { hint, details: e.details, cause: e });
  }
  return e;
}
