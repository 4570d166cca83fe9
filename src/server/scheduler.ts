import { Cron } from 'croner';
import { asCofferError, type Logger } from '../shared/index.js';
import type { PoliciesTable } from './catalog/index.js';
import type { JobQueue } from './jobs/queue.js';
import { resolvePolicyVms, type Policy } from './policy.js';
import type { Vcenters } from './vcenters.js';

/**
 * Turns policies into jobs: one cron per enabled policy schedule (backups of each of its VMs) and per verify
 * schedule; re-created whenever a policy changes (reload()).
 */
export class Scheduler {
  private crons: Cron[] = [];

  constructor(
    private readonly policies: Pick<PoliciesTable, 'list' | 'get'>,
    private readonly queue: Pick<JobQueue, 'enqueue' | 'hasPendingBackup'>,
    /** the VMs of the configured vCenters (cached); policies select from them */
    private readonly vcenters: Vcenters,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.reload();
  }

  stop(): void {
    for (const c of this.crons) c.stop();
    this.crons = [];
  }

  reload(): void {
    for (const c of this.crons) c.stop();
    this.crons = [];
    for (const p of this.policies.list()) {
      if (!p.enabled) continue;
      if (p.schedule)
        this.crons.push(new Cron(p.schedule, { name: `backup:${p.id}`, catch: true }, () => this.fire(p.id, 'backup')));
      if (p.verify)
        this.crons.push(
          new Cron(p.verify.schedule, { name: `verify:${p.id}`, catch: true }, () => this.fire(p.id, 'verify')),
        );
    }
  }

  /** The next run time of each policy's schedules (for the API). */
  nextRuns(policyId: string): { backup: string | null; verify: string | null } {
    const find = (kind: string) =>
      this.crons
        .find((c) => c.name === `${kind}:${policyId}`)
        ?.nextRun()
        ?.toISOString() ?? null;
    return { backup: find('backup'), verify: find('verify') };
  }

  private fire(policyId: string, kind: 'backup' | 'verify'): void {
    try {
      const p = this.policies.get(policyId);
      if (kind === 'verify') {
        this.queue.enqueue({
          kind: 'verify',
          repository: p.repository,
          policyId: p.id,
          params: { readDataPercent: p.verify?.readDataPercent ?? 0 },
          trigger: 'schedule',
          requestedBy: `schedule:${p.name}`,
        });
      } else {
        // a job starts from a fresh (at most VCENTER_CACHE_MS old) vCenter inventory
        void this.vcenters
          .refresh()
          .then(() => this.enqueueBackups(p, 'schedule', `schedule:${p.name}`))
          .catch((e) => this.logger.warn(`schedule of policy ${policyId}: ${asCofferError(e).message}`));
      }
    } catch (e) {
      this.logger.warn(`schedule of policy ${policyId}: ${asCofferError(e).message}`);
    }
  }

  /** Queues a backup for each VM of the policy that has none queued or running. */
  enqueueBackups(p: Policy, trigger: 'manual' | 'schedule', by: string, onlyVm?: string): number[] {
    const { vms, missing, vcenterErrors } = resolvePolicyVms(p, this.vcenters.inventory(), this.vcenters.errors());
    for (const m of missing) this.logger.warn(`policy ${p.name}: VM ${m} is not in the inventory`);
    const ids: number[] = [];
    // an unreadable vCenter gives a job that fails with its coded error (VSPHERE_AUTH ...), visible like any failure
    for (const e of onlyVm === undefined ? vcenterErrors : []) {
      ids.push(
        this.queue.enqueue({
          kind: 'backup',
          repository: p.repository,
          vm: null,
          policyId: p.id,
          params: { disks: [], tags: p.tags, vcenter: e.vcenter },
          trigger,
          requestedBy: by,
        }).id,
      );
    }
    for (const vm of vms) {
      if (onlyVm !== undefined && vm.name !== onlyVm) continue;
      if (trigger === 'schedule' && this.queue.hasPendingBackup(vm.name)) continue;
      ids.push(
        this.queue.enqueue({
          kind: 'backup',
          repository: p.repository,
          vm: vm.name,
          policyId: p.id,
          params: { disks: vm.disks, tags: p.tags, ...(vm.vcenter ? { vcenter: vm.vcenter } : {}) },
          trigger,
          requestedBy: by,
        }).id,
      );
    }
    return ids;
  }
}
