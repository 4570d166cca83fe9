import type { ObjectRef, Repository } from '../repository/index.js';
import type { LockRequest } from '../storage/index.js';
import { CofferError, TaskWindow, chunkIdOf, type Op } from '../shared/index.js';

export interface LockResult {
  id: string;
  lockedUntil: string | null;
  legalHold: boolean;
  chunks: number;
  indexes: number;
}

/**
 * Puts a retention lock on restore points (DESIGN.md §Immutability): every chunk they reference, their indexes, then
 * their manifests. Locks only ever grow, so a chunk shared with another locked point keeps the later expiry. Until
 * the lock expires nobody, Coffer with the admin key included, can delete these blobs: the store rejects with
 * IMMUTABLE (Azure version-level immutability in Locked mode / legal hold; S3 Object Lock in COMPLIANCE mode).
 * Rerunning is harmless; an interrupted run leaves some blobs locked, which only delays their deletion.
 */
export async function lockPoints(
  repo: Repository,
  ids: string[],
  req: LockRequest & Op & { window?: number },
): Promise<LockResult[]> {
  const store = repo.retentionLocks(); // USAGE when the store cannot hold locks
  if (!req.until && !req.legalHold) throw new CofferError('USAGE', 'give --until, --days or --legal-hold');
  if (req.until && req.until.getTime() <= Date.now())
    throw new CofferError('USAGE', `--until ${req.until.toISOString()} is in the past`);
  const op: Op = { signal: req.signal };
  const lock: LockRequest = {
    ...(req.until ? { until: req.until } : {}),
    ...(req.legalHold ? { legalHold: true } : {}),
  };
  const out: LockResult[] = [];
  for (const id of ids) {
    const m = await repo.loadManifest(id, op);
    const { chunks } = await repo.referencedIds([m], op);
    // Only extend: a blob locked longer (shared with a point locked later) keeps its lock; a held one its hold.
    const extend = async (name: ObjectRef) => {
      const cur = await store.retention(name, op);
      const until =
        lock.until && !(cur?.lockedUntil && Date.parse(cur.lockedUntil) >= lock.until.getTime())
          ? lock.until
          : undefined;
      const legalHold = lock.legalHold && !cur?.legalHold;
      if (until || legalHold)
        await store.lock(name, { ...(until ? { until } : {}), ...(legalHold ? { legalHold } : {}) }, op);
    };
    const window = new TaskWindow(req.window ?? 16);
    try {
      for (let i = 0; i < chunks.size; i++)
        await window.run(() => extend({ kind: 'chunk', id: chunkIdOf(chunks.at(i)) }));
      await window.drain();
    } catch (e) {
      await window.settle();
      throw e;
    }
    for (const d of m.disks) await extend({ kind: 'index', id: d.indexId });
    await extend({ kind: 'point', id });
    const r = await store.retention({ kind: 'point', id }, op);
    out.push({
      id,
      lockedUntil: r?.lockedUntil ?? null,
      legalHold: r?.legalHold ?? false,
      chunks: chunks.size,
      indexes: m.disks.length,
    });
  }
  return out;
}
