import type { Repository } from '../../repository/index.js';
import { checkPoint, type CheckRecord, type VolumeCheck } from '../check/index.js';
import { withCodecPool, type EventSink, type UseCaseContext } from './context.js';

export interface CheckPointRequest {
  pointId: string;
  /** per checker run (default 10 minutes) */
  timeoutMs?: number | undefined;
  /** record the outcome with the point (FORMAT.md §8.1); default true */
  record?: boolean | undefined;
  onEvent?: EventSink<CheckPointEvent> | undefined;
  /**
   * The alert hook: called when the check fails, after the record is written (the CLI runs `--on-failure`, the server
   * its notifier). An alert that throws does not change the outcome.
   */
  onFailure?: ((record: CheckRecord) => Promise<void> | void) | undefined;
}

export type CheckPointEvent = { type: 'volume'; volume: VolumeCheck };

/** `coffer check`: a recoverability check of one restore point, recorded with it (DESIGN.md §Recoverability checks). */
export async function checkRestorePoint(
  repo: Repository,
  ctx: UseCaseContext,
  req: CheckPointRequest,
): Promise<CheckRecord> {
  const emit = req.onEvent ?? (() => undefined);
  const record = await withCodecPool(ctx, repo.codecParams, (pool) =>
    checkPoint(repo, pool, req.pointId, {
      signal: ctx.signal,
      ...(req.timeoutMs !== undefined ? { timeoutMs: req.timeoutMs } : {}),
      onVolume: (volume) => emit({ type: 'volume', volume }),
    }),
  );
  if (req.record !== false) await repo.recordCheck(record.pointId, record, { signal: ctx.signal });
  if (!record.ok) await Promise.resolve(req.onFailure?.(record)).catch(() => undefined);
  return record;
}
