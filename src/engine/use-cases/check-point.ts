import type { Repository } from '../../repository/index.js';
import {
  checkPoint,
  noEarlierPoint,
  scanFileIndicators,
  type CheckRecord,
  type IndicatorRecord,
  type VolumeCheck,
} from '../check/index.js';
import { withCodecPool, type EventSink, type UseCaseContext } from './context.js';

export interface CheckPointRequest {
  pointId: string;
  /** per checker run (default 10 minutes) */
  timeoutMs?: number | undefined;
  /** record the outcome with the point (FORMAT.md §8.1); default true */
  record?: boolean | undefined;
  onEvent?: EventSink<CheckPointEvent> | undefined;
  /** also boot the point in QEMU (FORMAT.md §8.1 `boot`) */
  boot?:
    | {
        marker?: string | undefined;
        timeoutMs?: number | undefined;
        memoryMB?: number | undefined;
        /** success = the guest agent answers (instead of the marker) */
        agent?: boolean | undefined;
        /** run this executable on the host after the success signal, the VM still running */
        script?: string | undefined;
        scriptTimeoutMs?: number | undefined;
        /** guest TCP ports forwarded from 127.0.0.1 */
        forwards?: number[] | undefined;
      }
    | undefined;
  /**
   * The alert hook: called when the check fails, after the record is written (the CLI runs `--on-failure`, the server
   * its notifier). An alert that throws does not change the outcome.
   */
  onFailure?: ((record: CheckRecord) => Promise<void> | void) | undefined;
}

export type CheckPointEvent = { type: 'volume'; volume: VolumeCheck } | { type: 'console'; text: string };

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
      ...(req.boot
        ? {
            boot: {
              ...req.boot,
              onConsole: (text: string) => emit({ type: 'console', text }),
            },
          }
        : {}),
    }),
  );
  if (req.record !== false) await repo.recordCheck(record.pointId, record, { signal: ctx.signal });
  if (!record.ok) await Promise.resolve(req.onFailure?.(record)).catch(() => undefined);
  return record;
}

export interface FileIndicatorsRequest {
  pointId: string;
  /** the point to compare with; default the VM's point before this one */
  against?: string | undefined;
  /** record the outcome with the point (FORMAT.md §8.2); default true */
  record?: boolean | undefined;
}

/**
 * `coffer check --files`: file-level ransomware indicators of a (suspicious) point against the VM's previous point
 * (DESIGN.md §File-level indicators), recorded with it. Runs as a follow-up job, never inside a backup.
 */
export async function checkFileIndicators(
  repo: Repository,
  ctx: UseCaseContext,
  req: FileIndicatorsRequest,
): Promise<IndicatorRecord> {
  const op = { signal: ctx.signal };
  let against = req.against;
  if (against === undefined) {
    const m = await repo.loadManifest(req.pointId, op);
    const earlier = (await repo.listPoints(op)).filter(
      (p) => p.vm.name === m.vm.name && p.id !== m.id && p.time <= m.time,
    );
    against = earlier.at(-1)?.id ?? noEarlierPoint(req.pointId);
  }
  const record = await withCodecPool(ctx, repo.codecParams, (pool) =>
    scanFileIndicators(repo, pool, req.pointId, against, op),
  );
  if (req.record !== false) await repo.recordIndicators(record.pointId, record, op);
  return record;
}
