import { CHUNK_ID_BYTES, ZERO_CHUNK_ID } from '../format/index.js';

const W = CHUNK_ID_BYTES;

/**
 * A compact set of 32-byte ids: one sorted Buffer (32 bytes an id, no per-entry objects) and a typed array of each
 * id's first 4 bytes (4 bytes an id) for a binary search that stays in JavaScript. 1 million ids take 36 MiB, where a
 * Set of hex strings would take ~130 MiB.
 */
export class IdSet {
  private keys: Uint32Array | undefined;

  private constructor(private readonly sorted: Buffer) {}

  static readonly empty = new IdSet(Buffer.alloc(0));

  /** Builds from concatenated ids (e.g. fixed index entries); drops zero ids and duplicates. */
  static fromConcatenated(ids: Buffer): IdSet {
    const n = Math.floor(ids.length / W);
    const keys = new Uint32Array(n);
    const order = new Uint32Array(n);
    let m = 0;
    for (let i = 0; i < n; i++) {
      const k = ids.readUInt32BE(i * W);
      keys[i] = k;
      if (k === 0 && ids.subarray(i * W, (i + 1) * W).equals(ZERO_CHUNK_ID)) continue;
      order[m++] = i;
    }
    const sortedOrder = order
      .subarray(0, m)
      .sort((a, b) => keys[a]! - keys[b]! || ids.compare(ids, b * W, b * W + W, a * W, a * W + W));
    const out = Buffer.allocUnsafeSlow(m * W);
    let u = 0;
    for (const i of sortedOrder) {
      if (u > 0 && ids.compare(out, (u - 1) * W, u * W, i * W, i * W + W) === 0) continue;
      ids.copy(out, u * W, i * W, i * W + W);
      u++;
    }
    return new IdSet(u === m ? out : Buffer.from(out.subarray(0, u * W)));
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
    return this.sorted.length / W;
  }

  private prefixKeys(): Uint32Array {
    if (!this.keys) {
      const n = this.size;
      const keys = new Uint32Array(n);
      for (let i = 0; i < n; i++) keys[i] = this.sorted.readUInt32BE(i * W);
      this.keys = keys;
    }
    return this.keys;
  }

  /** Position of id in sorted order, or -1. */
  indexOf(id: Uint8Array): number {
    const n = this.size;
    if (n === 0) return -1;
    const keys = this.prefixKeys();
    const k = ((id[0]! << 24) | (id[1]! << 16) | (id[2]! << 8) | id[3]!) >>> 0;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid]! < k) lo = mid + 1;
      else hi = mid;
    }
    const idBuf = Buffer.isBuffer(id) ? id : Buffer.from(id.buffer, id.byteOffset, id.byteLength);
    for (let i = lo; i < n && keys[i] === k; i++) {
      const c = this.sorted.compare(idBuf, 0, W, i * W, i * W + W);
      if (c === 0) return i;
      if (c > 0) break;
    }
    return -1;
  }

  has(id: Uint8Array): boolean {
    return this.indexOf(id) >= 0;
  }

  /** The id at sorted position i. */
  at(i: number): Buffer {
    return this.sorted.subarray(i * W, (i + 1) * W);
  }

  /** The union of two sets (a linear merge; both inputs stay valid). */
  union(other: IdSet): IdSet {
    if (other.size === 0) return this;
    if (this.size === 0) return other;
    const a = this.sorted;
    const b = other.sorted;
    const out = Buffer.allocUnsafeSlow(a.length + b.length);
    let i = 0;
    let j = 0;
    let o = 0;
    while (i < a.length && j < b.length) {
      const c = a.compare(b, j, j + W, i, i + W);
      if (c <= 0) {
        a.copy(out, o, i, i + W);
        i += W;
        if (c === 0) j += W;
      } else {
        b.copy(out, o, j, j + W);
        j += W;
      }
      o += W;
    }
    if (i < a.length) o += a.copy(out, o, i);
    if (j < b.length) o += b.copy(out, o, j);
    return new IdSet(o === out.length ? out : Buffer.from(out.subarray(0, o)));
  }
}

/**
 * Builds an IdSet from a stream of ids in bounded memory: ids already in the set are skipped at once, new ones
 * collect in a batch that is sorted and merged in when full. Peak memory: about twice the final set plus one batch.
 */
export class IdSetBuilder {
  private set = IdSet.empty;
  private readonly batch: Buffer;
  private n = 0;

  constructor(private readonly batchIds = 262_144) {
    this.batch = Buffer.allocUnsafeSlow(batchIds * W);
  }

  add(id: Uint8Array): void {
    if (this.set.has(id)) return;
    this.batch.set(id.subarray(0, W), this.n * W);
    if (++this.n === this.batchIds) this.flush();
  }

  /** Adds concatenated 32-byte ids (a fixed index's entries); zero ids are dropped. */
  addConcatenated(ids: Buffer): void {
    for (let o = 0; o + W <= ids.length; o += W) {
      if (ids.readUInt32BE(o) === 0 && ids.subarray(o, o + W).equals(ZERO_CHUNK_ID)) continue;
      this.add(ids.subarray(o, o + W));
    }
  }

  private flush(): void {
    if (this.n === 0) return;
    this.set = this.set.union(IdSet.fromConcatenated(this.batch.subarray(0, this.n * W)));
    this.n = 0;
  }

  build(): IdSet {
    this.flush();
    return this.set;
  }

  get size(): number {
    return this.set.size + this.n;
  }
}
