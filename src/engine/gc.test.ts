import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GC_SCOPE, Repository, addHold, chunkBlob, listCondemned, listHolds, pointBlob } from '../repository/index.js';
import {
  APPEND_ONLY_BLOB,
  AppendOnlyBlobStore,
  LocalBlobStore,
  MemoryBlobStore,
  type BlobInfo,
  type BlobStore,
  type ByteRange,
  type RetentionInfo,
} from '../storage/index.js';
import { CofferError, type BlobName, type Op } from '../shared/index.js';
import { CodecPool, GC_SWEEP_OPERATION, GcGuard, backup, forget, prune, verify } from './index.js';
import { BufferSource } from '../sources/testing/buffer-source.js';

const CS = 65536;

/**
 * A test double for storage retention locks (Azure immutability / S3 Object Lock semantics), which neither the local
 * nor the memory backend has: delete of a locked blob rejects IMMUTABLE and leaves it; retention() reports the lock.
 * `reportLocks: false` models a store that enforces locks but cannot tell them in advance.
 */
class LockingStore implements BlobStore {
  readonly locks = new Map<string, RetentionInfo>();
  retention?: (name: BlobName) => Promise<RetentionInfo | undefined>;
  constructor(
    readonly inner: MemoryBlobStore,
    reportLocks = true,
  ) {
    if (reportLocks) this.retention = async (name) => this.locks.get(name);
  }
  get location() {
    return 'locking:';
  }
  put(n: BlobName, d: Uint8Array, op?: Op) {
    return this.inner.put(n, d, op);
  }
  get(n: BlobName, r?: ByteRange, op?: Op) {
    return this.inner.get(n, r, op);
  }
  stat(n: BlobName, op?: Op): Promise<BlobInfo | undefined> {
    return this.inner.stat(n, op);
  }
  list(p: string, op?: Op) {
    return this.inner.list(p, op);
  }
  async delete(n: BlobName, op?: Op) {
    if (this.locks.has(n)) throw new CofferError('IMMUTABLE', `blob ${n} is under a retention lock`);
    return this.inner.delete(n, op);
  }
}

async function setup(store: BlobStore = new MemoryBlobStore()) {
  const repo = await Repository.init(store, 'pw', { chunkSizeBytes: CS, kdf: { N: 1024 } });
  return { store, repo, pool: new CodecPool(repo.codecParams, 0) };
}

async function chunkNames(store: BlobStore): Promise<string[]> {
  const out: string[] = [];
  for await (const b of store.list('chunks/')) out.push(b.name);
  return out.sort();
}

test(
  'forget + prune: unreferenced chunks, indexes, verification records and holds of ' +
    'deleted points go; the rest verifies',
  async () => {
    const { store, repo, pool } = await setup();
    const data = randomBytes(8 * CS);
    const r1 = await backup(repo, pool, { vm: 'a', sources: [new BufferSource(data)] });
    randomBytes(2 * CS).copy(data, 0);
    const r2 = await backup(repo, pool, { vm: 'a', sources: [new BufferSource(data)] });
    await verify(repo, pool, {}); // records for both
    await addHold(store, r1.id, { until: '2000-01-01T00:00:00Z', reason: 'expired' });
    const f = await forget(repo, { policy: { last: 1 } });
    assert.deepEqual(
      f.removed.map((r) => r.id),
      [r1.id],
    );
    assert.equal((await chunkNames(store)).length, 10);
    const p = await prune(repo);
    assert.equal(p.chunksDeleted, 2);
    assert.equal(p.indexesDeleted, 1);
    assert.equal(p.points, 1);
    assert.deepEqual(p.deferred, []);
    assert.ok(p.orphansRemoved >= 2, 'the verification record and the hold of the deleted point');
    assert.deepEqual(await listHolds(store), []);
    assert.deepEqual(await listCondemned(store), [], 'a generation swept in the same run is removed');
    assert.equal((await chunkNames(store)).length, 8);
    const v = await verify(repo, pool, { readDataFraction: 1 });
    assert.ok(v.ok, JSON.stringify(v.problems));
    assert.equal(v.chunksUnreferenced, 0);
    assert.equal((await repo.listPoints())[0]!.id, r2.id);
    // nothing more to do
    const again = await prune(repo);
    assert.equal(again.chunksDeleted + again.chunksCondemned, 0);
  },
);

test(
  'a running writer that has not seen a condemned generation defers its sweep; ' + 'the next prune deletes it',
  async () => {
    const { store, repo, pool } = await setup();
    const r1 = await backup(repo, pool, { vm: 'a', sources: [new BufferSource(randomBytes(4 * CS))] });
    await backup(repo, pool, { vm: 'a', sources: [new BufferSource(randomBytes(4 * CS))] });
    await forget(repo, { policy: { last: 1 } });
    const writer = await repo.acquireLease(repo.vmScope('b'), 'backup of VM b');
    try {
      await new Promise((r) => setTimeout(r, 5)); // chunks older than the writer
      const p = await prune(repo);
      assert.equal(p.chunksDeleted, 0);
      assert.equal(p.chunksCondemned, 4);
      assert.equal(p.deferred.length, 1);
      assert.match(p.deferredReason ?? '', /backup of VM b/);
      assert.equal((await listCondemned(store)).length, 1);
    } finally {
      await writer.release();
    }
    const p2 = await prune(repo);
    assert.equal(p2.chunksDeleted, 4);
    assert.deepEqual(await listCondemned(store), []);
    assert.ok((await verify(repo, pool, { readDataFraction: 1 })).ok);
    assert.equal(r1.chunksNew, 4);
  },
);

test(
  'a writer rescues a condemned chunk it uses: the sweep keeps it; ' + 'a sweep in progress makes the writer wait',
  async () => {
    const { store, repo, pool } = await setup();
    const old = randomBytes(4 * CS);
    await backup(repo, pool, { vm: 'a', sources: [new BufferSource(old)] });
    await backup(repo, pool, { vm: 'a', sources: [new BufferSource(randomBytes(4 * CS))] });
    await forget(repo, { policy: { last: 1 } });
    // an old writer defers the sweep, so the generation stays
    const oldWriter = await repo.acquireLease(repo.vmScope('x'), 'old writer');
    await new Promise((r) => setTimeout(r, 5));
    const p = await prune(repo);
    assert.equal(p.deferred.length, 1);
    // a new writer loads the generation and rescues one of its chunks
    const lease = await repo.acquireLease(repo.vmScope('y'), 'new writer');
    const guard = await GcGuard.open(repo, lease, {}, { pollMs: 20 });
    const condemned = (await chunkNames(store))
      .map((n) => Buffer.from(n.slice(-64), 'hex'))
      .filter((id) => guard.isCondemnedChunk(id));
    assert.equal(condemned.length, 4);
    await guard.rescue('chunk', condemned[0]!);
    await oldWriter.release();
    const p2 = await prune(repo);
    assert.equal(p2.chunksDeleted, 3);
    assert.equal(p2.rescued, 1);
    assert.ok(await store.stat(chunkBlob(condemned[0]!.toString('hex'))), 'the rescued chunk is kept');

    // a GC lease that says it is deleting holds the writer back until it is released
    const gc = await repo.acquireLease(GC_SCOPE, 'gc-mark');
    await gc.update({ operation: GC_SWEEP_OPERATION });
    let done = false;
    const waiting = guard.rescue('chunk', condemned[1]!).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(done, false, 'the writer waits while the sweep runs');
    await gc.release();
    await waiting;
    assert.equal(done, true);
    await guard.close();
    await lease.release();
  },
);

test(
  'storage retention locks: forget keeps a locked point whole (dry run shows it), prune ' +
    'keeps locked chunks, nothing fails',
  async () => {
    for (const reportLocks of [true, false]) {
      const locking = new LockingStore(new MemoryBlobStore(), reportLocks);
      const { store, repo, pool } = await setup(locking);
      const points: { id: string }[] = [];
      for (let i = 0; i < 3; i++)
        points.push(await backup(repo, pool, { vm: 'a', sources: [new BufferSource(randomBytes(3 * CS))] }));
      const until = new Date(Date.now() + 86_400_000).toISOString();
      locking.locks.set(pointBlob(points[0]!.id), { legalHold: false, lockedUntil: until });
      const dry = await forget(repo, { policy: { last: 1 }, dryRun: true });
      if (reportLocks) {
        assert.deepEqual(dry.kept.find((k) => k.id === points[0]!.id)?.reasons, ['locked']);
        assert.equal(dry.kept.find((k) => k.id === points[0]!.id)?.lockedUntil, until);
        assert.deepEqual(
          dry.removed.map((r) => r.id),
          [points[1]!.id],
        );
      } else {
        assert.equal(dry.removed.length, 2, 'a store that cannot report locks: the dry run cannot know');
      }
      const f = await forget(repo, { policy: { last: 1 } });
      assert.deepEqual(
        f.removed.map((r) => r.id),
        [points[1]!.id],
      );
      assert.deepEqual(f.kept.find((k) => k.id === points[0]!.id)?.reasons, ['locked']);
      assert.ok(await store.stat(pointBlob(points[0]!.id)), 'the locked point is whole');
      // lock one chunk of the forgotten point: prune keeps it, reports it, does not fail
      const idx = await repo.loadIndex((await repo.loadManifest(points[2]!.id)).disks[0]!.indexId);
      const keepNames = new Set<string>();
      for (let i = 0; i < idx.entryCount; i++) keepNames.add(chunkBlob(idx.id(i).toString('hex')));
      const garbage = (await chunkNames(store)).filter((n) => !keepNames.has(n));
      // points[0] is still there: its chunks are referenced; points[1]'s three are garbage
      const p1Chunks: string[] = [];
      for (const n of garbage) {
        const id = Buffer.from(n.slice(-64), 'hex');
        const m0 = await repo.loadIndex((await repo.loadManifest(points[0]!.id)).disks[0]!.indexId);
        let used = false;
        for (let i = 0; i < m0.entryCount; i++) if (m0.id(i).equals(id)) used = true;
        if (!used) p1Chunks.push(n);
      }
      assert.equal(p1Chunks.length, 3);
      locking.locks.set(p1Chunks[0]!, { legalHold: true });
      const p = await prune(repo);
      assert.equal(p.locked, 1);
      assert.equal(p.chunksDeleted, 2);
      assert.ok(await store.stat(p1Chunks[0] as BlobName));
      const v = await verify(repo, pool, { readDataFraction: 1 });
      assert.ok(v.ok, JSON.stringify(v.problems));
      assert.equal(v.points, 2);
    }
  },
);

test('prune refuses to delete anything when a restore point is unreadable', async () => {
  const { store, repo, pool } = await setup();
  const r1 = await backup(repo, pool, { vm: 'a', sources: [new BufferSource(randomBytes(2 * CS))] });
  await backup(repo, pool, { vm: 'b', sources: [new BufferSource(randomBytes(2 * CS))] });
  await forget(repo, { policy: { last: 1 }, vm: 'zzz' }); // no-op for other VMs
  (store as MemoryBlobStore).corrupt(pointBlob(r1.id), (d) => {
    d[d.length - 1]! ^= 1;
    return d;
  });
  const before = await chunkNames(store);
  await assert.rejects(
    prune(repo),
    (e: unknown) => e instanceof CofferError && e.code === 'CORRUPT' && /before deleting anything/.test(e.message),
  );
  assert.deepEqual(await chunkNames(store), before);
});

test(
  'one prune at a time: a second one is LOCKED; ' + 'prune keeps the newest three verification records of a point',
  async () => {
    const { store, repo, pool } = await setup();
    const r = await backup(repo, pool, { vm: 'a', sources: [new BufferSource(randomBytes(2 * CS))] });
    for (let i = 0; i < 5; i++) {
      await verify(repo, pool, {});
      await new Promise((res) => setTimeout(res, 2));
    }
    const gc = await repo.acquireLease(GC_SCOPE, 'gc-mark');
    try {
      await assert.rejects(prune(repo), (e: unknown) => e instanceof CofferError && e.code === 'LOCKED');
    } finally {
      await gc.release();
    }
    const p = await prune(repo);
    assert.equal(p.orphansRemoved, 2);
    const left: string[] = [];
    for await (const b of store.list(`verifications/${r.id}/`)) left.push(b.name);
    assert.equal(left.length, 3);
    assert.equal((await repo.lastVerification(r.id))?.ok, true);
  },
);

test(
  'prune of an append-only local repository sweeps the temp files of crashed puts (the ' +
    'wrapper forwards the capability)',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coffer-gc-ao-'));
    try {
      const local = new LocalBlobStore(dir);
      await Repository.init(local, 'pw', { chunkSizeBytes: CS, kdf: { N: 1024 } });
      await local.put(APPEND_ONLY_BLOB, Buffer.alloc(0));
      const repo = await Repository.open(new AppendOnlyBlobStore(local), 'pw');
      const pool = new CodecPool(repo.codecParams, 0);
      await backup(repo, pool, { vm: 'a', sources: [new BufferSource(randomBytes(2 * CS))] });
      // a put that crashed between writing and linking, an hour ago
      const tmp = join(dir, 'chunks', '.tmp-deadbeef');
      mkdirSync(join(dir, 'chunks'), { recursive: true });
      writeFileSync(tmp, 'partial');
      const old = new Date(Date.now() - 3_600_000);
      utimesSync(tmp, old, old);
      const r = await prune(repo);
      assert.equal(r.tempFilesRemoved, 1);
      assert.ok(!existsSync(tmp));
      assert.deepEqual((await verify(repo, pool, { readDataFraction: 1 })).problems, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
