import { sleep, type BlobName, type Op } from '../shared/index.js';
import type { BlobStore } from './blob-store.js';
import type { CapabilityName, StoreCapabilities } from './capabilities.js';
import { ForwardingBlobStore } from './forwarding-blob-store.js';

/**
 * Caps the upload rate (bytes/s summed over all puts in flight): each put waits for its share of a token bucket
 * before it starts (`coffer copy --limit-upload`). Reads, lists and deletes pass through.
 */
export class ThrottledBlobStore extends ForwardingBlobStore {
  private next = 0;

  constructor(
    inner: BlobStore,
    private readonly bytesPerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    super(inner);
  }

  /** No server-side copies: they would bypass the cap (and the bytes do not pass here anyway). */
  override capability<K extends CapabilityName>(key: K): StoreCapabilities[K] | undefined {
    return key === 'serverSideCopy' ? undefined : super.capability(key);
  }

  private async take(bytes: number, op?: Op): Promise<void> {
    const t = this.now();
    const start = Math.max(t, this.next);
    this.next = start + (bytes / this.bytesPerSecond) * 1000;
    const wait = start - t;
    if (wait > 0) await sleep(wait, { signal: op?.signal });
  }

  override async put(name: BlobName, data: Uint8Array, op?: Op): Promise<'created' | 'exists'> {
    await this.take(data.length, op);
    return this.inner.put(name, data, op);
  }
}
