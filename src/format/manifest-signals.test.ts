// FORMAT.md §6.2: the optional `signals` section round-trips; a manifest without it (every older one) decodes
// unchanged; a section of an unknown version or one that does not check is dropped, the manifest stays readable.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeManifest, encodeManifest, SIGNALS_VERSION, type Manifest, type PointSignals } from './index.js';

const base: Manifest = {
  formatVersion: 1,
  id: 'c'.repeat(32),
  vm: { name: 'db01', id: null },
  time: '2026-01-01T00:00:00.000Z',
  endTime: '2026-01-01T00:01:00.000Z',
  parent: null,
  mode: 'full',
  host: 'h',
  tool: 'coffer test',
  tags: [],
  consistency: { snapshot: false, quiesced: false },
  disks: [
    {
      index: 0,
      sizeBytes: 1 << 20,
      chunkSizeBytes: 65536,
      indexId: 'd'.repeat(64),
      chunkCount: 16,
      zeroChunks: 0,
      source: 'file:///x',
      changeToken: null,
    },
  ],
  stats: { bytesRead: 1 << 20, bytesStored: 10, chunksNew: 16, chunksReused: 0, durationMs: 5 },
};

const signals: PointSignals = {
  version: SIGNALS_VERSION,
  disks: [
    {
      index: 0,
      hasParent: true,
      changedBytes: 655360,
      changedChunks: 10,
      measuredChunks: 9,
      incompressibleChunks: 8,
      regions: [1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 4],
    },
  ],
  score: 80,
  threshold: 50,
  suspicious: true,
  reasons: ['disk 0: 56% of the disk rewritten with incompressible data; usual: 1.2% (median of 10 points)'],
  historyPoints: 10,
};

test('signals round-trip; a manifest without them has none', () => {
  assert.deepEqual(decodeManifest(encodeManifest({ ...base, signals }), base.id).signals, signals);
  assert.equal(decodeManifest(encodeManifest(base), base.id).signals, undefined);
});

test('a signals section of a newer version is dropped, the point stays readable', () => {
  const m = decodeManifest(encodeManifest({ ...base, signals: { ...signals, version: 2 } }), base.id);
  assert.equal(m.signals, undefined);
  assert.equal(m.id, base.id);
});

test('a signals section that does not check is dropped, never an exception', () => {
  const bad: unknown[] = [
    'x',
    [],
    { ...signals, score: 101 },
    { ...signals, reasons: 'no' },
    { ...signals, disks: [{ ...signals.disks[0], regions: [-1] }] },
    { ...signals, disks: [{ ...signals.disks[0], changedBytes: 1.5 }] },
    { ...signals, reasons: Array.from({ length: 65 }, () => 'r') },
  ];
  for (const s of bad) {
    const bytes = Buffer.from(JSON.stringify({ ...base, signals: s }));
    assert.equal(decodeManifest(bytes, base.id).signals, undefined, JSON.stringify(s).slice(0, 80));
  }
});
