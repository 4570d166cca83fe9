import { CofferError } from '../shared/index.js';
import type { BlobStore } from './blob-store.js';
import type { Locking, Tiering } from './capabilities.js';

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
export type TieredBlobStore = BlobStore & Tiering;

export interface LockRequest {
  /** retention until this time (cannot be shortened or removed before it passes) */
  until?: Date;
  /** a legal hold (until removed) */
  legalHold?: boolean;
}

/** A store that can put retention locks on blobs (Azure version-level immutability, S3 Object Lock, append-only). */
export type LockingBlobStore = BlobStore & Locking;

export { capabilityOf, hasServerSideCopy, isLocking, isTiered, type ServerSideCopy } from './capabilities.js';
export { innermost } from './forwarding-blob-store.js';

/**
 * A lock request the service refused because the container or bucket cannot hold locks (no version-level
 * immutability, no Object Lock, an emulator's 501) becomes a USAGE error with `hint`; anything else is returned as is.
 */
export function lockRefusal(e: unknown, location: string, hint: string): unknown {
  if (
    e instanceof CofferError &&
    (e.details.unsupported ||
      ['InvalidRequest', 'ImmutableStorageWithVersioningNotEnabled', 'ObjectLockConfigurationNotFoundError'].includes(
        e.details.serviceCode as string,
      ))
  ) {
    return new CofferError('USAGE', `${location} cannot hold retention locks: ${e.message}`, {
      hint,
      details: e.details,
      cause: e,
    });
  }
  return e;
}
