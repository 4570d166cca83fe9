import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { PassThrough } from 'node:stream';
import { Repository } from '../repository/index.js';
import { MemoryBlobStore } from '../storage/index.js';
import { CofferError } from '../shared/index.js';
import { CodecPool, backup, restoreDisk, verify } from './index.js';
import type { CodecParams } from './codec-protocol.js';
import { BufferSource } from '../sources/testing/buffer-source.js';

const CS = 65536;

function disk(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let o = 0; o < size; o += 4 * CS) randomBytes(Math.min(2 * CS, size - o)).copy(b, o); // half data, half zeros
  return b;
}

/** workers > 0: started by the first call (inlineStartBytes 0), so these small disks go through the workers */
async function setup(workers = 0, inlineStartBytes = 0) {
  const store = new MemoryBlobStore();
  const repo = await Repository.init(store, 'pw', { chunkSizeBytes: CS, kdf: { N: 1024 } });
  const pool = new CodecPool(repo.codecParams, workers, inlineStartBytes);
  return { store, repo, pool };
}

async function restoreToBuffer(repo: Repository, pool: CodecPool, pointId: string, d = 0): Promise<Buffer> {
  const parts: Buffer[] = [];
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => parts.push(c));
  await restoreDisk(repo, pool, { pointId, disk: d, target: { kind: 'stream', stream: sink } });
  return Buffer.concat(parts);
}

for (const workers of [0, 2]) {
  test(`backup/restore round trip, zero chunks skipped, dedup on repeat (workers=${workers})`, async () => {
    const { repo, pool } = await setup(workers);
    try {
      const data = disk(20 * CS + 1234);
      const r1 = await backup(repo, pool, { vm: 'vm1', sources: [new BufferSource(data)] });
      assert.equal(r1.mode, 'full');
      assert.equal(r1.parent, null);
      assert.equal(r1.zeroChunks, 10);
      assert.equal(r1.chunksNew, 11);
      assert.ok((await restoreToBuffer(repo, pool, r1.id)).equals(data));
      const r2 = await backup(repo, pool, { vm: 'vm1', sources: [new BufferSource(data)] });
      assert.equal(r2.parent, r1.id);
      assert.equal(r2.chunksNew, 0);
      assert.equal(r2.bytesStored, 0);
      assert.ok((await restoreToBuffer(repo, pool, r2.id)).equals(data));
    } finally {
      await pool.close();
    }
  });
}

test('a pool starts its workers past its inline budget, or at once for a disk known to be larger', async () => {
  // 2 workers after 6 chunks of input: a small backup runs inline; a full backup of a larger disk starts them at its
  // plan (CodecPool.expect); the parent's known ids, set before the workers exist, reach them with their start
  const { repo, pool } = await setup(2, 6 * CS);
  try {
    const small = disk(4 * CS);
    const r0 = await backup(repo, pool, { vm: 'small', sources: [new BufferSource(small)] });
    assert.equal(pool.running, 0, 'a small job runs inline');
    assert.ok((await restoreToBuffer(repo, pool, r0.id)).equals(small));
    const data = disk(40 * CS);
    const r1 = await backup(repo, pool, { vm: 'vm1', sources: [new BufferSource(data)] });
    assert.equal(pool.running, 2, 'past the budget the workers run');
    assert.equal(r1.chunksNew, 20);
    const changed = Buffer.from(data);
    randomBytes(CS).copy(changed, 33 * CS);
    const fresh = new CodecPool(repo.codecParams, 2, 2 * CS);
    try {
      const r2 = await backup(repo, fresh, { vm: 'vm1', sources: [new BufferSource(changed)] });
      assert.equal(fresh.running, 2);
      assert.equal(r2.parent, r1.id);
      assert.equal(r2.chunksNew, 1, 'only the changed chunk is new');
      assert.ok((await restoreToBuffer(repo, fresh, r2.id)).equals(changed));
    } finally {
      await fresh.close();
    }
    assert.ok((await restoreToBuffer(repo, pool, r1.id)).equals(data));
  } finally {
    await pool.close();
  }
});

test('past its inline budget a pool switches to its workers mid-job: the results stay exact', async () => {
  // (a job that gives no size hint: verify, files, mount, copy)
  const { repo } = await setup(0);
  const inline = new CodecPool(repo.codecParams, 0);
  const pool = new CodecPool(repo.codecParams, 2, 3 * CS);
  try {
    for (let i = 0; i < 8; i++) {
      const data = randomBytes(CS);
      const a = await inline.process(Buffer.from(data), true);
      const b = await pool.process(Buffer.from(data), true);
      assert.equal(pool.running, i < 3 ? 0 : 2, `workers after ${i + 1} chunks`);
      assert.ok(a.id && b.id?.equals(a.id), `the same id, chunk ${i}`);
      assert.ok((await inline.open(b.sealed!, a.id.toString('hex'))).plain.equals(data), `chunk ${i} opens`);
    }
  } finally {
    await pool.close();
    await inline.close();
  }
});

test('workers started before the keys (startNow) get them before any work; a pool never keyed closes', {
  timeout: 60_000, // (a regression hangs a call on a dead worker: fail instead)
}, async () => {
  const { repo } = await setup(0);
  let give!: (p: CodecParams) => void;
  const pool = new CodecPool(new Promise<CodecParams>((r) => (give = r)), 2);
  try {
    pool.startNow();
    assert.equal(pool.running, 2, 'started without the keys');
    const data = disk(12 * CS);
    // the backup's first chunk reaches the pool before the keys do: it waits for them
    let reached!: () => void;
    const first = new Promise<void>((r) => (reached = r));
    const process = pool.process.bind(pool);
    pool.process = (...args) => {
      reached();
      return process(...args);
    };
    const done = backup(repo, pool, { vm: 'early', sources: [new BufferSource(data)] });
    await first;
    await new Promise((r) => setTimeout(r, 20)); // (a request posted without the keys would be on its way by now)
    give(repo.codecParams);
    const r = await done;
    assert.equal(pool.running, 2);
    assert.ok((await restoreToBuffer(repo, pool, r.id)).equals(data));
  } finally {
    await pool.close();
  }
  const never = new CodecPool(new Promise<CodecParams>(() => undefined), 2);
  never.startNow();
  assert.equal(never.running, 2);
  await never.close();
  assert.equal(never.running, 0);
  // an idle worker that dies (not closed by the pool) fails the pool: the next call rejects instead of hanging
  const idle = new CodecPool(repo.codecParams, 2);
  try {
    idle.startNow();
    const slot = (idle as unknown as { workers: { w: import('node:worker_threads').Worker }[] }).workers[0]!;
    await slot.w.terminate();
    await assert.rejects(idle.process(randomBytes(CS), true), { code: 'INTERNAL' });
  } finally {
    await idle.close();
  }
});

for (const workers of [0, 1, 2]) {
  test(`restore to a sparse file with ${workers} worker(s): bit-exact, buffers recycled safely`, async () => {
    const { repo, pool } = await setup(workers);
    const { mkdtempSync, readFileSync, rmSync, statSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'coffer-engine-'));
    try {
      const data = disk(37 * CS + 999);
      const r = await backup(repo, pool, { vm: 'vm1', sources: [new BufferSource(data)] });
      const out = join(dir, 'out.raw');
      await restoreDisk(repo, pool, { pointId: r.id, disk: 0, target: { kind: 'path', path: out } });
      assert.ok(readFileSync(out).equals(data));
      assert.ok(statSync(out).blocks * 512 < data.length, 'zero chunks are holes');
      await assert.rejects(
        restoreDisk(repo, pool, { pointId: r.id, disk: 0, target: { kind: 'path', path: out } }),
        (e: unknown) => e instanceof CofferError && e.code === 'TARGET_EXISTS',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await pool.close();
    }
  });
}

test('dedup across disks and VMs; several disks in order', async () => {
  const { repo, pool } = await setup(1);
  try {
    const a = disk(8 * CS);
    const b = disk(5 * CS + 7);
    const r1 = await backup(repo, pool, { vm: 'vm1', sources: [new BufferSource(a), new BufferSource(b)] });
    const r2 = await backup(repo, pool, { vm: 'vm2', sources: [new BufferSource(b), new BufferSource(a)] });
    assert.equal(r2.chunksNew, 0, 'the other VM shares every chunk');
    assert.equal(r2.parent, null, 'the parent is per VM');
    assert.ok((await restoreToBuffer(repo, pool, r1.id, 1)).equals(b));
    assert.ok((await restoreToBuffer(repo, pool, r2.id, 0)).equals(b));
    assert.ok((await restoreToBuffer(repo, pool, r2.id, 1)).equals(a));
    const report = await verify(repo, pool, { readDataFraction: 1 });
    assert.ok(report.ok);
    assert.equal(report.chunksUnreferenced, 0);
  } finally {
    await pool.close();
  }
});

test('a failed backup leaves no restore point and no lease; the next run reuses what was stored', async () => {
  const { repo, pool, store } = await setup(0);
  try {
    const data = Buffer.concat([randomBytes(12 * CS)]);
    await assert.rejects(
      backup(repo, pool, { vm: 'vm1', sources: [new BufferSource(data, 'mem://x', 6)] }),
      /simulated/,
    );
    assert.equal((await repo.listPoints()).length, 0);
    let locks = 0;
    for await (const _ of store.list('locks/')) locks++;
    assert.equal(locks, 0);
    const r = await backup(repo, pool, { vm: 'vm1', sources: [new BufferSource(data)] });
    assert.ok(r.chunksReused >= 5, `reused ${r.chunksReused}`);
    assert.equal(r.chunksNew + r.chunksReused, 12);
    assert.ok((await restoreToBuffer(repo, pool, r.id)).equals(data));
  } finally {
    await pool.close();
  }
});

test('cancellation: an aborted backup rejects and commits nothing', async () => {
  const { repo, pool } = await setup(0);
  try {
    const ac = new AbortController();
    ac.abort(new CofferError('CANCELLED', 'test'));
    await assert.rejects(
      backup(repo, pool, { vm: 'vm1', sources: [new BufferSource(disk(4 * CS))], signal: ac.signal }),
    );
    assert.equal((await repo.listPoints()).length, 0);
  } finally {
    await pool.close();
  }
});

test('two backups of one VM at once: the second fails LOCKED, other VMs proceed', async () => {
  const { repo, pool } = await setup(0);
  try {
    const lease = await repo.acquireLease(repo.vmScope('vm1'), 'held by test');
    await assert.rejects(
      backup(repo, pool, { vm: 'vm1', sources: [new BufferSource(disk(2 * CS))] }),
      (e: unknown) => e instanceof CofferError && e.code === 'LOCKED',
    );
    await backup(repo, pool, { vm: 'vm2', sources: [new BufferSource(disk(2 * CS))] });
    await lease.release();
    await backup(repo, pool, { vm: 'vm1', sources: [new BufferSource(disk(2 * CS))] });
  } finally {
    await pool.close();
  }
});

test('verify names missing and corrupt chunks; restore refuses corrupt data', async () => {
  const { repo, pool, store } = await setup(0);
  try {
    const r = await backup(repo, pool, { vm: 'vm1', sources: [new BufferSource(randomBytes(4 * CS))] });
    const chunks: string[] = [];
    for await (const b of store.list('chunks/')) chunks.push(b.name);
    store.corrupt(chunks[0]!, (d) => {
      d[d.length - 20] ^= 1;
      return d;
    });
    await store.delete(chunks[1]! as never);
    assert.equal((await verify(repo, pool)).problems.map((p) => p.kind).join(), 'chunk-missing');
    const full = await verify(repo, pool, { readDataFraction: 1 });
    assert.deepEqual(full.problems.map((p) => p.kind).sort(), ['chunk-corrupt', 'chunk-missing']);
    assert.ok(full.problems.some((p) => chunks[0]!.endsWith(p.id)));
    await assert.rejects(
      restoreToBuffer(repo, pool, r.id),
      (e: unknown) => e instanceof CofferError && e.code === 'CORRUPT',
    );
  } finally {
    await pool.close();
  }
});

class TrackedSource extends BufferSource {
  changed: { offset: number; length: number }[] = [];
  get changeTracking() {
    return {
      token: 'test-token',
      changedExtents: async function* (this: TrackedSource) {
        yield* this.changed;
      }.bind(this),
    };
  }
}

test(
  'verification is recorded per restore point; a parent that failed it is not trusted, ' + 'and lost chunks heal',
  async () => {
    const { repo, pool, store } = await setup(0);
    try {
      const data = randomBytes(8 * CS);
      const src = new TrackedSource(data);
      const r1 = await backup(repo, pool, { vm: 'vm1', sources: [src] });
      assert.equal(r1.mode, 'full');
      src.changed = [{ offset: 0, length: 10 }];
      const r2 = await backup(repo, pool, { vm: 'vm1', sources: [src] });
      assert.equal(r2.mode, 'incremental');
      assert.equal(r2.bytesRead, CS);

      const clean = await verify(repo, pool, {});
      assert.deepEqual(clean.failedPoints, []);
      assert.equal((await repo.lastVerification(r2.id))?.ok, true);

      // lose a chunk both points use
      const chunks: string[] = [];
      for await (const b of store.list('chunks/')) chunks.push(b.name);
      await store.delete(chunks[3]! as never);
      const broken = await verify(repo, pool, {});
      assert.deepEqual(broken.failedPoints, [r1.id, r2.id].sort());
      assert.equal((await repo.lastVerification(r2.id))?.ok, false);

      // the next backup must not build on the failed parent: a full read that stores the lost chunk again
      const warnings: string[] = [];
      const r3 = await backup(repo, pool, { vm: 'vm1', sources: [src], onWarning: (m) => warnings.push(m) });
      assert.equal(r3.mode, 'full');
      assert.match(r3.disks[0]!.fallbackReason ?? '', /failed verification/);
      assert.equal(r3.chunksNew, 1, 'the lost chunk is stored again');
      const healed = await verify(repo, pool, { readDataFraction: 1 });
      assert.deepEqual(healed.failedPoints, []);
      assert.ok((await restoreToBuffer(repo, pool, r1.id)).equals(data), 'older points are whole again too');
    } finally {
      await pool.close();
    }
  },
);

test('wrong password is WRONG_KEY; keys can be added and removed', async () => {
  const { store, repo } = await setup(0);
  await assert.rejects(
    Repository.open(store, 'nope'),
    (e: unknown) => e instanceof CofferError && e.code === 'WRONG_KEY',
  );
  const k2 = await repo.addKey('second', 'ops', { N: 1024 });
  const viaSecond = await Repository.open(store, 'second');
  assert.equal(viaSecond.keyId, k2.id);
  // private: the test looks inside
  const keysOf = (r: Repository) => (r as unknown as { keys: { encKey: Buffer } }).keys;
  assert.deepEqual(keysOf(viaSecond).encKey, keysOf(repo).encKey);
  await assert.rejects(viaSecond.removeKey(k2.id), (e: unknown) => e instanceof CofferError && e.code === 'KEY_IN_USE');
  await viaSecond.removeKey(repo.keyId);
  await assert.rejects(
    Repository.open(store, 'pw'),
    (e: unknown) => e instanceof CofferError && e.code === 'WRONG_KEY',
  );
});
