// Shared pieces of the concurrency stress tests (gc-stress, copy-gc): an in-memory disk, deterministic data and
// randomness, and a store that adds random latency to widen race windows.
import { createHash } from 'node:crypto';
import type { BlobName, Op } from '../../src/shared/index.js';
import type { BlobInfo, BlobStore, ByteRange, CapabilityName, StoreCapabilities } from '../../src/storage/index.js';

export { BufferSource } from '../../src/sources/testing/buffer-source.js';

/** `size` bytes of deterministic, incompressible data named by n (the same n gives the same chunk, so it dedups). */
export function pattern(n: number | string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let o = 0; o < size; o += 32) createHash('sha256').update(`p${n}:${o}`).digest().copy(out, o);
  return out;
}

/** A small deterministic PRNG (tests are reproducible from the seed printed on failure). */
export function rng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/**
 * Random latency on every store call (0-4 ms): widens the windows between a writer's look and its commit.
 * `putFirst`: the store says put-if-absent answers "exists" as cheaply as a stat (like Azure and S3), so backups put
 * new chunks without a stat first (the writer looks at the store through the put alone).
 */
export class SlowStore implements BlobStore {
  readonly putAnswersExists = true;
  constructor(
    private readonly inner: BlobStore,
    private readonly rand: () => number,
    private readonly opts: { putFirst?: boolean } = {},
  ) {}
  capability<K extends CapabilityName>(key: K): StoreCapabilities[K] | undefined {
    return key === 'putFirst' && this.opts.putFirst ? (this as unknown as StoreCapabilities[K]) : undefined;
  }
  get location() {
    return this.inner.location;
  }
  private pause() {
    return new Promise((r) => setTimeout(r, Math.floor(this.rand() * 5)));
  }
  async put(n: BlobName, d: Uint8Array, op?: Op) {
    await this.pause();
    return this.inner.put(n, d, op);
  }
  async get(n: BlobName, r?: ByteRange, op?: Op) {
    await this.pause();
    return this.inner.get(n, r, op);
  }
  async stat(n: BlobName, op?: Op): Promise<BlobInfo | undefined> {
    await this.pause();
    const s = await this.inner.stat(n, op);
    await this.pause();
    return s;
  }
  async *list(p: string, op?: Op) {
    for await (const b of this.inner.list(p, op)) {
      if (this.rand() < 0.1) await this.pause();
      yield b;
    }
  }
  async delete(n: BlobName, op?: Op) {
    await this.pause();
    return this.inner.delete(n, op);
  }
}
