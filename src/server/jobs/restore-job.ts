import type { JobInput } from '../../jobs/index.js';
import type { ExecProgress, JobContext, JobKindHandler, RestoreParams } from './types.js';

/**
 * Restores one disk of a restore point to a file below a restore directory: a src/jobs `restore-disk` description
 * (raw unless the job asks for qcow2, vmdk or vhdx; fsynced; the target is confined again on the file system by
 * the server's JobDeps.confineTarget).
 */
export class RestoreJob implements JobKindHandler {
  readonly kind = 'restore';

  async describe({ job }: JobContext): Promise<JobInput> {
    const p = job.params as RestoreParams;
    return {
      kind: 'restore-disk',
      repository: job.repository,
      pointId: p.pointId,
      disk: p.disk,
      target: p.target,
      force: p.force,
      format: p.format ?? 'raw',
      sync: true,
    };
  }

  onProgress(ctx: JobContext, e: ExecProgress): void {
    ctx.progress(e.done, e.total);
  }

  async succeeded(_ctx: JobContext, result: unknown): Promise<unknown> {
    return result;
  }
}
