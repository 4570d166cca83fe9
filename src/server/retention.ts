import { forgetPoints, isEmptyPolicy, type ForgetReport, type RetentionPolicy } from '../engine/index.js';
import type { Repository } from '../repository/index.js';
import { CofferError } from '../shared/index.js';
import type { PolicySpec } from './policy.js';

export type PolicyRetention = NonNullable<PolicySpec['retention']>;

/** A policy's retention fields (keepLast ...) as the engine's RetentionPolicy (last ...). */
export function toRetentionPolicy(r: PolicyRetention): RetentionPolicy {
  const out: RetentionPolicy = {};
  if (r.keepLast !== undefined) out.last = r.keepLast;
  if (r.keepHourly !== undefined) out.hourly = r.keepHourly;
  if (r.keepDaily !== undefined) out.daily = r.keepDaily;
  if (r.keepWeekly !== undefined) out.weekly = r.keepWeekly;
  if (r.keepMonthly !== undefined) out.monthly = r.keepMonthly;
  if (r.keepYearly !== undefined) out.yearly = r.keepYearly;
  return out;
}

/** True when the retention keeps nothing (every count absent or 0): the server refuses it, as `coffer forget` does. */
export function isEmptyRetention(r: PolicyRetention): boolean {
  return isEmptyPolicy(toRetentionPolicy(r));
}

/**
 * Applies a policy's retention to one VM's restore points (the engine's forgetPoints use case: holds and storage
 * locks are kept and reported as kept). Never with an empty policy: that would remove every point of the VM.
 */
export async function applyPolicyRetention(
  repo: Repository,
  req: { vm: string; retention: PolicyRetention; signal: AbortSignal; onWarning?: (m: string) => void },
): Promise<ForgetReport> {
  const policy = toRetentionPolicy(req.retention);
  if (isEmptyPolicy(policy)) {
    throw new CofferError(
      'USAGE',
      'the policy retention keeps nothing (every keep* count is 0 or absent); refusing to forget every restore point',
      {
        hint: 'set at least one of keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly above 0',
      },
    );
  }
  const onWarning = req.onWarning;
  return forgetPoints(
    repo,
    { signal: req.signal },
    { policy, vm: req.vm, ...(onWarning ? { onEvent: (e) => onWarning(e.message) } : {}) },
  );
}

/** One log line per kept point (with the rules or protections that keep it) and one per removed point. */
export function retentionLogLines(r: ForgetReport): string[] {
  const lines = [
    `retention: ${r.kept.length} kept, ${r.removed.length} removed` +
      `${r.unreadable.length ? `, ${r.unreadable.length} unreadable left alone` : ''}`,
  ];
  for (const k of r.kept)
    lines.push(
      `retention: kept ${k.id} (${k.time}): ${k.reasons.join(', ')}${k.lockedUntil ? ` until ${k.lockedUntil}` : ''}`,
    );
  for (const x of r.removed) lines.push(`retention: removed ${x.id} (${x.time})`);
  return lines;
}
