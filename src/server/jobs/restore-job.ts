import { restoreDisk } from '../../engine/index.js';
import { confineRestoreTarget } from './restore-target.js';
import type { JobContext, JobKindHandler, RestoreParams } from './types.js';

/** Restores one disk of a restore point to a file below a restore directory (checked again on the file system). */
export class RestoreJob implements JobKindHandler {
  readonly kind = 'restore';

  constructor(private readonly restoreDirs: readonly string[]) {}

  async run({ job, repo, pool, signal, logger, progress }: JobContext): Promise<unknown> {
    const p = job.params as RestoreParams;
    await confineRestoreTarget(p.target, this.restoreDirs);
    const result = await restoreDisk(repo, pool, {
      pointId: p.pointId,
      disk: p.disk,
      target: { kind: 'path', path: p.target, force: p.force },
      signal,
      sync: true,
      onProgress: (x) => progress(x.bytesDone, x.bytesTotal),
    });
    logger.info(`restored disk ${result.disk} of ${result.id} to ${result.target} (${result.bytesWritten} bytes)`);
    return result;
  }
}
