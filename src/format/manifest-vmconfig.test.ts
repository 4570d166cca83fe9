// FORMAT.md §6: the optional `vmConfig` field round-trips, is validated only for its `kind`, and older manifests
// (without it) decode unchanged.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CofferError } from '../shared/index.js';
import { decodeManifest, encodeManifest, type Manifest } from './index.js';

const base: Manifest = {
  formatVersion: 1,
  id: 'a'.repeat(32),
  vm: { name: 'web01', id: 'vm-42' },
  time: '2026-01-01T00:00:00.000Z',
  endTime: '2026-01-01T00:01:00.000Z',
  parent: null,
  mode: 'full',
  host: 'h',
  tool: 'coffer test',
  tags: [],
  consistency: { snapshot: true, quiesced: false },
  disks: [
    {
      index: 0,
      sizeBytes: 1024,
      chunkSizeBytes: 1024,
      indexId: 'b'.repeat(64),
      chunkCount: 1,
      zeroChunks: 0,
      source: 'vsphere://vc:443/web01?disk=2000',
      changeToken: '52 aa/1',
    },
  ],
  stats: { bytesRead: 1024, bytesStored: 10, chunksNew: 1, chunksReused: 0, durationMs: 5 },
};

test('vmConfig round-trips; a manifest without it has none', () => {
  const cfg = { kind: 'vsphere-vm', version: 1, name: 'web01', disks: [{ key: 2000, capacityBytes: 1024 }] };
  const m = decodeManifest(encodeManifest({ ...base, vmConfig: cfg }), base.id);
  assert.deepEqual(m.vmConfig, cfg);
  assert.equal(decodeManifest(encodeManifest(base), base.id).vmConfig, undefined);
});

test('a vmConfig that is not an object with a string kind is CORRUPT', () => {
  for (const bad of [[], 'x', 5, { version: 1 }, { kind: 7 }, { kind: 'k'.repeat(65) }]) {
    const text = JSON.stringify({ ...base, vmConfig: bad });
    assert.throws(
      () => decodeManifest(Buffer.from(text), base.id),
      (e: unknown) => e instanceof CofferError && e.code === 'CORRUPT',
      JSON.stringify(bad),
    );
  }
});
