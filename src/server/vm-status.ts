import type { Catalog } from './catalog/index.js';
import type { InventoryVm } from './config.js';
import { resolvePolicyVms, type Policy } from './policy.js';

export interface VmStatus {
  name: string;
  /**
   * covered by at least one enabled policy AND has a restore point (in a covering policy's repository): a VM that
   * was never backed up is not protected, whatever policy selects it (issue 20)
   */
  protected: boolean;
  /** covered by at least one enabled policy (with or without a restore point yet) */
  covered: boolean;
  /** the newest finished backup of the VM failed (failing until a backup succeeds again) */
  failing: boolean;
  policies: string[];
  inInventory: boolean;
  lastPoint: { id: string; repository: string; time: string; endTime: string } | null;
  lastJob: {
    id: number;
    status: string;
    finishedAt: string | null;
    error: { code: string; message: string } | null;
  } | null;
  /** the strictest RPO of the VM's policies */
  rpoHours: number | null;
  /** null when no policy covers the VM */
  rpoCompliant: boolean | null;
  /** age of the newest restore point in seconds */
  ageSeconds: number | null;
  points: number;
}

/**
 * Protection status of every VM the server knows (inventory, policies, restore points): RPO compliance means the
 * newest restore point in the repository of a covering policy finished less than rpoHours ago.
 */
export function vmStatuses(
  catalog: Pick<Catalog, 'restorePoints' | 'jobs'>,
  policies: readonly Policy[],
  inventory: readonly InventoryVm[],
  now = new Date(),
): VmStatus[] {
  const byVm = new Map<string, { policies: Policy[] }>();
  for (const p of policies) {
    if (!p.enabled) continue;
    for (const v of resolvePolicyVms(p, inventory).vms) {
      const e = byVm.get(v.name) ?? { policies: [] };
      e.policies.push(p);
      byVm.set(v.name, e);
    }
  }
  const names = new Set<string>([...inventory.map((v) => v.name), ...byVm.keys()]);
  for (const vm of catalog.restorePoints.vms()) names.add(vm);
  const out: VmStatus[] = [];
  for (const name of [...names].sort()) {
    const ps = byVm.get(name)?.policies ?? [];
    const repos = ps.map((p) => p.repository);
    const last = catalog.restorePoints.newest(name, repos);
    const job = catalog.jobs.lastFinishedBackup(name);
    const count = catalog.restorePoints.count(name);
    const rpoHours = ps.length > 0 ? Math.min(...ps.map((p) => p.rpoHours)) : null;
    const ageSeconds = last ? Math.max(0, Math.round((now.getTime() - Date.parse(last.endTime)) / 1000)) : null;
    out.push({
      name,
      protected: ps.length > 0 && last !== undefined,
      covered: ps.length > 0,
      failing: job?.status === 'failed',
      policies: ps.map((p) => p.name),
      inInventory: inventory.some((v) => v.name === name),
      lastPoint: last ? { id: last.id, repository: last.repository, time: last.time, endTime: last.endTime } : null,
      lastJob: job ?? null,
      rpoHours,
      rpoCompliant: rpoHours === null ? null : ageSeconds !== null && ageSeconds <= rpoHours * 3600,
      ageSeconds,
      points: count,
    });
  }
  return out;
}
