import { CofferError } from '../shared/index.js';
import type { BlobStore } from './blob-store.js';
import type { Locking, Tiering } from './capabilities.js';

export type { AccessTier, LockRequest, RehydratePriority, TierInfo } from './capabilities.js';
export { ACCESS_TIERS } from './capabilities.js';

/** A store whose blobs have access tiers (Azure Blob, S3 storage classes). */
export type TieredBlobStore = BlobStore & Tiering;

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
