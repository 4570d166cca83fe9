import { Cron } from 'croner';
import { asCofferError, type Logger } from '../shared/index.js';
import type { PoliciesTable } from './catalog/index.js';
import type { JobQueue } from './jobs/queue.js';
import { resolvePolicyVms, type Policy } from './policy.js';
import type { Vcenters } from './vcenters.js';

export interface SchedulerOptions {
  /**
   * on start (this process just became the leader), a schedule time this recent that may not have fired, or fired in
   * a leader that died while queueing, is fired now: its run keys skip what is already queued (default 0: none)
   */
  catchUpMs?: number;
}

/**
 * Turns policies into jobs: one cron per enabled policy schedule (backups of each of its VMs) and per verify
 * schedule; re-created whenever a policy changes (reload(), or sync() when another replica changed it). Runs only in
 * the elected leader (leader-election.ts). Every scheduled job carries a run key (policy, VM, scheduled time) that the
 * catalog keeps unique: a schedule time fires at most once, whoever fires it and however often.
 */
export class Scheduler {
  private crons: Cron[] = [];
  private active = false;
  private signature = '';

  constructor(
    private readonly policies: Pick<PoliciesTable, 'list' | 'get'>,
    private readonly queue: Pick<JobQueue, 'enqueueOnce' | 'hasPendingBackup'>,
    /** the VMs of the configured vCenters (cached); policies select from them */
    private readonly vcenters: Vcenters,
    private readonly logger: Logger,
    private readonly opts: SchedulerOptions = {},
  ) {}

  get running(): boolean {
    return this.active;
  }

  start(): void {
    this.active = true;
    this.reload();
    const catchUpMs = this.opts.catchUpMs ?? 0;
    if (catchUpMs <= 0) return;
    const now = Date.now();
    for (const c of this.crons) {
      const [prev] = c.previousRuns(1, new Date(now));
      if (!prev || now - prev.getTime() > catchUpMs) continue;
      const [kind, policyId] = c.name!.split(':') as ['backup' | 'verify', string];
      this.logger.info(`schedule ${c.name}: catching up the run of ${prev.toISOString()}`);
      this.fire(policyId, kind, prev);
    }
  }

  stop(): void {
    this.active = false;
    for (const c of this.crons) c.stop();
    this.crons = [];
  }

  reload(): void {
    for (const c of this.crons) c.stop();
    this.crons = [];
    const policies = this.policies.list();
    this.signature = signatureOf(policies);
    if (!this.active) return;
    for (const p of policies) {
      if (!p.enabled) continue;
      if (p.schedule)
        this.crons.push(
          new Cron(p.schedule, { name: `backup:${p.id}`, catch: true }, (c: Cron) =>
            this.fire(p.id, 'backup', scheduledTime(c, new Date())),
          ),
        );
      if (p.verify)
        this.crons.push(
          new Cron(p.verify.schedule, { name: `verify:${p.id}`, catch: true }, (c: Cron) =>
            this.fire(p.id, 'verify', scheduledTime(c, new Date())),
          ),
        );
    }
  }

  /** Reloads when the policies changed since the last load (a change made through another replica). */
  sync(): void {
    if (this.active && signatureOf(this.policies.list()) !== this.signature) this.reload();
  }

  /** The next run time of each policy's schedules (for the API; the same on every replica). */
  nextRuns(policyId: string): { backup: string | null; verify: string | null } {
    let p: Policy;
    try {
      p = this.policies.get(policyId);
    } catch {
      return { backup: null, verify: null };
    }
    const next = (pattern: string | undefined) => {
      if (!p.enabled || !pattern) return null;
      const c = new Cron(pattern, { paused: true });
      const t = c.nextRun()?.toISOString() ?? null;
      c.stop();
      return t;
    };
    return { backup: next(p.schedule), verify: next(p.verify?.schedule) };
  }

  private fire(policyId: string, kind: 'backup' | 'verify', scheduledAt: Date): void {
    const at = scheduledAt.toISOString();
    try {
      const p = this.policies.get(policyId);
      if (kind === 'verify') {
        this.queue.enqueueOnce(
          {
            kind: 'verify',
            repository: p.repository,
            policyId: p.id,
            params: { readDataPercent: p.verify?.readDataPercent ?? 0 },
            trigger: 'schedule',
            requestedBy: `schedule:${p.name}`,
          },
          `verify:${p.id}:${at}`,
        );
      } else {
        // a job starts from a fresh (at most VCENTER_CACHE_MS old) vCenter inventory
        void this.vcenters
          .refresh()
          .then(() => this.enqueueBackups(p, 'schedule', `schedule:${p.name}`, undefined, at))
          .catch((e) => this.logger.warn(`schedule of policy ${policyId}: ${asCofferError(e).message}`));
      }
    } catch (e) {
      this.logger.warn(`schedule of policy ${policyId}: ${asCofferError(e).message}`);
    }
  }

  /** Queues a backup for each VM of the policy that has none queued or running. */
  enqueueBackups(
    p: Policy,
    trigger: 'manual' | 'schedule',
    by: string,
    onlyVm?: string,
    /** the schedule time being fired: the run keys (none for a manual run) */
    scheduledAt?: string,
  ): number[] {
    const key = (what: string) => (scheduledAt ? `backup:${p.id}:${what}:${scheduledAt}` : undefined);
    const { vms, missing, vcenterErrors } = resolvePolicyVms(p, this.vcenters.inventory(), this.vcenters.errors());
    for (const m of missing) this.logger.warn(`policy ${p.name}: VM ${m} is not in the inventory`);
    const ids: number[] = [];
    // an unreadable vCenter gives a job that fails with its coded error (VSPHERE_AUTH ...), visible like any failure
    for (const e of onlyVm === undefined ? vcenterErrors : []) {
      const job = this.queue.enqueueOnce(
        {
          kind: 'backup',
          repository: p.repository,
          vm: null,
          policyId: p.id,
          params: { disks: [], tags: p.tags, vcenter: e.vcenter },
          trigger,
          requestedBy: by,
        },
        key(`vcenter=${e.vcenter}`),
      );
      if (job) ids.push(job.id);
    }
    for (const vm of vms) {
      if (onlyVm !== undefined && vm.name !== onlyVm) continue;
      if (trigger === 'schedule' && this.queue.hasPendingBackup(vm.name)) continue;
      const job = this.queue.enqueueOnce(
        {
          kind: 'backup',
          repository: p.repository,
          vm: vm.name,
          policyId: p.id,
          params: { disks: vm.disks, tags: p.tags, ...(vm.vcenter ? { vcenter: vm.vcenter } : {}) },
          trigger,
          requestedBy: by,
        },
        key(`vm=${vm.name}`),
      );
      if (job) ids.push(job.id);
    }
    return ids;
  }
}

/** what a reload depends on: a change of any policy (through any replica) changes it */
function signatureOf(policies: readonly Policy[]): string {
  return policies.map((p) => `${p.id}@${p.updatedAt}`).join(',');
}

/**
 * the schedule time a cron callback stands for: the newest run time of its pattern up to `now` (plus half a second,
 * should the timer fire a little early): the same for every process that fires it
 */
function scheduledTime(c: Cron, now: Date): Date {
  return c.previousRuns(1, new Date(now.getTime() + 500))[0] ?? now;
}
