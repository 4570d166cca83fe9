import { verify } from '../../engine/index.js';
import { CofferError } from '../../shared/index.js';
import type { JobContext, JobKindHandler, VerifyParams } from './types.js';

/** Verifies a repository (reading `readDataPercent` of the data) and records the result on each restore point. */
export class VerifyJob implements JobKindHandler {
  readonly kind = 'verify';

  async run({ job, repo, pool, signal, logger, progress, refreshCatalog }: JobContext): Promise<unknown> {
    const p = job.params as VerifyParams;
    const report = await verify(repo, pool, { readDataFraction: p.readDataPercent / 100, record: true, signal, onProgress: (x) => x.total > 0 && progress(x.done, x.total, x.phase) });
    for (const pr of report.problems.slice(0, 50)) logger.warn(`${pr.kind}: ${pr.message}`);
    await refreshCatalog();
    if (!report.ok) throw new CofferError('CORRUPT', `verify found ${report.problems.length} problem(s)`);
    logger.info(`verified ${report.points} restore points, ${report.chunksReferenced} chunks referenced, ${report.chunksRead} read`);
    return report;
  }
}
