/**
 * Retention (GFS) as a pure function: restore points + policy + now -> which points to keep and why, which to remove.
 * No I/O: forget (engine/forget.ts) gathers the inputs (manifests, holds, storage locks) and acts on the answer.
 *
 * Semantics (restic's, DESIGN.md §Retention): per VM, points newest first; each rule keeps the newest point of each
 * calendar bucket (hour, day, ISO week, month, year) for its N most recent buckets that hold a point; keep-last keeps
 * the N newest points. Buckets are in UTC, so every host computes the same answer for the same repository.
 * A point is kept when any rule keeps it; protected points (an active hold, a storage retention lock) are always kept,
 * in addition: protection does not use up a rule's count.
 */

export interface RetentionPolicy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
}

export interface RetentionHold {
  /** ISO 8601; absent: until removed */
  until?: string;
  reason?: string;
}

export interface RetentionPoint {
  id: string;
  vm: string;
  /** ISO 8601 capture time */
  time: string;
  holds?: RetentionHold[];
  /** a storage retention lock on the point's manifest (BlobStore.retention; DESIGN.md §Immutability) */
  lock?: { lockedUntil?: string; legalHold: boolean };
}

export type KeepReason = 'last' | 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly' | 'hold' | 'locked';

export interface RetentionDecision {
  keep: { id: string; vm: string; time: string; reasons: KeepReason[] }[];
  remove: { id: string; vm: string; time: string }[];
}

export const RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
type Rule = (typeof RULES)[number];

/** True when the policy keeps nothing at all (forget refuses: it would delete every point). */
export function isEmptyPolicy(p: RetentionPolicy): boolean {
  return RULES.every((r) => !p[r]);
}

/** UTC bucket key of a time for a rule ('last' has none: every point is its own bucket). */
export function bucketOf(rule: Exclude<Rule, 'last'>, t: Date): string {
  const y = t.getUTCFullYear();
  const m = String(t.getUTCMonth() + 1).padStart(2, '0');
  const d = String(t.getUTCDate()).padStart(2, '0');
  switch (rule) {
    case 'yearly':
      return `${y}`;
    case 'monthly':
      return `${y}-${m}`;
    case 'daily':
      return `${y}-${m}-${d}`;
    case 'hourly':
      return `${y}-${m}-${d}T${String(t.getUTCHours()).padStart(2, '0')}`;
    case 'weekly': {
      const { year, week } = isoWeek(t);
      return `${year}-W${String(week).padStart(2, '0')}`;
    }
  }
}

/** ISO 8601 week (weeks start on Monday; week 1 holds the year's first Thursday), in UTC. */
export function isoWeek(t: Date): { year: number; week: number } {
  const d = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate()));
  const dow = d.getUTCDay() || 7; // Monday 1 .. Sunday 7
  d.setUTCDate(d.getUTCDate() + 4 - dow); // the Thursday of this week decides the year
  const year = d.getUTCFullYear();
  const jan1 = Date.UTC(year, 0, 1);
  return { year, week: Math.floor((d.getTime() - jan1) / 86_400_000 / 7) + 1 };
}

/** Whether a point is protected at `now`, and by what. */
export function protectionOf(p: RetentionPoint, now: Date): KeepReason[] {
  const out: KeepReason[] = [];
  if (p.holds?.some((h) => h.until === undefined || Date.parse(h.until) > now.getTime())) out.push('hold');
  if (
    p.lock &&
    (p.lock.legalHold || (p.lock.lockedUntil !== undefined && Date.parse(p.lock.lockedUntil) > now.getTime()))
  )
    out.push('locked');
  return out;
}

export function applyRetention(
  points: readonly RetentionPoint[],
  policy: RetentionPolicy,
  now: Date,
): RetentionDecision {
  for (const r of RULES) {
    const n = policy[r];
    if (n !== undefined && (!Number.isInteger(n) || n < 0))
      throw new RangeError(`keep-${r} must be a non-negative integer`);
  }
  const byVm = new Map<string, RetentionPoint[]>();
  for (const p of points) {
    if (Number.isNaN(Date.parse(p.time))) throw new RangeError(`restore point ${p.id}: invalid time ${p.time}`);
    const list = byVm.get(p.vm) ?? [];
    list.push(p);
    byVm.set(p.vm, list);
  }
  const decision: RetentionDecision = { keep: [], remove: [] };
  for (const vm of [...byVm.keys()].sort()) {
    // newest first; ties broken by id so the answer does not depend on input order
    const list = byVm
      .get(vm)!
      .slice()
      .sort((a, b) => Date.parse(b.time) - Date.parse(a.time) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    const left = new Map<Rule, number>(RULES.map((r) => [r, policy[r] ?? 0]));
    const last = new Map<Rule, string>();
    for (const p of list) {
      const t = new Date(p.time);
      const reasons: KeepReason[] = [];
      for (const rule of RULES) {
        if (left.get(rule)! <= 0) continue;
        const bucket = rule === 'last' ? p.id : bucketOf(rule, t);
        if (bucket === last.get(rule)) continue;
        last.set(rule, bucket);
        left.set(rule, left.get(rule)! - 1);
        reasons.push(rule);
      }
      reasons.push(...protectionOf(p, now));
      if (reasons.length > 0) decision.keep.push({ id: p.id, vm: p.vm, time: p.time, reasons });
      else decision.remove.push({ id: p.id, vm: p.vm, time: p.time });
    }
  }
  return decision;
}
