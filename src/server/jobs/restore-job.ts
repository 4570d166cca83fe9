import type { JobContext, JobKindHandler, RestoreParams } from './types.js';

/**
 * Restores one disk of a restore point to a file below a restore directory: a src/jobs `restore-disk` description
 * (the target is confined again on the file system by the server's JobDeps.confineTarget).
 */
export class RestoreJob implements JobKindHandler {
  readonly kind = 'restore';

  async run({ job, execute, progress }: JobContext): Promise<unknown> {
    const p = job.params as RestoreParams;
    const r = (await execute(
      { kind: 'restore-disk', repository: job.repository, pointId: p.pointId, disk: p.disk, target: p.target, force: p.force, format: 'raw', sync: true },
      (e) => progress(e.done, e.total),
    )) as { format?: string };
    // the job's result stays the engine's restore result (the API's shape): without the use case's `format`
    const result = { ...r };
    delete result.format;
    return result;
  }
}
