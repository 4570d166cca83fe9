import {
  forget,
  isEmptyPolicy,
  latestClean,
  pointStatuses,
  type ForgetReport,
  type RetentionPolicy,
} from '../engine/index.js';
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

/** The tag a policy's backups carry: its retention only looks at the points with it (unless removeOtherPoints). */
export function policyTag(policyId: string): string {
  return `coffer-policy:${policyId}`;
}

/**
 * What a retention keeps, one line a rule, for the policy form, the API (`retentionKeeps`) and the docs. A point is
 * kept when any rule keeps it; a point no rule keeps is removed. GFS rules keep ONE point per period (the newest),
 * so `keepDaily 7` removes the earlier points of a day: use keepLast for "keep N restore points".
 */
export function describeRetention(r: PolicyRetention): string[] {
  const out: string[] = [];
  const n = (k: number, one: string, many: string) => `${k} ${k === 1 ? one : many}`;
  if (r.keepLast)
    out.push(
      `keepLast ${r.keepLast}: the ${n(r.keepLast, 'newest restore point', 'newest restore points')}, ` +
        'whatever their age',
    );
  const gfs = [
    ['keepHourly', 'hour', 'hours'],
    ['keepDaily', 'day', 'days'],
    ['keepWeekly', 'ISO week', 'ISO weeks'],
    ['keepMonthly', 'month', 'months'],
    ['keepYearly', 'year', 'years'],
  ] as const;
  for (const [k, one, many] of gfs) {
    const v = r[k];
    if (v)
      out.push(
        `${k} ${v}: the newest restore point of each of the last ${n(v, one, many)} that have one (UTC); ` +
          `earlier points of the same ${one} go unless another rule keeps them`,
      );
  }
  out.push(
    r.removeOtherPoints
      ? "removeOtherPoints: the rules apply to all the VM's restore points in the repository, also those made by " +
          'hand or by another policy'
      : 'only restore points this policy made are counted and removed; points made by hand (CLI) or by another ' +
          'policy are left alone',
  );
  out.push('held or storage-locked restore points are always kept');
  return out;
}

/** True when the retention keeps nothing (every count absent or 0): the server refuses it, as `coffer forget` does. */
export function isEmptyRetention(r: PolicyRetention): boolean {
  return isEmptyPolicy(toRetentionPolicy(r));
}

/**
 * Applies a policy's retention to one VM's restore points (engine forget: holds and storage locks are kept and
 * reported as kept). Only the points the policy made (policyTag) are looked at, unless `removeOtherPoints` is set or
 * no policy id is given. Never with an empty policy: that would remove every point of the VM.
 */
export async function applyPolicyRetention(
  repo: Repository,
  req: {
    vm: string;
    retention: PolicyRetention;
    signal: AbortSignal;
    /** the policy whose points these are (policyTag); absent: every point of the VM */
    policyId?: string;
    onWarning?: (m: string) => void;
  },
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
  const tag = req.policyId !== undefined && !req.retention.removeOtherPoints ? policyTag(req.policyId) : undefined;
  return forget(repo, {
    policy,
    vm: req.vm,
    signal: req.signal,
    ...(tag ? { only: (m) => m.tags.includes(tag) } : {}),
    ...(onWarning ? { onWarning } : {}),
  });
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

/** A hold the server put on a restore point because of a suspicious point (DESIGN.md §Ransomware signals). */
export interface IncidentHold {
  pointId: string;
  role: 'suspicious' | 'last-clean';
  until: string | null;
}

/**
 * The response to a suspicious restore point: holds (FORMAT.md §10) on it and on the VM's last clean point before it
 * (engine latestClean: neither suspicious nor failed, older than the VM's newest suspicious point), `days` long
 * (0: until removed by hand). Retention (engine forget) never removes a held point, so the good data cannot age
 * out while the incident is investigated. Returns the holds added; `lastClean` null when the VM has none.
 */
export async function holdSuspiciousPoint(
  repo: Repository,
  req: { vm: string; pointId: string; score: number; days: number; signal: AbortSignal; now?: number },
): Promise<{ holds: IncidentHold[]; lastClean: string | null }> {
  const op = { signal: req.signal };
  const now = req.now ?? Date.now();
  const until = req.days > 0 ? new Date(now + req.days * 86_400_000).toISOString() : undefined;
  const all = (await repo.listPoints(op)).filter((m) => m.vm.name === req.vm);
  const upTo = all.findIndex((m) => m.id === req.pointId);
  const statuses = await pointStatuses(repo, upTo >= 0 ? all.slice(0, upTo + 1) : all, op);
  const clean = latestClean(statuses)?.manifest.id ?? null;
  const holds: IncidentHold[] = [];
  const add = async (pointId: string, role: IncidentHold['role'], reason: string) => {
    await repo.addHold(pointId, { ...(until ? { until } : {}), reason, now }, op);
    holds.push({ pointId, role, until: until ?? null });
  };
  await add(req.pointId, 'suspicious', `coffer-incident: suspicious restore point (score ${req.score})`);
  if (clean) await add(clean, 'last-clean', `coffer-incident: last clean point before suspicious ${req.pointId}`);
  return { holds, lastClean: clean };
}
