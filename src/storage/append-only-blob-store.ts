import { CofferError, type BlobName, type Op } from '../shared/index.js';
import type { BlobStore, RetentionInfo } from './blob-store.js';
import { capabilityOf, type CapabilityName, type Locking, type StoreCapabilities } from './capabilities.js';
import type { LockRequest } from './cloud-store.js';
import { ForwardingBlobStore } from './forwarding-blob-store.js';

/** The marker blob of an append-only repository (FORMAT.md §9). */
export const APPEND_ONLY_BLOB = 'append-only' as BlobName;

/**
 * An append-only repository (`coffer init --append-only`, FORMAT.md §9): deleting any blob except leases
 * (`locks/`) and GC bookkeeping (`gc/`, FORMAT.md §11) rejects with IMMUTABLE, so forget/prune/GC keep everything.
 * Protects against a compromised or mistaken Coffer, not against someone with direct write access to the directory (use
 * a cloud retention lock for that). Every blob counts as held: `lock` is accepted and changes nothing.
 */
export class AppendOnlyBlobStore extends ForwardingBlobStore implements Locking {
  constructor(inner: BlobStore) {
    super(inner);
  }

  /** Locks are its own (every blob counts as held); every other capability is the wrapped store's. */
  override capability<K extends CapabilityName>(key: K): StoreCapabilities[K] | undefined {
    return key === 'locks' ? (this as Locking as StoreCapabilities[K]) : super.capability(key);
  }

  override async delete(name: BlobName, op?: Op): Promise<void> {
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
  override async retention(name: BlobName, op?: Op): Promise<RetentionInfo | undefined> {
    const own = this.inner.retention ? await this.inner.retention(name, op) : undefined;
    if (own) return own;
    if (name.startsWith('locks/') || name.startsWith('gc/') || !(await this.inner.stat(name, op))) return undefined;
    return { legalHold: true };
  }
  async lock(name: BlobName, req: LockRequest, op?: Op): Promise<void> {
    const locks = capabilityOf(this.inner, 'locks');
    if (locks) return locks.lock(name, req, op);
    if (!(await this.inner.stat(name, op))) throw new CofferError('NOT_FOUND', `blob ${name} not found`);
  }
}
