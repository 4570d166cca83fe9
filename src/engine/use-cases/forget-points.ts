import type { Repository } from '../../repository/index.js';
import { forget, type ForgetReport } from '../forget.js';
import type { PruneReport } from '../gc.js';
import { isEmptyPolicy, type RetentionPolicy } from '../retention.js';
import { CofferError } from '../../shared/index.js';
import type { EventSink, UseCaseContext, WarningEvent } from './context.js';
import { pruneRepository } from './prune-repository.js';

export interface ForgetPointsRequest {
  policy: RetentionPolicy;
  /** only this VM (default: every VM, each decided on its own) */
  vm?: string | undefined;
  dryRun?: boolean | undefined;
  /** run prune afterwards (not with dryRun) */
  prune?: boolean | undefined;
  onEvent?: EventSink<WarningEvent> | undefined;
}

/** Removes restore points by a retention policy (GFS), then optionally collects the garbage (DESIGN.md §Retention). */
export async function forgetPoints(
  repo: Repository,
  ctx: Pick<UseCaseContext, 'signal'>,
  req: ForgetPointsRequest,
): Promise<ForgetReport & { prune?: PruneReport }> {
  if (isEmptyPolicy(req.policy))
    throw new CofferError(
      'USAGE',
      'a retention policy needs at least one rule with a count above 0 (it would remove every restore point)',
    );
  const onWarning = (message: string) => req.onEvent?.({ type: 'warning', message });
  const report = await forget(repo, {
    policy: req.policy,
    ...(req.vm !== undefined ? { vm: req.vm } : {}),
    dryRun: Boolean(req.dryRun),
    signal: ctx.signal,
    onWarning,
  });
  if (!req.prune || req.dryRun) return report;
  const pruned = (await pruneRepository(repo, ctx, {
    onEvent: (e) => e.type === 'warning' && onWarning(e.message),
  })) as PruneReport;
  return { ...report, prune: pruned };
}
