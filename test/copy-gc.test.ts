// Stress: `copy` into a target repository while the target is pruned and forgotten, for many rounds. Three copiers
// (one per VM, as the VM leases allow) each back up a new point into the source and copy it (with the previous one,
// already present) into the target; every third round the target forgets all but the last two points of that VM, so
// chunks become unreferenced, are condemned by a concurrent prune, and come back with later points (a pool of shared
// patterns). Afterwards verify --read-data on the target is clean and every copied point restores bit-exact.
// Both modes: a target with other keys (re-encrypted copy) and a replica with the same keys (blobs copied unchanged).
// The target's store adds random latency to widen the race windows. The test can fail: with copy's rescues disabled in
// src/engine/copy.ts (condemned chunks treated like any chunk of the listing) the re-encrypting case failed with
// chunk-missing in 5 of 5 runs and the same-key case in about 1 of 3 (checked by hand, 2026-11-25; a same-key copy
// is quicker, so its window between the listing and the commit is narrower).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import {
  CodecPool,
  backup,
  copyPoints,
  forget,
  prune,
  restoreDisk,
  verify,
  type PruneReport,
} from '../src/engine/index.js';
import { LOCKS_PREFIX, RESCUE_PREFIX, Repository } from '../src/repository/index.js';
import { LocalBlobStore, type BlobStore } from '../src/storage/index.js';
import { CofferError } from '../src/shared/index.js';
import { tempDir } from './helpers/cli.js';
import { BufferSource, SlowStore, pattern as stressPattern, rng } from './helpers/stress.js';

const CS = 65536;
const CHUNKS_PER_DISK = 12;
const ROUNDS = Number(process.env.COFFER_STRESS_ROUNDS ?? 24);
const VMS = ['vm-a', 'vm-b', 'vm-c'];

const pattern = (n: number | string): Buffer => stressPattern(n, CS);

async function names(store: BlobStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const b of store.list(prefix)) out.push(b.name);
  return out;
}

async function restoreBytes(repo: Repository, pool: CodecPool, pointId: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => parts.push(c));
  await restoreDisk(repo, pool, { pointId, disk: 0, target: { kind: 'stream', stream: sink } });
  return Buffer.concat(parts);
}

for (const mode of ['re-encrypt', 'same-key'] as const) {
  test(`copy (${mode}) and prune of the target concurrently for ${ROUNDS} rounds: verify --read-data is clean, restores are bit-exact`, {
    timeout: 240_000,
  }, async () => {
    const tmp = tempDir('coffer-copy-gc-');
    const seed = Number(process.env.COFFER_STRESS_SEED ?? Date.now() % 100000);
    const rand = rng(seed);
    try {
      const srcStore = new LocalBlobStore(join(tmp.path, 'src'), { durable: false });
      const src = await Repository.init(srcStore, 'pw', { chunkSizeBytes: CS, kdf: { N: 1024 } });
      const dstStore = new SlowStore(new LocalBlobStore(join(tmp.path, 'dst'), { durable: false }), rng(seed + 1));
      const dst =
        mode === 'same-key'
          ? await Repository.initCopyOf(dstStore, srcStore, 'pw')
          : await Repository.init(dstStore, 'other', { chunkSizeBytes: CS, kdf: { N: 1024 } });
      const srcPool = new CodecPool(src.codecParams, 0);
      const dstPool = new CodecPool(dst.codecParams, 0);
      const contents = new Map<string, Buffer>();
      const pruneReports: PruneReport[] = [];
      let copied = 0;
      let present = 0;
      let gcRescued = 0;
      let fresh = 0;
      try {
        const copiers = VMS.map(async (vm) => {
          let prev: string | undefined;
          for (let round = 0; round < ROUNDS; round++) {
            // a pool of 120 shared patterns (shared across VMs, and coming back after the target forgot them),
            // two fresh chunks, one zero chunk
            const parts: Buffer[] = [];
            for (let i = 0; i < CHUNKS_PER_DISK - 3; i++) parts.push(pattern(Math.floor(rand() * 120)));
            parts.push(pattern(`fresh-${fresh++}`), pattern(`fresh-${fresh++}`), Buffer.alloc(CS));
            const data = Buffer.concat(parts.sort(() => rand() - 0.5));
            const b = await backup(src, srcPool, { vm, sources: [new BufferSource(data)] });
            contents.set(b.id, data);
            const r = await copyPoints(src, dst, srcPool, dstPool, {
              pointIds: prev ? [prev, b.id] : [b.id],
              window: 4,
            });
            assert.equal(r.mode, mode);
            for (const p of r.points) p.status === 'copied' ? copied++ : present++;
            assert.equal(r.points.at(-1)!.status, 'copied');
            gcRescued += r.gcRescued;
            prev = b.id;
            if (round % 3 === 2) await forget(dst, { policy: { last: 2 }, vm });
            // inline codecs keep the event loop busy; a pause lets the prunes interleave with more copies
            await new Promise((r) => setTimeout(r, Math.floor(rand() * 60)));
          }
        });
        let copying = true;
        const all = Promise.all(copiers).finally(() => (copying = false));
        const gc = (async () => {
          while (copying) {
            pruneReports.push(await prune(dst));
            await new Promise((r) => setTimeout(r, Math.floor(rand() * 30)));
          }
        })();
        await Promise.all([all, gc]);
        for (const vm of VMS) await forget(dst, { policy: { last: 2 }, vm });
        pruneReports.push(await prune(dst));
        pruneReports.push(await prune(dst)); // anything deferred by the last copies

        if (process.env.COFFER_STRESS_DEBUG) for (const p of pruneReports) console.log(JSON.stringify(p));
        const deleted = pruneReports.reduce((a, p) => a + p.chunksDeleted, 0);
        const deferred = pruneReports.reduce((a, p) => a + p.deferred.length, 0);
        const rescued = pruneReports.reduce((a, p) => a + p.rescued, 0);
        console.log(
          `${mode} seed ${seed}: ${copied} points copied (${present} present), ${pruneReports.length} prunes, ${deleted} chunks deleted, ${deferred} generations deferred, ${rescued} kept as rescued by a sweep, ${gcRescued} rescues by copies`,
        );
        assert.equal(copied, VMS.length * ROUNDS);
        assert.equal(present, VMS.length * (ROUNDS - 1));
        assert.ok(deleted > 0, 'garbage collection deleted something in the target');
        assert.ok(pruneReports.length > VMS.length, 'prune ran many times during the copies');
        assert.ok(gcRescued > 0, 'copies hit condemned chunks and rescued them');

        const report = await verify(dst, dstPool, { readDataFraction: 1 });
        assert.ok(report.ok, `${mode} seed ${seed}: ${JSON.stringify(report.problems.slice(0, 5))}`);
        const points = await dst.listPoints();
        assert.equal(points.length, VMS.length * 2, 'keep-last 2 per VM');
        for (const p of points)
          assert.ok(
            (await restoreBytes(dst, dstPool, p.id)).equals(contents.get(p.id)!),
            `${mode} seed ${seed}: ${p.id} restores bit-exact`,
          );
        assert.equal(report.chunksUnreferenced, 0, 'no garbage left after the final prunes');
        assert.deepEqual(await names(dstStore, RESCUE_PREFIX), [], 'copies delete their rescues');
        assert.deepEqual(await names(dstStore, LOCKS_PREFIX), [], 'copies release their leases');
      } finally {
        await srcPool.close();
        await dstPool.close();
      }
    } finally {
      tmp.cleanup();
    }
  });
}

test('copy takes the target lease of each VM it copies: LOCKED while a backup of that VM holds it, nothing left behind', async () => {
  const tmp = tempDir('coffer-copy-lease-');
  try {
    const src = await Repository.init(new LocalBlobStore(join(tmp.path, 'src'), { durable: false }), 'pw', {
      chunkSizeBytes: CS,
      kdf: { N: 1024 },
    });
    const dstStore = new LocalBlobStore(join(tmp.path, 'dst'), { durable: false });
    const dst = await Repository.init(dstStore, 'other', { chunkSizeBytes: CS, kdf: { N: 1024 } });
    const srcPool = new CodecPool(src.codecParams, 0);
    const dstPool = new CodecPool(dst.codecParams, 0);
    try {
      const a = await backup(src, srcPool, {
        vm: 'vm-a',
        sources: [new BufferSource(Buffer.concat([pattern(1), pattern(2)]))],
      });
      const b = await backup(src, srcPool, {
        vm: 'vm-b',
        sources: [new BufferSource(Buffer.concat([pattern(3), pattern(1)]))],
      });
      const held = await dst.acquireLease(dst.vmScope('vm-b'), 'backup of VM vm-b'); // a backup of vm-b runs in the target
      try {
        await assert.rejects(
          copyPoints(src, dst, srcPool, dstPool, { pointIds: [a.id, b.id] }),
          (e: unknown) => e instanceof CofferError && e.code === 'LOCKED',
        );
        assert.equal((await dst.listPoints()).length, 0, 'nothing copied');
        const left = await names(dstStore, LOCKS_PREFIX);
        assert.equal(left.length, 1, `only the backup's lease is left: ${left.join(' ')}`);
        const r = await copyPoints(src, dst, srcPool, dstPool, { pointIds: [a.id] }); // another VM: runs
        assert.equal(r.points[0]!.status, 'copied');
      } finally {
        await held.release();
      }
      const r = await copyPoints(src, dst, srcPool, dstPool, { pointIds: [a.id, b.id] });
      assert.deepEqual(
        r.points.map((p) => p.status),
        ['present', 'copied'],
      );
      assert.deepEqual(await names(dstStore, LOCKS_PREFIX), []);
      assert.ok((await restoreBytes(dst, dstPool, b.id)).equals(Buffer.concat([pattern(3), pattern(1)])));
    } finally {
      await srcPool.close();
      await dstPool.close();
    }
  } finally {
    tmp.cleanup();
  }
});
