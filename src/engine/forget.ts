import type { Repository } from '../repository/index.js';
import { CofferError, type Op } from '../shared/index.js';
import { applyRetention, type KeepReason, type RetentionPoint, type RetentionPolicy } from './retention.js';

export interface ForgetRequest extends Op {
  policy: RetentionPolicy;
  /** only this VM's points (others are not looked at) */
  vm?: string;
  /** only the points this returns true for (the others are not looked at: neither counted nor removed) */
  only?: (m: { id: string; tags: readonly string[] }) => boolean;
  dryRun?: boolean;
  now?: Date;
  onWarning?: (message: string) => void;
}

export interface ForgetReport {
  dryRun: boolean;
  policy: RetentionPolicy;
  now: string;
  kept: { id: string; vm: string; time: string; reasons: KeepReason[]; lockedUntil?: string }[];
  /** removed (or, with dryRun, to be removed) */
  removed: { id: string; vm: string; time: string }[];
  /** restore points whose manifest could not be read: never removed, reported */
  unreadable: string[];
}

/**
 * Applies a retention policy (engine/retention.ts) and deletes the manifests of the points it removes. The manifest
 * is the commit point of a restore point (FORMAT.md §0), so deleting it removes the point whole; its chunks and index
 * become garbage for prune (engine/gc.ts). A manifest under a storage retention lock (delete rejects IMMUTABLE) is
 * kept with the reason 'locked', never a failure. Holds and locks that a store reports via retention() are applied
 * before deciding, so a dry run shows them.
 */
export async function forget(repo: Repository, req: ForgetRequest): Promise<ForgetReport> {
  const op: Op = { signal: req.signal };
  const now = req.now ?? new Date();
  const unreadable: string[] = [];
  const manifests = (
    await repo.listPoints(op, (id, e) => {
      unreadable.push(id);
      req.onWarning?.(`restore point ${id} is unreadable and is left alone: ${e.message}`);
    })
  ).filter((m) => (req.vm === undefined || m.vm.name === req.vm) && (req.only?.(m) ?? true));
  const holds = new Map<string, { until?: string; reason?: string }[]>();
  for (const h of await repo.listHolds(undefined, op)) {
    const list = holds.get(h.pointId) ?? [];
    list.push({ ...(h.until ? { until: h.until } : {}), ...(h.reason ? { reason: h.reason } : {}) });
    holds.set(h.pointId, list);
  }
  const points: RetentionPoint[] = [];
  for (const m of manifests) {
    const p: RetentionPoint = { id: m.id, vm: m.vm.name, time: m.time };
    const hs = holds.get(m.id);
    if (hs) p.holds = hs;
    const lock = await repo.pointRetention(m.id, op);
    if (lock) p.lock = { legalHold: lock.legalHold, ...(lock.lockedUntil ? { lockedUntil: lock.lockedUntil } : {}) };
    points.push(p);
  }
  let decision;
  try {
    decision = applyRetention(points, req.policy, now);
  } catch (e) {
    throw new CofferError('USAGE', (e as Error).message);
  }
  const lockOf = new Map(points.filter((p) => p.lock?.lockedUntil).map((p) => [p.id, p.lock!.lockedUntil!]));
  const report: ForgetReport = {
    dryRun: Boolean(req.dryRun),
    policy: req.policy,
    now: now.toISOString(),
    kept: decision.keep.map((k) => ({ ...k, ...(lockOf.has(k.id) ? { lockedUntil: lockOf.get(k.id)! } : {}) })),
    removed: [],
    unreadable,
  };
  for (const r of decision.remove) {
    if (req.dryRun) {
      report.removed.push(r);
      continue;
    }
    op.signal?.throwIfAborted();
    try {
      await repo.deletePoint(r.id, op);
      report.removed.push(r);
    } catch (e) {
      if (!(e instanceof CofferError) || e.code !== 'IMMUTABLE') throw e;
      // a lock the store did not report (or no retention()): the point stays whole
      report.kept.push({ ...r, reasons: ['locked'] });
    }
  }
  return report;
}
