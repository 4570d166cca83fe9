import { prune, type PruneReport } from '../../engine/index.js';
import { asCofferError } from '../../shared/index.js';
import type { JobContext, JobKindHandler } from './types.js';

/** Garbage collection of a repository (engine prune); skipped, not failed, while another process holds the gc lease. */
export class PruneJob implements JobKindHandler {
  readonly kind = 'prune';

  async run({ repo, signal, logger, progressNow, refreshCatalog }: JobContext): Promise<unknown> {
    let report: PruneReport;
    try {
      report = await prune(repo, { signal, onWarning: logger.warn, onProgress: (x) => progressNow({ bytesDone: x.done, bytesTotal: 0, phase: x.phase }) });
    } catch (e) {
      const err = asCofferError(e);
      // another prune (the CLI, another server) holds the repository's gc lease: skipped, not failed or retried
      if (err.code === 'LOCKED' && (err.details as { scope?: string } | undefined)?.scope === 'gc') {
        logger.warn(`prune skipped: ${err.message}`);
        return { skipped: true, reason: err.message };
      }
      throw err;
    }
    logger.info(
      `prune: ${report.points} restore points, ${report.chunksReferenced} chunks referenced; deleted ${report.chunksDeleted} chunks (${report.bytesDeleted} bytes) and ${report.indexesDeleted} indexes` +
        (report.deferred.length ? `; deferred ${report.deferred.length} condemned generation(s): ${report.deferredReason}` : '') +
        (report.locked ? `; ${report.locked} kept: locked` : ''),
    );
    await refreshCatalog();
    return report;
  }
}
