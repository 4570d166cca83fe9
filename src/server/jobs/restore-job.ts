import type { JobContext, JobKindHandler, RestoreParams } from './types.js';

/**
 * Restores one disk of a restore point to a file below a restore directory: a src/jobs `restore-disk` description
 * (raw, fsynced; the target is confined again on the file system by the server's JobDeps.confineTarget).
 */
export class RestoreJob implements JobKindHandler {
  readonly kind = 'restore';

  run({ job, execute, progress }: JobContext): Promise<unknown> {
    const p = job.params as RestoreParams;
    return execute(
      {
        kind: 'restore-disk',
        repository: job.repository,
        pointId: p.pointId,
        disk: p.disk,
        target: p.target,
        force: p.force,
        format: 'raw',
        sync: true,
      },
      (e) => progress(e.done, e.total),
    );
  }
}
