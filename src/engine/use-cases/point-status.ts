import type { Manifest } from '../../format/index.js';
import type { Repository } from '../../repository/index.js';
import { CofferError, type Op } from '../../shared/index.js';
import { latestClean, pointState, type PointStatus } from '../signals/index.js';

export interface PointWithStatus {
  manifest: Manifest;
  status: PointStatus;
}

/** The state of each restore point (suspicious / failed / verified / clean), from its manifest and record names. */
export async function pointStatuses(repo: Repository, points: Manifest[], op?: Op): Promise<PointWithStatus[]> {
  const out: PointWithStatus[] = [];
  for (const m of points) {
    const [verification, check, indicators] = await Promise.all([
      repo.lastVerification(m.id, op),
      repo.lastCheck(m.id, op),
      repo.lastIndicators(m.id, op),
    ]);
    out.push({ manifest: m, status: pointState(m, verification, check, indicators ? { indicators } : {}) });
  }
  return out;
}

/** The status of one restore point. */
export async function statusOf(repo: Repository, m: Manifest, op?: Op): Promise<PointStatus> {
  return (await pointStatuses(repo, [m], op))[0]!.status;
}

/**
 * Resolves a restore point reference: what `Repository.resolvePoint` takes (id, unique prefix, `latest`), or
 * `latest-clean` / `latest-clean:VM` (the VM's last clean point, DESIGN.md §Ransomware signals). `latest-clean`
 * without a VM needs a repository holding one VM (or `vm`).
 */
export async function resolvePointRef(
  repo: Repository,
  ref: string,
  opts: { vm?: string | undefined; requireCheck?: boolean } & Op = {},
): Promise<string> {
  const m = /^latest-clean(?::(.+))?$/.exec(ref);
  if (!m) return repo.resolvePoint(ref, opts);
  const all = await repo.listPoints(opts);
  let vm = m[1] ?? opts.vm;
  if (vm === undefined) {
    const vms = [...new Set(all.map((p) => p.vm.name))];
    if (vms.length > 1)
      throw new CofferError('AMBIGUOUS', `the repository holds ${vms.length} VMs: say which (latest-clean:VM)`, {
        details: { vms },
      });
    vm = vms[0];
  }
  const points = await pointStatuses(
    repo,
    all.filter((p) => p.vm.name === vm),
    opts,
  );
  const clean = latestClean(points, opts.requireCheck ? { requireCheck: true } : {});
  if (!clean) throw new CofferError('NOT_FOUND', `VM ${vm ?? '-'} has no clean restore point`);
  return clean.manifest.id;
}
