import type { Manifest } from '../../format/index.js';

/**
 * What an operator needs to know about a restore point (DESIGN.md §Ransomware signals):
 * `failed` (its newest verification or recoverability check failed), `suspicious` (its anomaly score reached the
 * threshold), `verified` (newest verification ok and no failed check), `clean` (none of these).
 */
export type PointState = 'failed' | 'suspicious' | 'verified' | 'clean';

export interface Outcome {
  time: string;
  ok: boolean;
}

export interface PointStatus {
  state: PointState;
  suspicious: boolean;
  /** anomaly score 0..100, null for points written before signals existed */
  score: number | null;
  reasons: string[];
  verification: Outcome | null;
  check: Outcome | null;
  /** newest file-level indicators record (FORMAT.md §8.2): `found` true when ransomware traces were seen */
  indicators?: { time: string; found: boolean } | null;
  /** active holds (FORMAT.md §10), when the caller looked them up (the server's catalog does) */
  holds?: { until: string | null; reason: string | null }[];
}

export interface StatusExtras {
  indicators?: { time: string; found: boolean } | undefined;
  holds?: { until?: string | undefined; reason?: string | undefined }[] | undefined;
}

export function pointState(
  m: Manifest,
  verification?: Outcome,
  check?: Outcome,
  extras: StatusExtras = {},
): PointStatus {
  const suspicious = m.signals?.suspicious === true;
  const failed = verification?.ok === false || check?.ok === false;
  const state: PointState = failed ? 'failed' : suspicious ? 'suspicious' : verification?.ok ? 'verified' : 'clean';
  return {
    state,
    suspicious,
    score: m.signals?.score ?? null,
    reasons: m.signals?.reasons ?? [],
    verification: verification ?? null,
    check: check ?? null,
    ...(extras.indicators !== undefined ? { indicators: extras.indicators } : {}),
    ...(extras.holds !== undefined
      ? { holds: extras.holds.map((h) => ({ until: h.until ?? null, reason: h.reason ?? null })) }
      : {}),
  };
}

/**
 * The last clean point of one VM's points (oldest first, with their statuses): the newest point that is neither
 * suspicious nor failed and older than the VM's newest suspicious point (the points after a suspicious one may hold
 * the attacker's data without standing out themselves). With `requireCheck`, only points whose check passed.
 */
export function latestClean<T extends { status: PointStatus }>(
  points: T[],
  opts: { requireCheck?: boolean } = {},
): T | undefined {
  let end = points.length;
  for (let i = points.length - 1; i >= 0; i--) {
    if (points[i]!.status.suspicious) {
      end = i;
      break;
    }
  }
  for (let i = end - 1; i >= 0; i--) {
    const s = points[i]!.status;
    if (s.state === 'failed' || s.suspicious) continue;
    if (opts.requireCheck && s.check?.ok !== true) continue;
    return points[i];
  }
  return undefined;
}
