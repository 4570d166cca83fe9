import { CofferError, type BlobName, type Op } from '../../shared/index.js';
import type { BlobInfo, BlobStore, ByteRange } from '../blob-store.js';
import { ownCapabilities, type CapableBlobStore } from '../capabilities.js';
import type { AccessTier, RehydratePriority, TierInfo, TieredBlobStore } from '../cloud-store.js';

/** Azure's documented rehydration times (upper bounds used by the double): Standard up to 15 h, High under 1 h. */
export const REHYDRATE_MS: Record<RehydratePriority, number> = { Standard: 15 * 3_600_000, High: 3_600_000 };

/**
 * A test double for the Archive tier as Azure documents it (Azurite flips tiers at once): tiers are kept here, over
 * any store. Reading an archived blob fails like Azure's 409 BlobArchived (ARCHIVED); moving it to an online tier
 * starts a rehydration that ends after REHYDRATE_MS[priority] by the injected clock, during which the blob stays
 * archived and unreadable and reports archiveStatus rehydrate-pending-to-<tier>.
 */
export class ArchiveEnforcingBlobStore implements CapableBlobStore, TieredBlobStore {
  readonly capability = ownCapabilities(this, ['tiers']);
  readonly location: string;
  private readonly tiers = new Map<
    string,
    { tier: AccessTier; pending?: { to: AccessTier; priority: RehydratePriority; doneAt: number } }
  >();
  /** setTier calls (tests check that metadata is never moved) */
  readonly moves: { name: string; tier: AccessTier }[] = [];

  constructor(
    readonly inner: BlobStore,
    private readonly now: () => number = Date.now,
  ) {
    this.location = inner.location;
  }

  private state(name: string) {
    const s = this.tiers.get(name);
    if (s?.pending && this.now() >= s.pending.doneAt) {
      s.tier = s.pending.to;
      delete s.pending;
    }
    return s;
  }

  put(name: BlobName, data: Uint8Array, op?: Op): Promise<'created' | 'exists'> {
    return this.inner.put(name, data, op);
  }
  async get(name: BlobName, range?: ByteRange, op?: Op): Promise<Buffer> {
    if (this.state(name)?.tier === 'Archive') {
      throw new CofferError('ARCHIVED', `blob ${name} is in the Archive tier`, {
        details: { blob: name, status: 409, serviceCode: 'BlobArchived' },
      });
    }
    return this.inner.get(name, range, op);
  }
  stat(name: BlobName, op?: Op): Promise<BlobInfo | undefined> {
    return this.inner.stat(name, op);
  }
  list(prefix: string, op?: Op): AsyncIterable<BlobInfo> {
    return this.inner.list(prefix, op);
  }
  async delete(name: BlobName, op?: Op): Promise<void> {
    this.tiers.delete(name);
    return this.inner.delete(name, op);
  }
  async tierOf(name: BlobName, op?: Op): Promise<TierInfo | undefined> {
    if (!(await this.inner.stat(name, op))) return undefined;
    const s = this.state(name);
    if (!s) return { tier: 'Hot' };
    return {
      tier: s.tier,
      ...(s.pending ? { rehydratingTo: s.pending.to, rehydratePriority: s.pending.priority } : {}),
    };
  }
  async setTier(name: BlobName, tier: AccessTier, opts: { priority?: RehydratePriority } = {}, op?: Op): Promise<void> {
    if (!(await this.inner.stat(name, op))) throw new CofferError('NOT_FOUND', `blob ${name} not found`);
    this.moves.push({ name, tier });
    const s = this.state(name) ?? { tier: 'Hot' as AccessTier };
    if (s.tier === 'Archive' && tier !== 'Archive') {
      if (s.pending) throw new CofferError('IO', `blob ${name} is already being rehydrated`); // Azure: 409
      const priority = opts.priority ?? 'Standard';
      s.pending = { to: tier, priority, doneAt: this.now() + REHYDRATE_MS[priority] };
    } else {
      s.tier = tier;
    }
    this.tiers.set(name, s);
  }
}
