import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync, utimesSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CofferError, type BlobName } from '../../shared/index.js';
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

test('local: chunk names are synced before any other put; an unsyncable chunk directory fails that put', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-blob-'));
  try {
    const s = new LocalBlobStore(dir);
    await s.put('chunks/ab/x' as BlobName, Buffer.from('x'));
    await s.put('chunks/cd/y' as BlobName, Buffer.from('y'));
    assert.equal(await s.put('points/p1' as BlobName, Buffer.from('p1')), 'created');
    // a chunk whose directory is gone before its name was synced: the manifest that would refer to it is not written
    await s.put('chunks/ef/z' as BlobName, Buffer.from('z'));
    rmSync(join(dir, 'chunks/ef'), { recursive: true });
    await assert.rejects(s.put('points/p2' as BlobName, Buffer.from('p2')), (e: unknown) => e instanceof CofferError);
    assert.ok(!existsSync(join(dir, 'points/p2')));
    // the directories of chunks found present are synced too (another process may have written them)
    const other = new LocalBlobStore(dir);
    assert.ok(await other.stat('chunks/ab/x' as BlobName));
    assert.equal(await other.put('chunks/cd/y' as BlobName, Buffer.from('y')), 'exists');
    await Promise.all([other.flushDirs(), other.flushDirs()]);
    assert.equal(await other.put('points/p3' as BlobName, Buffer.from('p3')), 'created');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
