import type { Db } from './catalog.js';
import type { InventoryVm } from './config.js';
import { resolvePolicyVms, type Policy } from './policy.js';

export interface VmStatus {
  name: string;
  /** covered by at least one enabled policy */
  protected: boolean;
  policies: string[];
  inInventory: boolean;
  lastPoint: { id: string; repository: string; time: string; endTime: string } | null;
  lastJob: { id: number; status: string; finishedAt: string | null; error: { code: string; message: string } | null } | null;
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
export function vmStatuses(db: Db, policies: readonly Policy[], inventory: readonly InventoryVm[], now = new Date()): VmStatus[] {
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
  for (const r of db.prepare('SELECT DISTINCT vm FROM restore_points').all() as { vm: string }[]) names.add(r.vm);
  const out: VmStatus[] = [];
  for (const name of [...names].sort()) {
    const ps = byVm.get(name)?.policies ?? [];
    const repos = ps.map((p) => p.repository);
    const last = (
      repos.length > 0
        ? db.prepare(`SELECT id, repository, time, end_time FROM restore_points WHERE vm = ? AND repository IN (${repos.map(() => '?').join(',')}) ORDER BY end_time DESC LIMIT 1`).get(name, ...repos)
        : db.prepare('SELECT id, repository, time, end_time FROM restore_points WHERE vm = ? ORDER BY end_time DESC LIMIT 1').get(name)
    ) as { id: string; repository: string; time: string; end_time: string } | undefined;
    const job = db.prepare("SELECT id, status, finished_at, error FROM jobs WHERE vm = ? AND kind = 'backup' AND status IN ('succeeded', 'failed', 'cancelled') ORDER BY id DESC LIMIT 1").get(name) as
      | { id: number; status: string; finished_at: string | null; error: string | null }
      | undefined;
    const count = (db.prepare('SELECT COUNT(*) AS n FROM restore_points WHERE vm = ?').get(name) as { n: number }).n;
    const rpoHours = ps.length > 0 ? Math.min(...ps.map((p) => p.rpoHours)) : null;
    const ageSeconds = last ? Math.max(0, Math.round((now.getTime() - Date.parse(last.end_time)) / 1000)) : null;
    out.push({
      name,
      protected: ps.length > 0,
      policies: ps.map((p) => p.name),
      inInventory: inventory.some((v) => v.name === name),
      lastPoint: last ? { id: last.id, repository: last.repository, time: last.time, endTime: last.end_time } : null,
      lastJob: job ? { id: job.id, status: job.status, finishedAt: job.finished_at, error: job.error ? JSON.parse(job.error) : null } : null,
      rpoHours,
      rpoCompliant: rpoHours === null ? null : ageSeconds !== null && ageSeconds <= rpoHours * 3600,
      ageSeconds,
      points: count,
    });
  }
  return out;
}
