import { CofferError, type BlobName, type Op } from '../shared/index.js';
import type { BlobInfo, BlobStore, ByteRange, RetentionInfo } from './blob-store.js';
import { forwardCapabilities, isLocking, type LockRequest, type LockingBlobStore } from './cloud-store.js';

/** The marker blob of an append-only repository (FORMAT.md §9). */
export const APPEND_ONLY_BLOB = 'append-only' as BlobName;

/**
 * An append-only repository (`coffer init --append-only`, FORMAT.md §9): deleting any blob except leases
 * (`locks/`) and GC bookkeeping (`gc/`, FORMAT.md §11) rejects with IMMUTABLE, so forget/prune/GC keep everything. Protects against a compromised or mistaken
 * Coffer, not against someone with direct write access to the directory (use a cloud retention lock for that).
 * Every blob counts as held: `lock` is accepted and changes nothing.
 */
export class AppendOnlyBlobStore implements BlobStore, LockingBlobStore {
  readonly location: string;
  readonly locking = true as const;

  constructor(readonly inner: BlobStore) {
    this.location = inner.location;
    forwardCapabilities(this, inner);
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
    // leases and GC bookkeeping (rescues, condemned generations) hold no data: deleting them loses nothing
    if (name.startsWith('locks/') || name.startsWith('gc/')) return this.inner.delete(name, op);
    op?.signal?.throwIfAborted();
    if (!(await this.inner.stat(name, op))) return;
    throw new CofferError('IMMUTABLE', `${this.location} is append-only: ${name} cannot be deleted`, {
      hint: 'the repository was created with --append-only; nothing in it is ever deleted by Coffer',
      details: { blob: name, appendOnly: true },
    });
  }
  /** The store's own lock if it has one (a cloud repository can be append-only and locked), else a "hold". */
  async retention(name: BlobName, op?: Op): Promise<RetentionInfo | undefined> {
    const own = this.inner.retention ? await this.inner.retention(name, op) : undefined;
    if (own) return own;
    if (name.startsWith('locks/') || name.startsWith('gc/') || !(await this.inner.stat(name, op))) return undefined;
    return { legalHold: true };
  }
  async lock(name: BlobName, req: LockRequest, op?: Op): Promise<void> {
    if (isLocking(this.inner)) return this.inner.lock(name, req, op);
    if (!(await this.inner.stat(name, op))) throw new CofferError('NOT_FOUND', `blob ${name} not found`);
  }
}
