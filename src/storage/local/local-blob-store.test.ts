import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync, utimesSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { BlobName } from '../../shared/index.js';
import { blobStoreSuite } from '../testing/blob-store-suite.js';
import { LocalBlobStore } from './local-blob-store.js';

blobStoreSuite('local filesystem', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-blob-'));
  return { store: new LocalBlobStore(dir), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

test(
  'local: put leaves no temp files, list hides temp files of crashed writers, ' + 'sweepTemp removes old ones',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coffer-blob-'));
    try {
      const s = new LocalBlobStore(dir);
      await s.put('chunks/ab/x' as BlobName, Buffer.from('data'));
      assert.deepEqual(readdirSync(join(dir, 'chunks/ab')), ['x']);
      // a writer that crashed between write and link
      writeFileSync(join(dir, 'chunks/ab/.tmp-deadbeef'), 'partial');
      const names: string[] = [];
      for await (const b of s.list('chunks/')) names.push(b.name);
      assert.deepEqual(names, ['chunks/ab/x']);
      assert.equal(await s.sweepTemp(60_000), 0, 'a fresh temp file may belong to a live writer');
      const old = new Date(Date.now() - 3_600_000);
      utimesSync(join(dir, 'chunks/ab/.tmp-deadbeef'), old, old);
      assert.equal(await s.sweepTemp(60_000), 1);
      assert.ok(!existsSync(join(dir, 'chunks/ab/.tmp-deadbeef')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('local: stored blobs are read-only files and a directory in the way is not a blob', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-blob-'));
  try {
    const s = new LocalBlobStore(dir);
    await s.put('a' as BlobName, Buffer.from('x'));
    mkdirSync(join(dir, 'dir'));
    assert.equal(await s.stat('dir' as BlobName), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
