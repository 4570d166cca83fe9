import type { PruneRepositoryResult } from '../../engine/index.js';
import type { JobInput } from '../../jobs/index.js';
import type { ExecProgress, JobContext, JobKindHandler } from './types.js';

/**
 * Garbage collection of a repository: a src/jobs `prune` description with skipIfRunning, so that while another
 * process (the CLI, another server) holds the gc lease the job succeeds as skipped instead of failing and retrying.
 */
export class PruneJob implements JobKindHandler {
  readonly kind = 'prune';

  async describe({ job }: JobContext): Promise<JobInput> {
    return { kind: 'prune', repository: job.repository, skipIfRunning: true };
  }

  onProgress(ctx: JobContext, e: ExecProgress): void {
    ctx.progressNow({ bytesDone: e.done, bytesTotal: 0, ...(e.phase ? { phase: e.phase } : {}) });
  }

  async succeeded({ logger, refreshCatalog }: JobContext, result: unknown): Promise<unknown> {
    const r = result as PruneRepositoryResult;
    if ('skipped' in r) {
      logger.warn(`prune skipped: ${r.reason}`);
      return r;
    }
    logger.info(
      `prune: ${r.points} restore points, ${r.chunksReferenced} chunks referenced; deleted ${r.chunksDeleted} ` +
        `chunks (${r.bytesDeleted} bytes) and ${r.indexesDeleted} indexes` +
        (r.deferred.length ? `; deferred ${r.deferred.length} condemned generation(s): ${r.deferredReason}` : '') +
        (r.locked ? `; ${r.locked} kept: locked` : ''),
    );
    await refreshCatalog();
    return r;
  }
}
