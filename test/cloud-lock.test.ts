// Retention locks. Azurite and s3rver do not implement immutability (501), so the lock semantics are checked with
// RetentionEnforcingBlobStore (a test double enforcing Azure's / S3's documented behaviour) over a real Azurite
// store; against Azurite itself we check that a lock fails clearly. Local repositories: append-only mode.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { lockPoints } from '../src/engine/index.js';
import { Repository, chunkBlob, indexBlob, pointBlob } from '../src/repository/index.js';
import { openCloudStore } from '../src/storage/index.js';
import { RetentionEnforcingBlobStore } from '../src/storage/testing/retention-enforcing-blob-store.js';
import { CofferError, type BlobName } from '../src/shared/index.js';
import { AZURITE_ACCOUNT, startAzurite } from './helpers/cloud-servers.js';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { assertNoStack, expectError, expectOk, fastPrng, makeRandomDisk } from './helpers/more-cli.js';
import { copyFileSync, writeFileSync } from 'node:fs';

const KDF = ['--kdf-cost', '1024'];
const DAY = 86_400_000;

describe('retention locks', () => {
  const dir = tempDir('coffer-lock-');
  process.env.COFFER_CACHE_DIR = join(dir.path, 'cache'); // not the user's ~/.cache
  let azurite: Awaited<ReturnType<typeof startAzurite>>;
  let env: Record<string, string>;
  const repo = `azure://${AZURITE_ACCOUNT}/locked`;
  const disk = join(dir.path, 'disk.raw');
  const disk2 = join(dir.path, 'disk2.raw');
  let p1: { id: string };
  let p2: { id: string };

  before(async () => {
    azurite = await startAzurite(join(dir.path, 'azurite'));
    env = { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString };
    makeRandomDisk(disk, 3 * 1024 * 1024, 'lock');
    copyFileSync(disk, disk2);
    writeFileSync(disk2, fastPrng('lock-changed', 1024 * 1024), { flag: 'r+' });
    expectOk(coffer(['init', '--repo', repo, '--json', ...KDF], env));
    p1 = expectOk(coffer(['backup', '--repo', repo, '--vm', 'vm', disk, '--json'], env));
    p2 = expectOk(coffer(['backup', '--repo', repo, '--vm', 'vm', disk2, '--json'], env));
  });
  after(async () => {
    await azurite?.stop();
    dir.cleanup();
  });

  test('lock: manifest, indexes and chunks are locked; shared chunks keep the later expiry; nothing deletes them early', async () => {
    let now = Date.now();
    const store = new RetentionEnforcingBlobStore(await openCloudStore(repo, env, { create: false }), () => now);
    const r = await Repository.open(store, TEST_PASSWORD);
    const t1 = new Date(now + 10 * DAY);
    const t2 = new Date(now + 20 * DAY);
    await lockPoints(r, [p2.id], { until: t2 });
    const [res] = await lockPoints(r, [p1.id], { until: t1 }); // p1 shares 2 of its 3 chunks with p2
    assert.equal(res!.chunks, 3);
    assert.equal(store.shortenAttempts, 0, 'a lock is never shortened');
    const m1 = await r.loadManifest(p1.id);
    const m2 = await r.loadManifest(p2.id);
    const i1 = await r.loadIndex(m1.disks[0]!.indexId);
    const i2 = await r.loadIndex(m2.disks[0]!.indexId);
    const shared = i1.id(1).toString('hex');
    const onlyP1 = i1.id(0).toString('hex');
    assert.equal(i2.id(1).toString('hex'), shared);
    assert.notEqual(i2.id(0).toString('hex'), onlyP1);
    assert.equal((await store.retention(chunkBlob(shared)))?.lockedUntil, t2.toISOString());
    assert.equal((await store.retention(chunkBlob(onlyP1)))?.lockedUntil, t1.toISOString());
    // "not even Coffer with the admin key": every delete of a locked blob is refused, the blobs stay
    const immutable = (e: unknown) => e instanceof CofferError && e.code === 'IMMUTABLE';
    for (const name of [
      pointBlob(p1.id),
      indexBlob(m1.disks[0]!.indexId),
      chunkBlob(onlyP1),
      chunkBlob(shared),
    ] as BlobName[]) {
      await assert.rejects(store.delete(name), immutable, name);
      assert.ok(await store.stat(name));
    }
    // after t1: p1's own blobs may go, the shared chunk is held by p2 until t2
    now = t1.getTime() + 1000;
    await store.delete(chunkBlob(onlyP1));
    await assert.rejects(store.delete(chunkBlob(shared)), immutable);
    assert.equal(await store.retention(pointBlob(p1.id)), undefined);
  });

  test('legal hold: no deletion whatever the time until it is cleared', async () => {
    let now = Date.now();
    const store = new RetentionEnforcingBlobStore(await openCloudStore(repo, env, { create: false }), () => now);
    const r = await Repository.open(store, TEST_PASSWORD);
    await lockPoints(r, [p2.id], { legalHold: true });
    now += 1000 * DAY;
    await assert.rejects(
      store.delete(pointBlob(p2.id)),
      (e: unknown) => e instanceof CofferError && e.code === 'IMMUTABLE',
    );
    assert.deepEqual(await store.retention(pointBlob(p2.id)), { legalHold: true });
    store.clearHold(pointBlob(p2.id));
    assert.equal(await store.retention(pointBlob(p2.id)), undefined);
  });

  test('Azurite does not implement immutability (501): `coffer lock` says so clearly, exit 2, no stack', () => {
    const e = expectError(coffer(['lock', '--repo', repo, p1.id, '--days', '7', '--json'], env), 2, 'USAGE');
    assert.match(e.message, /cannot hold retention locks/);
    assert.match(e.hint ?? '', /immutability/);
    assertNoStack(coffer(['lock', '--repo', repo, p1.id, '--days', '7'], env));
    expectError(coffer(['lock', '--repo', repo, p1.id, '--json'], env), 2, 'USAGE');
    expectError(coffer(['lock', '--repo', repo, p1.id, '--until', 'tomorrow', '--json'], env), 2, 'USAGE');
    expectError(coffer(['lock', '--repo', repo, p1.id, '--until', '2001-01-01T00:00:00Z', '--json'], env), 2, 'USAGE');
  });

  test('local: an append-only repository refuses deletes (IMMUTABLE, exit 15); a plain one cannot be locked', () => {
    const ao = join(dir.path, 'append-only');
    assert.equal(expectOk(coffer(['init', '--repo', ao, '--append-only', '--json', ...KDF])).appendOnly, true);
    const b = expectOk(coffer(['backup', '--repo', ao, '--vm', 'vm', disk, '--json']));
    expectOk(coffer(['key', 'add', '--repo', ao, '--json'], { COFFER_NEW_PASSWORD: 'second' }));
    const keys = expectOk(coffer(['key', 'list', '--repo', ao, '--json']));
    const other =
      keys.find((k: { current?: boolean; inUse?: boolean; id: string }) => !(k.current ?? k.inUse)) ?? keys[1];
    expectError(coffer(['key', 'remove', '--repo', ao, other.id, '--json']), 15, 'IMMUTABLE');
    assert.equal(expectOk(coffer(['key', 'list', '--repo', ao, '--json'])).length, 2);
    const locked = expectOk(coffer(['lock', '--repo', ao, b.id, '--days', '30', '--json']));
    assert.equal(locked[0].legalHold, true);
    assert.deepEqual(expectOk(coffer(['locks', '--repo', ao, '--json'])), [
      { id: b.id, lockedUntil: null, legalHold: true },
    ]);
    // backups still work (leases are deleted as usual)
    expectOk(coffer(['backup', '--repo', ao, '--vm', 'vm', disk2, '--json']));
    const plain = join(dir.path, 'plain');
    expectOk(coffer(['init', '--repo', plain, '--json', ...KDF]));
    const pb = expectOk(coffer(['backup', '--repo', plain, '--vm', 'vm', disk, '--json']));
    expectError(coffer(['lock', '--repo', plain, pb.id, '--days', '1', '--json']), 2, 'USAGE');
  });
});
