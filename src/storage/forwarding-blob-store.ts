import type { BlobName, Op } from '../shared/index.js';
import type { BlobInfo, BlobStore, ByteRange, RetentionInfo } from './blob-store.js';
import { capabilityOf, type CapabilityName, type CapableBlobStore, type StoreCapabilities } from './capabilities.js';

/**
 * Base of the store wrappers (retrying, throttled, caching, append-only): every call goes to `inner` unless the
 * wrapper overrides it, and so does every optional capability (`capability`, see capabilities.ts). `unwrap()` gives
 * the wrapped store (restic's Unwrapper). A wrapper changes a capability by overriding `capability`; `localFiles`
 * (reading the blobs' files directly) passes only through a wrapper that does not override `get`.
 */
export class ForwardingBlobStore implements CapableBlobStore {
  constructor(readonly inner: BlobStore) {}

  get location(): string {
    return this.inner.location;
  }

  unwrap(): BlobStore {
    return this.inner;
  }

  capability<K extends CapabilityName>(key: K): StoreCapabilities[K] | undefined {
    // reading the files directly would bypass a wrapper that changes reads (a subclass overriding `get`)
    if (key === 'localFiles' && this.get !== ForwardingBlobStore.prototype.get) return undefined;
    return capabilityOf(this.inner, key);
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
  delete(name: BlobName, op?: Op): Promise<void> {
    return this.inner.delete(name, op);
  }
  retention(name: BlobName, op?: Op): Promise<RetentionInfo | undefined> {
    return this.inner.retention ? this.inner.retention(name, op) : Promise.resolve(undefined);
  }
}

/** The store under every wrapper. */
export function innermost(s: BlobStore): BlobStore {
  while (s instanceof ForwardingBlobStore) s = s.unwrap();
  return s;
}
