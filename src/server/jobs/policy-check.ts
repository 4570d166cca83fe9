import { asCofferError } from '../../shared/index.js';
import type { PolicySpec } from '../policy.js';
import type { JobQueue } from './queue.js';
import type { JobContext } from './types.js';

/**
 * A policy's recoverability checks (`check: {everyPoints, timeoutMinutes}`, DESIGN.md §Recoverability checks): after
 * a backup, a `check` job of the new point is queued when the VM has `everyPoints` restore points since (and
 * including the new one) its newest checked point. The job runs like any other (limits, retries, notifications:
 * a failed check is a failed job, `job.failed`). Returns the queued job's id.
 */
export async function queueCheckIfDue(
  ctx: JobContext,
  result: Record<string, unknown>,
  policy: PolicySpec | undefined,
  queue: Pick<JobQueue, 'enqueue'>,
): Promise<number | undefined> {
  const { job, logger, signal } = ctx;
  const pointId = result.id as string | undefined;
  if (!policy?.check || !pointId || job.vm === null) return undefined;
  const every = policy.check.everyPoints ?? 1;
  try {
    let since = 0;
    if (every > 1) {
      const repo = await ctx.repository();
      const points = (await repo.listPoints({ signal })).filter((m) => m.vm.name === job.vm).reverse();
      for (const m of points) {
        if (m.id !== pointId && (await repo.lastCheck(m.id, { signal }))) break;
        since++;
      }
    }
    if (every > 1 && since < every) {
      logger.info(`check: ${since} of ${every} restore points since the last checked one`);
      return undefined;
    }
    const j = queue.enqueue({
      kind: 'check',
      repository: job.repository,
      vm: job.vm,
      policyId: job.policyId,
      params: {
        pointId,
        timeoutMinutes: policy.check.timeoutMinutes ?? 10,
        ...(policy.check.boot ? { boot: policy.check.boot } : {}),
      },
      trigger: job.trigger,
      requestedBy: `policy:${policy.name}`,
    });
    logger.info(`queued check job ${j.id} of ${pointId} (policy check)`);
    result.checkJob = j.id;
    return j.id;
  } catch (e) {
    const err = asCofferError(e);
    if (err.code === 'CANCELLED') throw err;
    logger.warn(`policy check not queued: [${err.code}] ${err.message}`);
    return undefined;
  }
}
