import type { Repository } from '../../repository/index.js';
import { asCofferError } from '../../shared/index.js';
import { prune, type PruneReport } from '../gc.js';
import type { EventSink, ProgressEvent, UseCaseContext, WarningEvent } from './context.js';

export interface PruneRepositoryRequest {
  /**
   * When another prune holds the repository's gc lease: false (default) fails with LOCKED, true returns
   * `{skipped: true}` (a scheduled prune that finds one running has nothing to do).
   */
  skipIfRunning?: boolean | undefined;
  onEvent?: EventSink<PruneRepositoryEvent> | undefined;
}

/** progress in objects per phase (total 0: not known ahead) */
export type PruneRepositoryEvent = ProgressEvent | WarningEvent;

export type PruneRepositoryResult = PruneReport | { skipped: true; reason: string };

/**
 * Garbage collection: deletes unreferenced chunks and indexes while backups may run (DESIGN.md §Garbage collection).
 */
export async function pruneRepository(
  repo: Repository,
  ctx: Pick<UseCaseContext, 'signal'>,
  req: PruneRepositoryRequest = {},
): Promise<PruneRepositoryResult> {
  try {
    return await prune(repo, {
      signal: ctx.signal,
      onWarning: (message) => req.onEvent?.({ type: 'warning', message }),
      onProgress: (p) => req.onEvent?.({ type: 'progress', unit: 'items', done: p.done, total: 0, phase: p.phase }),
    });
  } catch (e) {
    const err = asCofferError(e);
    if (req.skipIfRunning && err.code === 'LOCKED' && (err.details as { scope?: string } | undefined)?.scope === 'gc')
      return { skipped: true, reason: err.message };
    throw e;
  }
}
