import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyRetention, isoWeek, type RetentionPoint, type RetentionPolicy } from './retention.js';

// dist-test/src/engine/ -> test/golden/retention/ (expected outputs computed by restic: generate-with-restic.mjs)
const GOLDEN = new URL('../../../test/golden/retention/', import.meta.url).pathname;

interface GoldenFile {
  description: string;
  now: string;
  points: RetentionPoint[];
  cases: { policy: RetentionPolicy; expected: { keep: { id: string; reasons: string[] }[]; remove: string[] } }[];
}

const files = readdirSync(GOLDEN).filter((f) => f.endsWith('.json'));
test('there are golden retention files', () => assert.ok(files.length >= 3, `found ${files.length}`));

for (const f of files) {
  const doc = JSON.parse(readFileSync(join(GOLDEN, f), 'utf8')) as GoldenFile;
  for (const c of doc.cases) {
    test(`retention golden ${f}: ${JSON.stringify(c.policy)}`, () => {
      const d = applyRetention(doc.points, c.policy, new Date(doc.now));
      const keep = d.keep
        .map((k) => ({ id: k.id, reasons: k.reasons as string[] }))
        .sort((a, b) => a.id.localeCompare(b.id));
      assert.deepEqual(keep, c.expected.keep);
      assert.deepEqual(d.remove.map((r) => r.id).sort(), c.expected.remove);
      // input order does not matter
      const again = applyRetention(doc.points.slice().reverse(), c.policy, new Date(doc.now));
      assert.deepEqual(
        again.keep.map((k) => k.id).sort(),
        keep.map((k) => k.id),
      );
    });
  }
}

test('retention is pure and total: every point is kept or removed exactly once', () => {
  const points: RetentionPoint[] = Array.from({ length: 50 }, (_, i) => ({
    id: i.toString(16).padStart(32, '0'),
    vm: i % 3 ? 'a' : 'b',
    time: new Date(Date.UTC(2026, 0, 1) + i * 7_200_000).toISOString(),
  }));
  const d = applyRetention(points, { daily: 2, last: 1 }, new Date('2026-02-01T00:00:00Z'));
  assert.equal(d.keep.length + d.remove.length, points.length);
  assert.equal(new Set([...d.keep.map((k) => k.id), ...d.remove.map((r) => r.id)]).size, points.length);
  assert.deepEqual(
    applyRetention(points, {}, new Date()).keep,
    [],
    'an empty policy keeps nothing (forget refuses it before)',
  );
  assert.throws(() => applyRetention(points, { daily: -1 }, new Date()), RangeError);
});

test('ISO weeks', () => {
  assert.deepEqual(isoWeek(new Date('2021-01-03T12:00:00Z')), { year: 2020, week: 53 });
  assert.deepEqual(isoWeek(new Date('2021-01-04T00:00:00Z')), { year: 2021, week: 1 });
  assert.deepEqual(isoWeek(new Date('2024-12-30T00:00:00Z')), { year: 2025, week: 1 });
  assert.deepEqual(isoWeek(new Date('2026-11-25T00:00:00Z')), { year: 2026, week: 48 });
});
