import { SIGNALS_VERSION, type DiskSignals, type Manifest, type PointSignals } from '../../format/index.js';

/** Thresholds of the anomaly score (DESIGN.md §Ransomware signals); a policy may override any of them. */
export interface SignalThresholds {
  /** score at or above which a restore point is suspicious (0..100) */
  suspiciousScore: number;
  /** earlier restore points of the VM the score compares with */
  historyPoints: number;
  /** below this many earlier points with signals, only the absolute floors below apply */
  minHistoryPoints: number;
  /** share of a disk rewritten with incompressible data that is never alarming on its own */
  minIncompressibleShare: number;
  /** share of a disk changed that is never alarming on its own */
  minChangedShare: number;
  /** a value is unusual above median x this factor and above median + `spreadFactor` x spread (scaled MAD) */
  medianFactor: number;
  spreadFactor: number;
  /** share of changed chunks that must be incompressible for the incompressibility signal */
  minIncompressibleFraction: number;
}

export const DEFAULT_SIGNAL_THRESHOLDS: SignalThresholds = {
  suspiciousScore: 50,
  historyPoints: 10,
  minHistoryPoints: 3,
  minIncompressibleShare: 0.03,
  minChangedShare: 0.05,
  medianFactor: 3,
  spreadFactor: 4,
  minIncompressibleFraction: 0.6,
};

/** The measures of one disk the score looks at, each a share (0..1). */
export interface DiskMeasures {
  /** changed bytes / disk size */
  changedShare: number;
  /** incompressible changed bytes (estimated from the measured chunks) / disk size */
  incompressibleShare: number;
  /** incompressible / measured changed chunks */
  incompressibleFraction: number;
  /** regions with at least one changed chunk / regions */
  regionsTouched: number;
}

export function measuresOf(d: DiskSignals, sizeBytes: number): DiskMeasures {
  const fraction = d.measuredChunks > 0 ? d.incompressibleChunks / d.measuredChunks : 0;
  const changedShare = sizeBytes > 0 ? d.changedBytes / sizeBytes : 0;
  return {
    changedShare,
    incompressibleShare: changedShare * fraction,
    incompressibleFraction: fraction,
    regionsTouched: d.regions.length > 0 ? d.regions.filter((n) => n > 0).length / d.regions.length : 0,
  };
}

/** Median and spread (median absolute deviation x 1.4826, the standard deviation for normal data). */
export function medianAndSpread(values: number[]): { median: number; spread: number } {
  if (values.length === 0) return { median: 0, spread: 0 };
  const med = median(values);
  return { median: med, spread: 1.4826 * median(values.map((v) => Math.abs(v - med))) };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const pct = (x: number) => `${x >= 0.1 ? (x * 100).toFixed(0) : (x * 100).toFixed(1)}%`;

/**
 * Scores the signals of a new restore point against the VM's earlier points (their `signals` sections, oldest first).
 * Each disk is scored on its own and the point gets the highest disk score. Components (DESIGN.md §Ransomware signals):
 * incompressible rewrite volume above usual (up to 50), share of changed chunks incompressible above usual (up to 30),
 * changed volume above usual (up to 20), spread across the disk above usual (up to 10). Capped at 100.
 */
export function scoreSignals(
  disks: DiskSignals[],
  sizes: number[],
  history: Manifest[],
  thresholds: SignalThresholds = DEFAULT_SIGNAL_THRESHOLDS,
): PointSignals {
  const t = thresholds;
  const earlier = history.filter((m) => m.signals).slice(-t.historyPoints);
  let score = 0;
  const reasons: string[] = [];
  for (const d of disks) {
    if (!d.hasParent) continue; // a full read without a base: everything "changed", nothing to compare
    const now = measuresOf(d, sizes[d.index] ?? 0);
    const past: DiskMeasures[] = [];
    for (const m of earlier) {
      const ds = m.signals!.disks.find((x) => x.index === d.index && x.hasParent);
      const size = m.disks[d.index]?.sizeBytes;
      if (ds && size) past.push(measuresOf(ds, size));
    }
    const known = past.length >= t.minHistoryPoints;
    const usual = (k: keyof DiskMeasures) => medianAndSpread(known ? past.map((p) => p[k]) : []);
    const limit = (k: keyof DiskMeasures, floor: number) => {
      const u = usual(k);
      return { ...u, limit: Math.max(floor, u.median * t.medianFactor, u.median + t.spreadFactor * u.spread) };
    };
    const said = (what: string, u: { median: number }) =>
      known ? `${what}; usual: ${pct(u.median)} (median of ${past.length} points)` : `${what}; no usual yet`;
    let s = 0;
    const why: string[] = [];
    const inc = limit('incompressibleShare', t.minIncompressibleShare);
    if (now.incompressibleShare > inc.limit) {
      s += 25 + 25 * Math.min(1, (now.incompressibleShare / inc.limit - 1) / 3);
      why.push(said(`${pct(now.incompressibleShare)} of the disk rewritten with incompressible data`, inc));
    }
    const frac = usual('incompressibleFraction');
    if (
      now.incompressibleFraction >= t.minIncompressibleFraction &&
      now.incompressibleFraction - frac.median >= 0.25 &&
      now.changedShare > t.minChangedShare / 10
    ) {
      s += 15 + 15 * Math.min(1, (now.incompressibleFraction - frac.median - 0.25) / 0.5);
      why.push(said(`${pct(now.incompressibleFraction)} of the changed chunks do not compress`, frac));
    }
    const ch = limit('changedShare', t.minChangedShare);
    if (now.changedShare > ch.limit) {
      s += 10 + 10 * Math.min(1, (now.changedShare / ch.limit - 1) / 3);
      why.push(said(`${pct(now.changedShare)} of the disk changed`, ch));
    }
    const spread = limit('regionsTouched', 0.5);
    if (now.regionsTouched > spread.limit && s > 0) {
      s += 10;
      why.push(said(`changes spread over ${pct(now.regionsTouched)} of the disk's regions`, spread));
    }
    s = Math.min(100, Math.round(s));
    if (why.length > 0) reasons.push(`disk ${d.index}: ${why.join('; ')}`);
    score = Math.max(score, s);
  }
  return {
    version: SIGNALS_VERSION,
    disks,
    score,
    threshold: t.suspiciousScore,
    suspicious: score >= t.suspiciousScore,
    reasons,
    historyPoints: earlier.length,
  };
}
