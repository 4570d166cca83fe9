// Archive tier. Against real Azurite: tiers move, reading an archived blob is 409 BlobArchived (ARCHIVED, exit 26),
// metadata stays readable. Azurite rehydrates at once, so the rehydration delay is checked with
// ArchiveEnforcingBlobStore, a test double that enforces Azure's documented behaviour with a fake clock.
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { archivePoints, rehydratePoints, tierSummary } from '../src/engine/index.js';
import { Repository } from '../src/repository/index.js';
import { openCloudStore } from '../src/storage/index.js';
import { ArchiveEnforcingBlobStore } from '../src/storage/testing/archive-enforcing-blob-store.js';
import { CofferError } from '../src/shared/index.js';
import { AZURITE_ACCOUNT, startAzurite } from './helpers/cloud-servers.js';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { assertSameBytes, expectError, expectOk, fastPrng, makeRandomDisk } from './helpers/more-cli.js';

const KDF = ['--kdf-cost', '1024'];

describe('archive tier', () => {
  const dir = tempDir('coffer-archive-');
  process.env.COFFER_CACHE_DIR = join(dir.path, 'cache'); // not the user's ~/.cache
  let azurite: Awaited<ReturnType<typeof startAzurite>>;
  let env: Record<string, string>;
  const disk = join(dir.path, 'disk.raw');
  const disk2 = join(dir.path, 'disk2.raw');
  let p1: { id: string };
  let p2: { id: string };
  const repo = `azure://${AZURITE_ACCOUNT}/archived`;

  before(async () => {
    azurite = await startAzurite(join(dir.path, 'azurite'));
    env = { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString };
    makeRandomDisk(disk, 3 * 1024 * 1024, 'archive');
    copyFileSync(disk, disk2);
    writeFileSync(disk2, fastPrng('archive-changed', 1024 * 1024), { flag: 'r+' });
    expectOk(coffer(['init', '--repo', repo, '--json', ...KDF], env));
    p1 = expectOk(coffer(['backup', '--repo', repo, '--vm', 'vm', disk, '--json'], env));
    p2 = expectOk(coffer(['backup', '--repo', repo, '--vm', 'vm', disk2, '--json'], env));
  });
  after(async () => {
    await azurite?.stop();
    dir.cleanup();
  });

  test('Azurite: archive an old point, restore fails ARCHIVED (exit 26), the shared data and the newer point stay readable, rehydrate, restore', () => {
    const mv = expectOk(coffer(['archive', 'move', '--repo', repo, p1.id, '--tier', 'Archive', '--json'], env));
    assert.deepEqual([mv.moved, mv.shared], [1, 2], 'only the chunk no other point uses moves');
    assert.equal(expectOk(coffer(['list', '--repo', repo, '--json'], env)).length, 2, 'manifests and indexes stay hot');
    const e = expectError(
      coffer(['restore', '--repo', repo, p1.id, '--disk', '0', '--target', join(dir.path, 'no'), '--json'], env),
      26,
      'ARCHIVED',
    );
    assert.match(e.hint ?? '', /rehydrate/);
    const st = expectOk(coffer(['archive', 'status', '--repo', repo, p1.id, '--json'], env));
    assert.deepEqual([st.chunks.Archive, st.ready], [1, false]);
    const out2 = join(dir.path, 'p2');
    expectOk(coffer(['restore', '--repo', repo, p2.id, '--disk', '0', '--target', out2, '--json'], env));
    assertSameBytes(out2, disk2);
    const rh = expectOk(coffer(['archive', 'rehydrate', '--repo', repo, p1.id, '--priority', 'high', '--json'], env));
    assert.equal(rh.started, 1);
    assert.equal(
      expectOk(coffer(['archive', 'status', '--repo', repo, p1.id, '--json'], env)).ready,
      true,
      'Azurite rehydrates at once',
    );
    const out1 = join(dir.path, 'p1');
    expectOk(coffer(['restore', '--repo', repo, p1.id, '--disk', '0', '--target', out1, '--json'], env));
    assertSameBytes(out1, disk);
    expectError(coffer(['archive', 'move', '--repo', repo, p1.id, '--tier', 'Frozen', '--json'], env), 2, 'USAGE');
    expectError(
      coffer(['archive', 'move', '--repo', join(dir.path, 'nope'), '--tier', 'Cool', '--older-than', '1', '--json']),
      3,
      'REPO_NOT_FOUND',
    );
  });

  test('rehydration takes time (documented Azure behaviour, enforced by the double): unreadable while pending, High ~1 h, Standard ~15 h', async () => {
    let now = Date.now();
    const store = new ArchiveEnforcingBlobStore(await openCloudStore(repo, env, { create: false }), () => now);
    const r = await Repository.open(store, TEST_PASSWORD);
    await archivePoints(r, [p1.id, p2.id], 'Archive');
    assert.ok(
      store.moves.every((m) => m.name.startsWith('chunks/')),
      'metadata is never moved',
    );
    const m = await r.loadManifest(p2.id); // metadata readable while the data is archived
    const id0 = (await r.loadIndex(m.disks[0]!.indexId)).id(0).toString('hex');
    await assert.rejects(r.getChunkBlob(id0), (e: unknown) => e instanceof CofferError && e.code === 'ARCHIVED');
    const a = await rehydratePoints(r, [p2.id], { priority: 'High' });
    assert.equal(a.started, 3);
    const b = await rehydratePoints(r, [p1.id], { priority: 'Standard' });
    assert.deepEqual([b.started, b.pending], [1, 2], 'p1 shares two chunks already rehydrating');
    let s = await tierSummary(r, [p2.id]);
    assert.deepEqual([s.rehydrating, s.readable, s.total], [3, 0, 3]);
    await assert.rejects(r.getChunkBlob(id0), (e: unknown) => e instanceof CofferError && e.code === 'ARCHIVED');
    now += 3_600_000 + 1000;
    s = await tierSummary(r, [p2.id]);
    assert.deepEqual([s.rehydrating, s.readable], [0, 3]);
    assert.ok((await r.getChunkBlob(id0)).length > 0);
    assert.equal((await tierSummary(r, [p1.id])).readable, 2, "p1's own chunk (Standard) is still pending");
    now += 15 * 3_600_000;
    assert.equal((await tierSummary(r, [p1.id])).readable, 3);
  });
});
