import { IdSet, type Repository } from '../repository/index.js';
import { HEX64, type Op } from '../shared/index.js';

/**
 * Chunk ids named as missing or corrupt by the newest verification record of each restore point whose newest record
 * failed (FORMAT.md §8). Backups heal these when they read the data again; repair fetches them from a copy.
 */
export async function knownDamagedChunks(repo: Repository, op: Op = {}): Promise<IdSet> {
  const ids: Buffer[] = [];
  for await (const rec of repo.newestFailedVerifications(op)) {
    const problems = (Array.isArray(rec.problems) ? rec.problems.slice(0, 1000) : []) as {
      kind?: unknown;
      id?: unknown;
    }[];
    for (const p of problems) {
      if (
        p &&
        (p.kind === 'chunk-missing' || p.kind === 'chunk-corrupt') &&
        typeof p.id === 'string' &&
        HEX64.test(p.id)
      )
        ids.push(Buffer.from(p.id, 'hex'));
    }
  }
  return ids.length > 0 ? IdSet.fromConcatenated(Buffer.concat(ids)) : IdSet.empty;
}
