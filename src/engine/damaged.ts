import { IdSet, VERIFICATIONS_PREFIX, type Repository } from '../repository/index.js';
import { HEX64, type Op } from '../shared/index.js';

/**
 * Chunk ids named as missing or corrupt by the newest verification record of each restore point whose newest record
 * failed (FORMAT.md §8). Backups heal these when they read the data again; repair fetches them from a copy.
 */
export async function knownDamagedChunks(repo: Repository, op: Op = {}): Promise<IdSet> {
  const newest = new Map<string, { ms: number; name: string; ok: boolean }>();
  for await (const b of repo.store.list(VERIFICATIONS_PREFIX, op)) {
    const m = /^verifications\/([0-9a-f]{32})\/(\d{15})-(ok|failed)$/.exec(b.name);
    if (!m) continue;
    const ms = Number(m[2]);
    const cur = newest.get(m[1]!);
    if (!cur || ms > cur.ms || (ms === cur.ms && m[3] === 'failed')) newest.set(m[1]!, { ms, name: b.name, ok: m[3] === 'ok' });
  }
  const ids: Buffer[] = [];
  for (const rec of newest.values()) {
    if (rec.ok) continue;
    let doc: { problems?: { kind?: unknown; id?: unknown }[] };
    try {
      doc = JSON.parse((await repo.store.get(rec.name as never, undefined, op)).toString('utf8'));
    } catch {
      continue; // deleted meanwhile or unreadable: records describe, they are not needed
    }
    for (const p of Array.isArray(doc.problems) ? doc.problems.slice(0, 1000) : []) {
      if ((p.kind === 'chunk-missing' || p.kind === 'chunk-corrupt') && typeof p.id === 'string' && HEX64.test(p.id)) ids.push(Buffer.from(p.id, 'hex'));
    }
  }
  return ids.length > 0 ? IdSet.fromConcatenated(Buffer.concat(ids)) : IdSet.empty;
}
