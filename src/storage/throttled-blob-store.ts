import type { BlobName, Op } from '../shared/index.js';
import type { BlobInfo, BlobStore, ByteRange } from './blob-store.js';
import { forwardCapabilities } from './cloud-store.js';

/**
 * Caps the upload rate (bytes/s summed over all puts in flight): each put waits for its share of a token bucket
 * before it starts (`coffer copy --limit-upload`). Reads, lists and deletes pass through.
 */
export class ThrottledBlobStore implements BlobStore {
  readonly location: string;
  private next = 0;

  constructor(
    readonly inner: BlobStore,
    private readonly bytesPerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.location = inner.location;
    // no server-side copies: they would bypass the cap (and the bytes do not pass here anyway)
    forwardCapabilities(this, inner, ['serverSideCopyFrom']);
  }

  private async take(bytes: number, op?: Op): Promise<void> {
    const t = this.now();
    const start = Math.max(t, this.next);
    this.next = start + (bytes / this.bytesPerSecond) * 1000;
    const wait = start - t;
    if (wait > 0) await new Promise<void>((r, j) => {
      const timer = setTimeout(r, wait);
      op?.signal?.addEventListener('abort', () => (clearTimeout(timer), j(op.signal!.reason)), { once: true });
    });
  }

  async put(name: BlobName, data: Uint8Array, op?: Op): Promise<'created' | 'exists'> {
    await this.take(data.length, op);
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
}
