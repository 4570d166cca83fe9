import type { Repository } from '../../repository/index.js';
import { CofferError } from '../../shared/index.js';
import { verify, type VerifyReport } from '../verify.js';
import { withCodecPool, type EventSink, type ProgressEvent, type UseCaseContext } from './context.js';

export interface VerifyRepositoryRequest {
  /** share of the referenced chunks read and re-hashed: 0 presence only, 1 every byte (--read-data) */
  readDataFraction?: number | undefined;
  /** record the outcome per restore point in the repository (default true) */
  record?: boolean | undefined;
  onEvent?: EventSink<VerifyRepositoryEvent> | undefined;
}

/** progress in items (chunks, manifests, indexes), per phase */
export type VerifyRepositoryEvent = ProgressEvent;

/**
 * Checks that every restore point is complete, optionally every byte (DESIGN.md §Verify). A report with problems is
 * returned, not thrown: see verifyFailure.
 */
export async function verifyRepository(
  repo: Repository,
  ctx: UseCaseContext,
  req: VerifyRepositoryRequest = {},
): Promise<VerifyReport> {
  const fraction = req.readDataFraction ?? 0;
  if (!(fraction >= 0 && fraction <= 1))
    throw new CofferError('USAGE', `the share of chunks to read must be in [0, 1], not ${fraction}`);
  return withCodecPool(ctx, repo.codecParams, (pool) =>
    verify(repo, pool, {
      readDataFraction: fraction,
      record: req.record !== false,
      signal: ctx.signal,
      onProgress: (p) =>
        req.onEvent?.({ type: 'progress', unit: 'items', done: p.done, total: p.total, phase: p.phase }),
    }),
  );
}

/** The error a front end reports for a verify that found problems (CORRUPT). */
export function verifyFailure(report: VerifyReport, details: Record<string, unknown> = {}): CofferError | undefined {
  if (report.ok) return undefined;
  return new CofferError('CORRUPT', `verify found ${report.problems.length} problem(s)`, {
    details: { problems: report.problems.length, ...details },
  });
}
