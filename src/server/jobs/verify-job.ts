import type { JobInput } from '../../jobs/index.js';
import { asCofferError } from '../../shared/index.js';
import type { ExecProgress, JobContext, JobKindHandler, VerifyParams } from './types.js';

/**
 * Verifies a repository (reading `readDataPercent` of the data) and records the result on each restore point: a
 * src/jobs `verify` description; the catalog is refreshed also when problems were found (CORRUPT), so the points
 * show their failed verification.
 */
export class VerifyJob implements JobKindHandler {
  readonly kind = 'verify';

  async describe({ job }: JobContext): Promise<JobInput> {
    const p = job.params as VerifyParams;
    return { kind: 'verify', repository: job.repository, readDataFraction: p.readDataPercent / 100, record: true };
  }

  onProgress(ctx: JobContext, e: ExecProgress): void {
    if (e.total > 0) ctx.progress(e.done, e.total, e.phase);
  }

  async succeeded(ctx: JobContext, report: unknown): Promise<unknown> {
    await ctx.refreshCatalog();
    return report;
  }

  async failed(ctx: JobContext, e: unknown): Promise<void> {
    if (asCofferError(e).code === 'CORRUPT') await ctx.refreshCatalog();
  }
}
