import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Repository } from '../../src/repository/index.js';
import { LocalBlobStore } from '../../src/storage/index.js';

export * from '../../src/fs/testing/images.js';

/**
 * The chunk blob file (repository-relative path under repoDir) holding byte `offset` of disk `disk` of a restore point.
 */
export async function chunkFileAt(
  repoDir: string,
  password: string,
  pointId: string,
  disk: number,
  offset: number,
): Promise<string> {
  const repo = await Repository.open(new LocalBlobStore(repoDir), password);
  const m = await repo.loadManifest(pointId);
  const idx = await repo.loadIndex(m.disks[disk]!.indexId);
  const i = Math.floor(offset / idx.chunkSizeBytes);
  assert.ok(!idx.isZero(i), `chunk ${i} is a zero chunk`);
  const hex = idx.id(i).toString('hex');
  return join(repoDir, 'chunks', hex.slice(0, 2), hex);
}
