import { CofferError, type BlobName, type Op } from '../../shared/index.js';
import type { BlobInfo, BlobStore, ByteRange, RetentionInfo } from '../blob-store.js';
import { ownCapabilities, type CapableBlobStore } from '../capabilities.js';
import type { LockRequest, LockingBlobStore } from '../cloud-store.js';

/**
 * A test double for retention locks, which Azurite and s3rver do not implement (they answer 501). It enforces what
 * Azure documents for version-level immutability with a Locked policy and legal holds, and S3 for Object Lock in
 * COMPLIANCE mode, on top of any store:
 * - a locked blob cannot be deleted (Azure 409 BlobImmutableDueToPolicy / S3 AccessDenied: here IMMUTABLE) nor
 *   overwritten; the lock holds until its time passes (by the injected clock) or, for a hold, until cleared;
 * - a Locked policy can be extended but not shortened (the service rejects a shorter one; here: an error);
 * - locking a missing blob is NOT_FOUND.
 */
export class RetentionEnforcingBlobStore implements CapableBlobStore, LockingBlobStore {
  readonly capability = ownCapabilities(this, ['locks']);
  readonly location: string;
  private readonly locks = new Map<string, { until?: number; hold: boolean }>();
  /** requests that tried to shorten a lock (must stay 0: Coffer never asks) */
  shortenAttempts = 0;

  constructor(
    readonly inner: BlobStore,
    private readonly now: () => number = Date.now,
  ) {
    this.location = inner.location;
  }

  put(name: BlobName, data: Uint8Array, op?: Op): Promise<'created' | 'exists'> {
    return this.inner.put(name, data, op);
  }
  get(name: BlobName, range?: ByteRange, op?: Op): Promise<Buffer> {
    return this.inner.get(name, range, op);
  }
  stat(name: BlobName, op?: Op): Promise<BlobInfo | undefined> {
    return this.inner.stat(name, op);
  }
  list(prefix: string, op?: Op): AsyncIterable<BlobInfo> {
    return this.inner.list(prefix, op);
  }

  async delete(name: BlobName, op?: Op): Promise<void> {
    const r = await this.retention(name, op);
    if (r)
      throw new CofferError(
        'IMMUTABLE',
        `blob ${name} is locked (${r.legalHold ? 'legal hold' : `until ${r.lockedUntil}`})`,
        { details: { blob: name, ...r } },
      );
    this.locks.delete(name);
    return this.inner.delete(name, op);
  }

  async retention(name: BlobName, op?: Op): Promise<RetentionInfo | undefined> {
    const l = this.locks.get(name);
    if (!l || !(await this.inner.stat(name, op))) return undefined;
    const active = l.until !== undefined && l.until > this.now();
    if (!active && !l.hold) return undefined;
    return { ...(active ? { lockedUntil: new Date(l.until!).toISOString() } : {}), legalHold: l.hold };
  }

  async lock(name: BlobName, req: LockRequest, op?: Op): Promise<void> {
    if (!(await this.inner.stat(name, op))) throw new CofferError('NOT_FOUND', `blob ${name} not found`);
    const l = this.locks.get(name) ?? { hold: false };
    if (req.until) {
      const t = req.until.getTime();
      if (l.until !== undefined && l.until > this.now() && t < l.until) {
        this.shortenAttempts++;
        throw new CofferError('IMMUTABLE', `the lock of ${name} cannot be shortened`);
      }
      l.until = t;
    }
    if (req.legalHold) l.hold = true;
    this.locks.set(name, l);
  }

  /** Clears a legal hold (an administrator's action outside Coffer). */
  clearHold(name: string): void {
    const l = this.locks.get(name);
    if (l) l.hold = false;
  }
}
