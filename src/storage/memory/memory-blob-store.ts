import { CofferError, type BlobName, type Op } from '../../shared/index.js';
import { isValidBlobName, type BlobInfo, type BlobStore, type ByteRange } from '../blob-store.js';

/** In-memory BlobStore for unit tests and as the base of fault-injecting test wrappers. */
export class MemoryBlobStore implements BlobStore {
  readonly location = 'memory:';
  private readonly blobs = new Map<string, { data: Buffer; modifiedAt: Date }>();

  async put(name: BlobName, data: Uint8Array, op?: Op): Promise<'created' | 'exists'> {
    op?.signal?.throwIfAborted();
    checkName(name);
    if (this.blobs.has(name)) return 'exists';
    this.blobs.set(name, { data: Buffer.from(data), modifiedAt: new Date() });
    return 'created';
  }

  async get(name: BlobName, range?: ByteRange, op?: Op): Promise<Buffer> {
    op?.signal?.throwIfAborted();
    checkName(name);
    const b = this.blobs.get(name);
    if (!b) throw new CofferError('NOT_FOUND', `blob ${name} not found`, { details: { blob: name } });
    if (!range) return Buffer.from(b.data);
    return Buffer.from(b.data.subarray(range.offset, range.offset + range.length));
  }

  async stat(name: BlobName, op?: Op): Promise<BlobInfo | undefined> {
    op?.signal?.throwIfAborted();
    checkName(name);
    const b = this.blobs.get(name);
    return b ? { name, sizeBytes: b.data.length, modifiedAt: b.modifiedAt } : undefined;
  }

  async *list(prefix: string, op?: Op): AsyncIterable<BlobInfo> {
    for (const [name, b] of [...this.blobs]) {
      op?.signal?.throwIfAborted();
      if (name.startsWith(prefix)) yield { name: name as BlobName, sizeBytes: b.data.length, modifiedAt: b.modifiedAt };
    }
  }

  async delete(name: BlobName, op?: Op): Promise<void> {
    op?.signal?.throwIfAborted();
    checkName(name);
    this.blobs.delete(name);
  }

  /** Test helper: replace a blob's bytes (simulates corruption on the medium). */
  corrupt(name: string, mutate: (data: Buffer) => Buffer): void {
    const b = this.blobs.get(name);
    if (!b) throw new Error(`no blob ${name}`);
    b.data = mutate(Buffer.from(b.data));
  }
}

function checkName(name: string): void {
  if (!isValidBlobName(name)) throw new CofferError('INTERNAL', `invalid blob name ${JSON.stringify(name)}`);
}
