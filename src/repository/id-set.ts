import { CHUNK_ID_BYTES, ZERO_CHUNK_ID } from '../format/index.js';

/**
 * A compact set of 32-byte ids: one sorted Buffer (32 bytes an id, no per-entry objects), binary search.
 * 1 million ids take 32 MiB, where a Set of hex strings would take ~130 MiB.
 */
export class IdSet {
  private constructor(private readonly sorted: Buffer) {}

  static readonly empty = new IdSet(Buffer.alloc(0));

  /** Builds from concatenated ids (e.g. fixed index entries); drops zero ids and duplicates. */
  static fromConcatenated(ids: Buffer): IdSet {
    const n = Math.floor(ids.length / CHUNK_ID_BYTES);
    const order: number[] = [];
    for (let i = 0; i < n; i++) {
      if (!ids.subarray(i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES).equals(ZERO_CHUNK_ID)) order.push(i);
    }
    const at = (i: number) => ids.subarray(i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
    order.sort((a, b) => Buffer.compare(at(a), at(b)));
    const out = Buffer.allocUnsafe(order.length * CHUNK_ID_BYTES);
    let m = 0;
    for (const i of order) {
      const id = at(i);
      if (m > 0 && out.subarray((m - 1) * CHUNK_ID_BYTES, m * CHUNK_ID_BYTES).equals(id)) continue;
      id.copy(out, m * CHUNK_ID_BYTES);
      m++;
    }
    return new IdSet(out.subarray(0, m * CHUNK_ID_BYTES));
  }

  /** Wraps ids that are already sorted and unique (e.g. another IdSet's bytes shared with a worker). */
  static fromSorted(sorted: Buffer): IdSet {
    return new IdSet(sorted);
  }

  /** The sorted ids, 32 bytes each. */
  get bytes(): Buffer {
    return this.sorted;
  }

  get size(): number {
    return this.sorted.length / CHUNK_ID_BYTES;
  }

  /** Position of id in sorted order, or -1. */
  indexOf(id: Uint8Array): number {
    let lo = 0;
    let hi = this.size - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = Buffer.compare(this.sorted.subarray(mid * CHUNK_ID_BYTES, (mid + 1) * CHUNK_ID_BYTES), id);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  has(id: Uint8Array): boolean {
    return this.indexOf(id) >= 0;
  }

  /** The id at sorted position i. */
  at(i: number): Buffer {
    return this.sorted.subarray(i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
  }
}
