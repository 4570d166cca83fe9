import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DiskSignals, Manifest } from '../../format/index.js';
import { DEFAULT_SIGNAL_THRESHOLDS, scoreSignals } from './anomaly-score.js';
import { ChangeSignals, SIGNAL_REGIONS } from './change-signals.js';
import { latestClean, pointState } from './point-state.js';

const CHUNK = 65536;
const SIZE = 1024 * CHUNK; // 64 MiB, 1024 chunks

/** A disk's signals: `changed` chunks spread from `first` on, `incompressible` of them did not compress. */
function disk(changed: number, incompressible: number, opts: { first?: number; step?: number } = {}): DiskSignals {
  const s = new ChangeSignals(0, SIZE / CHUNK);
  for (let k = 0; k < changed; k++) {
    const i = (opts.first ?? 0) + k * (opts.step ?? 1);
    s.changed(i, CHUNK, k < incompressible ? CHUNK + 36 : CHUNK / 4);
  }
  return s.result(true);
}

function history(points: DiskSignals[]): Manifest[] {
  return points.map(
    (d) =>
      ({
        disks: [{ sizeBytes: SIZE }],
        signals: scoreSignals([d], [SIZE], []),
      }) as unknown as Manifest,
  );
}

test('ChangeSignals: counts, incompressible share from the stored size, regions', () => {
  const s = new ChangeSignals(3, 1600);
  s.changed(0, CHUNK, CHUNK + 36); // stored uncompressed: incompressible
  s.changed(1599, CHUNK, 1000); // compressible
  s.changed(800, CHUNK); // not measured (already stored)
  const r = s.result(true);
  assert.equal(r.index, 3);
  assert.equal(r.changedChunks, 3);
  assert.equal(r.changedBytes, 3 * CHUNK);
  assert.equal(r.measuredChunks, 2);
  assert.equal(r.incompressibleChunks, 1);
  assert.equal(r.regions.length, SIGNAL_REGIONS);
  assert.equal(r.regions[0], 1);
  assert.equal(r.regions[8], 1);
  assert.equal(r.regions[15], 1);
});

test('no parent: never scored', () => {
  const d = { ...disk(1024, 1024), hasParent: false };
  const s = scoreSignals([d], [SIZE], []);
  assert.equal(s.score, 0);
  assert.equal(s.suspicious, false);
});

test('ordinary churn against a history of ordinary churn: score 0', () => {
  const past = history(Array.from({ length: 10 }, (_, i) => disk(10 + i, 1)));
  const s = scoreSignals([disk(14, 2)], [SIZE], past);
  assert.equal(s.score, 0, s.reasons.join('; '));
  assert.equal(s.historyPoints, 10);
});

test('a VM whose usual churn is incompressible is not flagged for it; a much larger rewrite is', () => {
  const past = history(Array.from({ length: 10 }, () => disk(40, 40, { step: 20 })));
  assert.equal(scoreSignals([disk(45, 45, { step: 20 })], [SIZE], past).suspicious, false);
  const attack = scoreSignals([disk(600, 600)], [SIZE], past);
  assert.equal(attack.suspicious, true);
  assert.match(attack.reasons[0]!, /^disk 0: 59% of the disk rewritten with incompressible data; usual: 3\.9%/);
});

test('mass encryption after compressible churn: suspicious, with every reason in words', () => {
  const past = history(Array.from({ length: 10 }, () => disk(12, 1)));
  const s = scoreSignals([disk(400, 390, { step: 2 })], [SIZE], past);
  assert.equal(s.suspicious, true);
  assert.ok(s.score >= 80, `score ${s.score}`);
  const why = s.reasons.join('\n');
  assert.match(why, /rewritten with incompressible data; usual: 0\.1% \(median of 10 points\)/);
  assert.match(why, /98% of the changed chunks do not compress; usual: 8\.3%/);
  assert.match(why, /of the disk changed/);
  assert.match(why, /changes spread over 81% of the disk's regions; usual: 6\.3%/);
});

test('without history only the absolute floors apply; thresholds can be overridden per policy', () => {
  assert.equal(scoreSignals([disk(20, 20)], [SIZE], []).suspicious, false); // 2% of the disk
  const big = scoreSignals([disk(300, 300)], [SIZE], []);
  assert.equal(big.suspicious, true);
  assert.match(big.reasons[0]!, /no usual yet/);
  const policy = {
    ...DEFAULT_SIGNAL_THRESHOLDS,
    suspiciousScore: 90,
    minIncompressibleShare: 0.5,
    minChangedShare: 0.5,
  };
  const lax = scoreSignals([disk(300, 300)], [SIZE], [], policy);
  assert.equal(lax.suspicious, false, `score ${lax.score}: ${lax.reasons.join('; ')}`);
  assert.equal(lax.threshold, 90);
});

test('states and the last clean point: points after the newest suspicious one are not clean', () => {
  const m = (suspicious: boolean) => ({ signals: { suspicious, score: suspicious ? 90 : 0, reasons: [] } }) as never;
  const p = [
    { id: 'a', status: pointState(m(false), { time: 't', ok: true }) },
    { id: 'b', status: pointState(m(false), undefined, { time: 't', ok: false }) },
    { id: 'c', status: pointState(m(false)) },
    { id: 'd', status: pointState(m(true)) },
    { id: 'e', status: pointState(m(false)) },
  ];
  assert.deepEqual(
    p.map((x) => x.status.state),
    ['verified', 'failed', 'clean', 'suspicious', 'clean'],
  );
  assert.equal(latestClean(p)?.id, 'c');
  assert.equal(latestClean(p, { requireCheck: true }), undefined);
  assert.equal(latestClean(p.slice(0, 3))?.id, 'c');
  assert.equal(latestClean([p[3]!]), undefined);
  assert.equal(pointState({} as never).score, null, 'a point written before signals existed');
});
