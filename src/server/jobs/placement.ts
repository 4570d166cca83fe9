import type { Job, ProxyCapabilities, ProxyRecord } from '../catalog/index.js';

/** What a job needs from the proxy that runs it (docs/DESIGN.md §Proxies and placement). */
export interface JobNeeds {
  kind: string;
  repository: string;
  /** how the VM's disks are read: 'disk' (static inventory paths, nbd://), 'http' (vCenter VMs) */
  transport: string | undefined;
  /** the configured vCenter of a vSphere VM */
  vcenter: string | undefined;
  /** where the VM lives, when the inventory says (hot-add reads only from a proxy in the cluster) */
  cluster: string | undefined;
  datastores: readonly string[];
}

/** What placement knows of a VM beyond the job (the static inventory's `cluster` and `datastores`). */
export interface VmPlacementInfo {
  cluster?: string | undefined;
  datastores?: readonly string[] | undefined;
}

export function needsOf(job: Job, vm: VmPlacementInfo | undefined): JobNeeds {
  const p = job.params as { vcenter?: string; disks?: string[] };
  const backup = job.kind === 'backup';
  return {
    kind: job.kind,
    repository: job.repository,
    transport: backup ? (p.vcenter ? 'http' : 'disk') : undefined,
    // a whole-VM restore writes into its vCenter: only a proxy that reaches it
    vcenter: backup || job.kind === 'restore-vm' ? p.vcenter : undefined,
    cluster: backup ? vm?.cluster : undefined,
    datastores: backup ? (vm?.datastores ?? []) : [],
  };
}

const listed = (list: readonly string[] | null, v: string) => list === null || list.includes(v);

/** Why this proxy cannot run a job with these needs; undefined when it can. */
export function cannotServe(c: ProxyCapabilities, n: JobNeeds): string | undefined {
  if (!c.kinds.includes(n.kind)) return `does not run ${n.kind} jobs`;
  if (!listed(c.repositories, n.repository)) return `does not reach repository ${n.repository}`;
  if (n.transport !== undefined && !c.transports.includes(n.transport))
    return `has no ${n.transport} transport (has ${c.transports.join(', ') || 'none'})`;
  if (n.vcenter !== undefined && !listed(c.vcenters, n.vcenter)) return `does not reach vCenter ${n.vcenter}`;
  // a proxy that names its clusters reads only their VMs, whatever the transport: hot-add attaches disks inside the
  // cluster, and NBD/NFC/http reads reach the cluster's ESXi hosts (in AVS, one network segment per cluster)
  if (n.cluster !== undefined && !listed(c.clusters, n.cluster)) return `is not in cluster ${n.cluster}`;
  const missing = n.datastores.find((d) => !listed(c.datastores, d));
  if (missing !== undefined) return `does not reach datastore ${missing}`;
  return undefined;
}

/** A proxy as placement sees it: its record, whether it is alive, and how many jobs it runs now. */
export interface ProxyLoad {
  proxy: ProxyRecord;
  online: boolean;
  running: number;
}

export interface PlacementLimits {
  perSource: number;
  perRepository(repository: string): number;
  /** running backups reading from one datastore at once (vSAN must not be saturated) */
  perDatastore: number;
}

export type Placement = { take: true } | { take: false; reason: string; waits: boolean };

/**
 * Decides whether `claimant` (a proxy asking for work, remote or a server's own) takes `job` now:
 * - only a proxy that can serve it (cannotServe), online and not drained;
 * - within the limits: the proxy's concurrency, per VM, per repository, per datastore (counted over every running
 *   job of the catalog, whichever proxy runs it);
 * - balanced by load: among the capable proxies with a free slot the least loaded (running / concurrency) takes it;
 *   the claimant leaves it to a less loaded one (ties: the claimant takes it).
 * `waits` with a reason says the job cannot start anywhere now (recorded on the job for the API and the console);
 * `waits: false` means another proxy should take it.
 */
export function place(
  job: Job,
  needs: JobNeeds,
  claimant: string,
  proxies: readonly ProxyLoad[],
  running: readonly Job[],
  limits: PlacementLimits,
  datastoresOf: (job: Job) => readonly string[],
): Placement {
  if (job.vm !== null && running.filter((r) => r.vm === job.vm).length >= limits.perSource)
    return { take: false, reason: `waits for the running job of VM ${job.vm}`, waits: true };
  if (running.filter((r) => r.repository === job.repository).length >= limits.perRepository(job.repository))
    return { take: false, reason: `waits: repository ${job.repository} runs its maximum of jobs`, waits: true };
  if (job.kind === 'prune' && running.some((r) => r.kind === 'prune' && r.repository === job.repository))
    return { take: false, reason: `waits for the running prune of ${job.repository}`, waits: true };
  for (const d of needs.datastores) {
    if (running.filter((r) => datastoresOf(r).includes(d)).length >= limits.perDatastore)
      return { take: false, reason: `waits: datastore ${d} has ${limits.perDatastore} backups running`, waits: true };
  }
  const capable: ProxyLoad[] = [];
  const refusals: string[] = [];
  for (const p of proxies) {
    const why = cannotServe(p.proxy.capabilities, needs);
    if (why) refusals.push(`${p.proxy.name} ${why}`);
    else if (!p.online) refusals.push(`${p.proxy.name} is offline`);
    else if (p.proxy.drained) refusals.push(`${p.proxy.name} is drained`);
    else capable.push(p);
  }
  if (capable.length === 0) {
    const detail = refusals.length ? refusals.slice(0, 5).join('; ') : 'no proxy is registered';
    return { take: false, reason: `waits: no online proxy can run it (${detail})`, waits: true };
  }
  const free = capable.filter((p) => p.running < p.proxy.concurrency);
  if (free.length === 0) return { take: false, reason: 'waits: every proxy that can run it is busy', waits: true };
  const mine = free.find((p) => p.proxy.owner === claimant);
  if (!mine) return { take: false, reason: 'left to another proxy', waits: false };
  const ratio = (p: ProxyLoad) => p.running / p.proxy.concurrency;
  const best = Math.min(...free.map(ratio));
  return ratio(mine) <= best ? { take: true } : { take: false, reason: 'left to a less loaded proxy', waits: false };
}
