import { backup, type BackupResult } from '../../engine/index.js';
import { asCofferError, type Logger } from '../../shared/index.js';
import type { BlockSource } from '../../sources/index.js';
import type { VsphereVmBackup } from '../../vsphere/index.js';
import type { PoliciesTable } from '../catalog/index.js';
import type { ServerDeps } from '../deps.js';
import { applyPolicyRetention, retentionLogLines } from '../retention.js';
import type { JobQueue } from './queue.js';
import type { BackupParams, JobContext, JobKindHandler } from './types.js';

export interface BackupJobDeps {
  policies: Pick<PoliciesTable, 'get'>;
  /** to queue a prune after retention (pruneAfterForget) */
  queue: Pick<JobQueue, 'enqueue' | 'hasPendingPrune'>;
  /** opens one disk source (paths, file://, nbd://: bin/coffer.ts's openSource) */
  openSource: ServerDeps['openSource'];
  /** opens a VM of a configured vCenter for backup (snapshot, CBT, configuration: vcenters.ts openVcenterVm) */
  openVcenterVm(vcenter: string, spec: string | undefined, opts: { logger: Logger; signal: AbortSignal }): Promise<VsphereVmBackup>;
}

/**
 * Backs up one VM: its disk sources, or a vCenter VM through a snapshot (removed as soon as the data is read), then
 * applies its policy's retention to that VM, and re-reads the repository into the catalog.
 */
export class BackupJob implements JobKindHandler {
  readonly kind = 'backup';

  constructor(private readonly deps: BackupJobDeps) {}

  async run(ctx: JobContext): Promise<unknown> {
    const { job, repo, pool, signal, logger, progress } = ctx;
    const p = job.params as BackupParams;
    const sources: BlockSource[] = [];
    // a vCenter VM: the same snapshot/CBT/configuration path as `coffer backup vsphere://` (snapshot removed in finally)
    const vmb = p.vcenter ? await this.deps.openVcenterVm(p.vcenter, p.disks[0], { logger, signal }) : undefined;
    try {
      if (vmb) sources.push(...vmb.disks);
      else for (const spec of p.disks) sources.push(await this.deps.openSource(spec, { logger, signal }));
      const total = sources.reduce((a, s) => a + s.sizeBytes, 0);
      const done = sources.map(() => 0);
      logger.info(`backing up ${sources.length} disk(s) of VM ${job.vm}, ${total} bytes`);
      const result = await backup(repo, pool, {
        vm: job.vm!,
        sources,
        tags: p.tags,
        ...(vmb ? { vmId: vmb.vmId, consistency: vmb.consistency, vmConfig: vmb.vmConfig as unknown as Record<string, unknown> } : {}),
        signal,
        onWarning: logger.warn,
        onProgress: (x) => {
          done[x.disk] = x.bytesDone;
          progress(done.reduce((a, b) => a + b, 0), total);
        },
      });
      logger.info(`restore point ${result.id} (${result.mode}): read ${result.bytesRead} bytes, stored ${result.bytesStored} in ${result.chunksNew} new chunks`);
      // the vCenter snapshot goes as soon as the data is read (not after retention and the catalog refresh)
      const vsphere = vmb ? { ...vmb.report(), ...(await vmb.close()) } : undefined;
      if (vsphere && !vsphere.snapshotRemoved) logger.warn(`vSphere: snapshot ${vsphere.snapshot} of VM ${vsphere.vm} was NOT removed`);
      await this.applyRetention(ctx, result);
      await ctx.refreshCatalog();
      return vsphere ? { ...result, vsphere } : result;
    } finally {
      if (vmb) await vmb.close();
      else await Promise.allSettled(sources.map((s) => s.close()));
    }
  }

  /**
   * The backup is committed: a failure to apply retention is reported in the log and the result, it does not fail
   * (and retry) the backup.
   */
  private async applyRetention({ job, repo, signal, logger }: JobContext, result: BackupResult): Promise<void> {
    const pol = this.retentionOf(job.policyId);
    if (!pol) return;
    try {
      const r = await applyPolicyRetention(repo, { vm: job.vm!, retention: pol.retention, signal, onWarning: logger.warn });
      for (const line of retentionLogLines(r)) logger.info(line);
      Object.assign(result, { retention: { kept: r.kept, removed: r.removed, unreadable: r.unreadable } });
      if (r.removed.length > 0 && pol.pruneAfterForget) {
        if (this.deps.queue.hasPendingPrune(job.repository)) logger.info(`prune of ${job.repository} already queued or running`);
        else {
          const pj = this.deps.queue.enqueue({ kind: 'prune', repository: job.repository, policyId: job.policyId, params: {}, trigger: job.trigger, requestedBy: `policy:${pol.name}` });
          logger.info(`queued prune job ${pj.id} (pruneAfterForget)`);
        }
      }
    } catch (e) {
      const err = asCofferError(e);
      if (err.code === 'CANCELLED') throw err;
      logger.warn(`retention failed: [${err.code}] ${err.message}`);
      Object.assign(result, { retention: { error: { code: err.code, message: err.message } } });
    }
  }

  /** the retention of the job's policy, if the policy still exists and has one */
  private retentionOf(policyId: string | null) {
    if (!policyId) return undefined;
    try {
      const p = this.deps.policies.get(policyId);
      return p.retention ? { name: p.name, retention: p.retention, pruneAfterForget: p.pruneAfterForget === true } : undefined;
    } catch {
      return undefined;
    }
  }
}
