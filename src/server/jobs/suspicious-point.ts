import { asCofferError } from '../../shared/index.js';
import { policySignals, type PolicySpec } from '../policy.js';
import { holdSuspiciousPoint, type IncidentHold } from '../retention.js';
import type { JobQueue } from './queue.js';
import type { JobContext } from './types.js';

/** What a backup job's result says about a suspicious point (the `point.suspicious` notification reads it). */
export interface Incident {
  pointId: string;
  vm: string;
  score: number;
  reasons: string[];
  holds: IncidentHold[];
  /** the VM's last clean point before the suspicious one (held), null when it has none */
  lastClean: string | null;
  /** the follow-up job that looks for file-level indicators */
  indicatorsJob?: number;
  error?: { code: string; message: string };
}

/**
 * A backup whose point is suspicious (its anomaly score reached the policy's threshold; DESIGN.md §Ransomware
 * signals): holds on the point and on the VM's last clean point before it (policy `signals.holdOnSuspicious`,
 * `holdDays`), a file-level indicators job (`signals.fileIndicators`), and `result.incident` for the notification and
 * the API. The point is committed: a failure here is logged and reported in the result, it does not fail the backup.
 */
export async function respondToSuspicious(
  ctx: JobContext,
  result: Record<string, unknown>,
  policy: PolicySpec | undefined,
  queue: Pick<JobQueue, 'enqueue'>,
): Promise<void> {
  const { job, logger, signal } = ctx;
  const s = result.signals as { suspicious?: boolean; score?: number; reasons?: string[] } | undefined;
  const pointId = result.id as string | undefined;
  if (!s?.suspicious || !pointId || job.vm === null) return;
  const ps = policySignals(policy ?? {});
  const incident: Incident = {
    pointId,
    vm: job.vm,
    score: s.score ?? 0,
    reasons: s.reasons ?? [],
    holds: [],
    lastClean: null,
  };
  result.incident = incident;
  logger.warn(`restore point ${pointId} is SUSPICIOUS (score ${incident.score}): ${incident.reasons.join('; ')}`);
  if (ps.holdOnSuspicious) {
    try {
      const r = await holdSuspiciousPoint(await ctx.repository(), {
        vm: job.vm,
        pointId,
        score: incident.score,
        days: ps.holdDays,
        signal,
      });
      incident.holds = r.holds;
      incident.lastClean = r.lastClean;
      for (const h of r.holds)
        logger.warn(`hold on ${h.role} point ${h.pointId} ${h.until ? `until ${h.until}` : 'until removed'}`);
      if (!r.lastClean) logger.warn(`VM ${job.vm} has no clean restore point before ${pointId} to hold`);
    } catch (e) {
      const err = asCofferError(e);
      if (err.code === 'CANCELLED') throw err;
      logger.warn(`holds for suspicious point ${pointId} failed: [${err.code}] ${err.message}`);
      incident.error = { code: err.code, message: err.message };
    }
  }
  if (ps.fileIndicators) {
    const j = queue.enqueue({
      kind: 'check',
      repository: job.repository,
      vm: job.vm,
      policyId: job.policyId,
      params: { pointId, files: true },
      trigger: job.trigger,
      requestedBy: `backup job ${job.id}`,
    });
    incident.indicatorsJob = j.id;
    logger.info(`queued check job ${j.id}: file-level indicators of ${pointId}`);
  }
}
