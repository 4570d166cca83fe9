import type { BackupJob as BackupDescription, JobInput } from '../../jobs/index.js';
import { asCofferError, type Logger } from '../../shared/index.js';
import type { PoliciesTable } from '../catalog/index.js';
import { policySignals } from '../policy.js';
import { applyPolicyRetention, policyTag, retentionLogLines } from '../retention.js';
import { queueCheckIfDue } from './policy-check.js';
import { respondToSuspicious } from './suspicious-point.js';
import type { JobQueue } from './queue.js';
import type { BackupParams, ExecProgress, JobContext, JobKindHandler } from './types.js';

/** the tag of one job's restore point: `coffer-job:<job id>:<created, ms since 1970>` (FORMAT.md §6, tags) */
export const JOB_TAG_PREFIX = 'coffer-job:';
export function jobRunTag(id: number, createdAt: string): string {
  return `${JOB_TAG_PREFIX}${id}:${Date.parse(createdAt)}`;
}

export interface BackupJobDeps {
  policies: Pick<PoliciesTable, 'get'>;
  /** to queue a prune after retention (pruneAfterForget) */
  queue: Pick<JobQueue, 'enqueue' | 'hasPendingPrune'>;
  /** logs in to a configured vCenter that was unreadable when the job was queued, and throws its coded error */
  failUnreadableVcenter(vcenter: string, opts: { logger: Logger; signal: AbortSignal }): Promise<never>;
}

/**
 * Backs up one VM: a src/jobs `backup` description (its disks, or a vCenter VM through a snapshot that the use case
 * removes as soon as the data is read), then the server's part: its policy's retention for that VM, and the catalog
 * refresh of the repository.
 */
export class BackupJob implements JobKindHandler {
  readonly kind = 'backup';

  constructor(private readonly deps: BackupJobDeps) {}

  async describe(ctx: JobContext): Promise<JobInput> {
    const { job, logger, signal } = ctx;
    const p = job.params as BackupParams;
    const url = p.disks[0];
    // a vCenter that could not be read when the job was queued: the job fails with its coded error (VSPHERE_AUTH ...)
    if (p.vcenter && url === undefined) await this.deps.failUnreadableVcenter(p.vcenter, { logger, signal });
    // the mark of this job's run: a retry after a lost attempt that committed returns that point (engine adoptTag)
    const runTag = jobRunTag(job.id, job.createdAt);
    const userTags = p.tags.filter((t) => !t.startsWith(JOB_TAG_PREFIX));
    const description: BackupDescription = {
      kind: 'backup',
      repository: job.repository,
      ...(job.vm !== null ? { vm: job.vm } : {}),
      source: p.vcenter
        ? { type: 'vsphere', url: url!, vcenter: p.vcenter, quiesce: true, transport: 'http' }
        : { type: 'disks', disks: p.disks },
      // the policy's mark: its retention looks only at the points it made (server/retention.ts)
      tags: [
        ...(job.policyId
          ? [...userTags.filter((t) => t !== policyTag(job.policyId!)), policyTag(job.policyId)]
          : userTags),
        runTag,
      ],
      adoptTag: runTag,
      verifyCbt: false,
      ...this.signalOverrides(job.policyId),
    };
    return description;
  }

  onProgress(ctx: JobContext, e: ExecProgress): void {
    ctx.progress(e.done, e.total);
  }

  async succeeded(ctx: JobContext, executed: unknown): Promise<unknown> {
    const { job } = ctx;
    const result = { ...(executed as Record<string, unknown>) };
    // before retention: the holds keep the suspicious point and the last clean one out of its reach
    await respondToSuspicious(ctx, result, this.policyOf(job.policyId), this.deps.queue);
    // before retention too: the points it removes still count towards `check.everyPoints`
    await queueCheckIfDue(ctx, result, this.policyOf(job.policyId), this.deps.queue);
    await this.applyRetention(ctx, result);
    await ctx.refreshCatalog();
    return result;
  }

  /**
   * The backup is committed: a failure to apply retention is reported in the log and the result, it does not fail
   * (and retry) the backup.
   */
  private async applyRetention(ctx: JobContext, result: Record<string, unknown>): Promise<void> {
    const { job, signal, logger } = ctx;
    const pol = this.retentionOf(job.policyId);
    if (!pol) return;
    try {
      const r = await applyPolicyRetention(await ctx.repository(), {
        vm: job.vm!,
        retention: pol.retention,
        policyId: job.policyId!,
        signal,
        onWarning: logger.warn,
      });
      for (const line of retentionLogLines(r)) logger.info(line);
      result.retention = { kept: r.kept, removed: r.removed, unreadable: r.unreadable };
      if (r.removed.length > 0 && pol.pruneAfterForget) {
        if (this.deps.queue.hasPendingPrune(job.repository))
          logger.info(`prune of ${job.repository} already queued or running`);
        else {
          const pj = this.deps.queue.enqueue({
            kind: 'prune',
            repository: job.repository,
            policyId: job.policyId,
            params: {},
            trigger: job.trigger,
            requestedBy: `policy:${pol.name}`,
          });
          logger.info(`queued prune job ${pj.id} (pruneAfterForget)`);
        }
      }
    } catch (e) {
      const err = asCofferError(e);
      if (err.code === 'CANCELLED') throw err;
      logger.warn(`retention failed: [${err.code}] ${err.message}`);
      result.retention = { error: { code: err.code, message: err.message } };
    }
  }

  /** the job's policy, if it still exists */
  private policyOf(policyId: string | null) {
    if (!policyId) return undefined;
    try {
      return this.deps.policies.get(policyId);
    } catch {
      return undefined;
    }
  }

  private signalOverrides(policyId: string | null): Pick<BackupDescription, 'signalThresholds'> {
    const p = this.policyOf(policyId);
    const o = p ? policySignals(p).overrides : {};
    return Object.keys(o).length > 0 ? { signalThresholds: o } : {};
  }

  /** the retention of the job's policy, if the policy still exists and has one */
  private retentionOf(policyId: string | null) {
    if (!policyId) return undefined;
    try {
      const p = this.deps.policies.get(policyId);
      return p.retention
        ? { name: p.name, retention: p.retention, pruneAfterForget: p.pruneAfterForget === true }
        : undefined;
    } catch {
      return undefined;
    }
  }
}
