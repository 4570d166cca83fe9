import { asCofferError } from '../../shared/index.js';
import type { JobContext, JobKindHandler, VerifyParams } from './types.js';

/**
 * Verifies a repository (reading `readDataPercent` of the data) and records the result on each restore point: a
 * src/jobs `verify` description; the catalog is refreshed also when problems were found (CORRUPT), so the points
 * show their failed verification.
 */
export class VerifyJob implements JobKindHandler {
  readonly kind = 'verify';

  async run({ job, execute, progress, refreshCatalog }: JobContext): Promise<unknown> {
    const p = job.params as VerifyParams;
    let report: unknown;
    try {
      report = await execute(
        { kind: 'verify', repository: job.repository, readDataFraction: p.readDataPercent / 100, record: true },
        (e) => e.total > 0 && progress(e.done, e.total, e.phase),
      );
    } catch (e) {
      if (asCofferError(e).code === 'CORRUPT') await refreshCatalog();
      throw e;
    }
    await refreshCatalog();
    return report;
  }
}
