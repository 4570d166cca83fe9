import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { BlobName, Op } from '../shared/index.js';
import type { BlobStore, ByteRange } from './blob-store.js';
import { ForwardingBlobStore } from './forwarding-blob-store.js';

/** Blobs that are immutable and named by id (FORMAT.md §0): safe to keep a copy of. */
const CACHED_PREFIXES = ['points/', 'indexes/'];

/**
 * A local cache of a cloud repository's manifests and indexes (DESIGN.md §Cloud repositories), so that listing
 * restore points and opening a point do not download them again. Under `<root>/<repository id>/`, the id taken from
 * the repository config when it passes through (nothing is cached before that).
 * It is trusted for nothing it cannot check:
 * - a cache file holds the blob with its SHA-256 in front; a file that does not match is dropped and re-fetched;
 * - the blobs themselves are authenticated above on every use like the originals (AEAD bound to the name; an
 *   index's plaintext hashes to its id);
 * - existence always comes from the store: `list` and `stat` are never answered from the cache, and callers
 *   reach manifests through a listing (points/) and indexes through a manifest (which exists only while its indexes
 *   do). A blob deleted by another machine can still be read from here by someone asking for it by exact name.
 * Deleting the directory at any time only costs downloads. Ranged reads pass through.
 */
export class CachingBlobStore extends ForwardingBlobStore {
  private dir: string | undefined;
  hits = 0;

  constructor(
    inner: BlobStore,
    private readonly root: string,
  ) {
    super(inner);
  }

  private fileOf(name: string): string | undefined {
    if (!this.dir || !CACHED_PREFIXES.some((p) => name.startsWith(p))) return undefined;
    return path.join(this.dir, ...name.split('/'));
  }

  override async get(name: BlobName, range?: ByteRange, op?: Op): Promise<Buffer> {
    const file = range ? undefined : this.fileOf(name);
    if (file) {
      const cached = await fs.readFile(file).catch(() => undefined);
      if (cached && cached.length >= 32) {
        const body = cached.subarray(32);
        if (createHash('sha256').update(body).digest().equals(cached.subarray(0, 32))) {
          this.hits++;
          return body;
        }
        await fs.unlink(file).catch(() => undefined);
      }
    }
    const data = await this.inner.get(name, range, op);
    if (name === 'config' && !range) this.learnRepository(data);
    if (file) await this.store(file, data);
    return data;
  }

  private learnRepository(config: Buffer): void {
    try {
      const id = (JSON.parse(config.toString('utf8')) as { id?: unknown }).id;
      if (typeof id === 'string' && /^[0-9a-f]{32}$/.test(id)) this.dir = path.join(this.root, id);
    } catch {
      /* not a config: no cache */
    }
  }

  /** Best effort: a cache that cannot be written is no cache, not an error. */
  private async store(file: string, data: Buffer): Promise<void> {
    try {
      await fs.mkdir(path.dirname(file), { recursive: true });
      const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
      await fs.writeFile(tmp, Buffer.concat([createHash('sha256').update(data).digest(), data]));
      await fs.rename(tmp, file);
    } catch {
      /* ignore */
    }
  }

  override async delete(name: BlobName, op?: Op): Promise<void> {
    await this.inner.delete(name, op);
    const file = this.fileOf(name);
    if (file) await fs.unlink(file).catch(() => undefined);
  }
}
