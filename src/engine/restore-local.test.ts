import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  copyFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Repository, chunkBlob } from '../repository/index.js';
import { ForwardingBlobStore, LocalBlobStore, capabilityOf, type ByteRange } from '../storage/index.js';
import { CofferError, type BlobName, type Op } from '../shared/index.js';
import { codecOf } from './codec-protocol.js';
import { CodecPool, backup, restoreDisk } from './index.js';
import { BufferSource } from '../sources/testing/buffer-source.js';

/**
 * Restore from a local repository to a file or device: past the pool's inline start the codec workers read, open and
 * write each chunk themselves (repository/chunk-file.ts). Real files, real worker threads; the device case needs root
 * and a loop device (skipped with the reason otherwise).
 */
const CS = 65536;
const dir = mkdtempSync(join(tmpdir(), 'coffer-restore-local-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Reads through `get` only (overriding it hides localFiles): the worker gets each sealed blob from this thread. */
class ViaGet extends ForwardingBlobStore {
  gets = 0;
  override get(name: BlobName, range?: ByteRange, op?: Op) {
    if (name.startsWith('chunks/')) this.gets++;
    return super.get(name, range, op);
  }
}

/** Counts the chunk reads that go through `get` (the usual path), and leaves localFiles on. */
class CountingLocalStore extends LocalBlobStore {
  chunkGets = 0;
  override get(name: BlobName, range?: ByteRange, op?: Op): Promise<Buffer> {
    if (name.startsWith('chunks/')) this.chunkGets++;
    return super.get(name, range, op);
  }
}

function disk(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  // data, zeros and compressible text, so chunks are stored both compressed and as they are
  for (let o = 0, k = seed; o < size; o += 3 * CS, k++) {
    const part = k % 2 === 0 ? randomBytes(CS) : Buffer.from(`line ${k} `.repeat(CS / 8).slice(0, CS));
    part.copy(b, o, 0, Math.min(CS, size - o));
  }
  return b;
}

let n = 0;
async function setup(dataBytes: number, inlineStartBytes = 2 * CS) {
  const root = join(dir, `r${n++}`);
  const store = new CountingLocalStore(join(root, 'repo'), { durable: false });
  const repo = await Repository.init(store, 'pw', { chunkSizeBytes: CS, kdf: { N: 1024 } });
  const pool = new CodecPool(repo.codecParams, 2, inlineStartBytes);
  const data = disk(dataBytes, n);
  const point = await backup(repo, pool, { vm: 'vm1', sources: [new BufferSource(data)] });
  store.chunkGets = 0;
  mkdirSync(join(root, 'out'));
  return { root, store, repo, pool, data, point, out: join(root, 'out', 'disk.raw') };
}

function chunkFiles(repoDir: string): string[] {
  const base = join(repoDir, 'chunks');
  return readdirSync(base).flatMap((d) => readdirSync(join(base, d)).map((f) => join(base, d, f)));
}

/** the chunk file at disk position i of `data` (the first data chunk past the inline start) */
function aChunkFile(repoDir: string): string {
  const files = chunkFiles(repoDir).sort();
  return files[files.length >> 1]!;
}

test('a local repository restored to a file: the workers write the chunks, bit-exact, zeros stay holes', async () => {
  const s = await setup(39 * CS + 777); // the last chunk is 777 bytes of data
  try {
    const r = await restoreDisk(s.repo, s.pool, {
      pointId: s.point.id,
      disk: 0,
      target: { kind: 'path', path: s.out },
    });
    assert.ok(readFileSync(s.out).equals(s.data));
    assert.ok(statSync(s.out).blocks * 512 < s.data.length, 'zero chunks are holes');
    let dataBytes = 0;
    for (let o = 0; o < s.data.length; o += CS) {
      const c = s.data.subarray(o, o + CS);
      if (c.some((b) => b !== 0)) dataBytes += c.length;
    }
    assert.equal(r.bytesWritten, dataBytes, 'bytes written = the data chunks (holes skipped)');
    // only the chunks opened before the workers started (2 x 64 KiB of inline budget) were read through `get`
    assert.ok(s.store.chunkGets <= 2, `${s.store.chunkGets} chunks read on the main thread`);
    assert.ok(s.pool.running === 2, 'the workers ran');
    // with --check-ids as well
    const again = join(s.root, 'out', 'again.raw');
    await restoreDisk(s.repo, s.pool, {
      pointId: s.point.id,
      disk: 0,
      target: { kind: 'path', path: again },
      checkIds: true,
    });
    assert.ok(readFileSync(again).equals(s.data));
  } finally {
    await s.pool.close();
  }
});

test('a wrapper that changes reads hides localFiles: the chunks go through its get', async () => {
  const s = await setup(12 * CS);
  const plain = new ForwardingBlobStore(s.store);
  assert.ok(capabilityOf(plain, 'localFiles'), 'a wrapper that forwards reads keeps localFiles');
  const faulty = new ViaGet(s.store);
  assert.equal(capabilityOf(faulty, 'localFiles'), undefined);
  const repo = await Repository.open(faulty, 'pw');
  const pool = new CodecPool(repo.codecParams, 2, 0);
  try {
    await restoreDisk(repo, pool, { pointId: s.point.id, disk: 0, target: { kind: 'path', path: s.out } });
    assert.ok(readFileSync(s.out).equals(s.data));
    assert.equal(faulty.gets, 4, 'each of the 4 data chunks read through the wrapper');
  } finally {
    await pool.close();
    await s.pool.close();
  }
});

/** a restore that must fail with `code`, leaving neither the target nor a partial file behind */
async function failsCleanly(s: Awaited<ReturnType<typeof setup>>, code: string, match: RegExp) {
  await assert.rejects(
    restoreDisk(s.repo, s.pool, { pointId: s.point.id, disk: 0, target: { kind: 'path', path: s.out } }),
    (e: unknown) => {
      assert.ok(e instanceof CofferError, String(e));
      assert.equal(e.code, code, e.message);
      assert.match(e.message, match);
      return true;
    },
  );
  assert.deepEqual(readdirSync(join(s.root, 'out')), [], 'no target and no partial file left');
}

for (const via of ['file', 'blob'] as const) {
  test(`damaged chunks on the worker path (${via}): CORRUPT naming the chunk, nothing left behind`, async () => {
    const s = await setup(24 * CS, 0);
    if (via === 'blob') {
      // the same repository through a wrapper that reads with `get`: the main thread hands each sealed blob over
      await s.pool.close();
      s.repo = await Repository.open(new ViaGet(s.store), 'pw');
      s.pool = new CodecPool(s.repo.codecParams, 2, 0);
    }
    try {
      const repoDir = join(s.root, 'repo');
      const victim = aChunkFile(repoDir);
      const id = victim.slice(victim.lastIndexOf('/') + 1);
      const saved = readFileSync(victim);
      chmodSync(victim, 0o644);

      // one flipped byte: the AEAD tag fails
      const flipped = Buffer.from(saved);
      flipped[flipped.length >> 1]! ^= 0x40;
      writeFileSync(victim, flipped);
      await failsCleanly(s, 'CORRUPT', new RegExp(`chunk ${id}: authentication failed`));

      // another chunk's blob under this name: its AAD names the other id
      const other = chunkFiles(repoDir).find((f) => f !== victim)!;
      copyFileSync(other, victim);
      await failsCleanly(s, 'CORRUPT', new RegExp(id));

      // a huge file under a chunk's name: refused before it is read, not an allocation of its size
      writeFileSync(victim, saved);
      appendFileSync(victim, Buffer.alloc(CS * 2));
      await failsCleanly(s, 'CORRUPT', via === 'file' ? /larger than any sealed chunk/ : new RegExp(id));

      // truncated
      writeFileSync(victim, saved.subarray(0, 10));
      await failsCleanly(s, 'CORRUPT', new RegExp(id));

      // gone
      unlinkSync(victim);
      await assert.rejects(
        restoreDisk(s.repo, s.pool, { pointId: s.point.id, disk: 0, target: { kind: 'path', path: s.out } }),
        (e: unknown) =>
          e instanceof CofferError && e.code === 'CORRUPT' && e.details?.missing === true && e.details?.chunk === id,
      );
      assert.deepEqual(readdirSync(join(s.root, 'out')), []);

      // other content sealed under this id by a key holder: the tag is fine, only --check-ids sees it
      writeFileSync(victim, codecOf(s.repo.codecParams).seal(randomBytes(CS), id));
      const forged = join(s.root, 'out', 'forged.raw');
      await restoreDisk(s.repo, s.pool, { pointId: s.point.id, disk: 0, target: { kind: 'path', path: forged } });
      assert.ok(!readFileSync(forged).equals(s.data), 'without --check-ids the forged content is restored');
      rmSync(forged);
      await assert.rejects(
        restoreDisk(s.repo, s.pool, {
          pointId: s.point.id,
          disk: 0,
          target: { kind: 'path', path: s.out },
          checkIds: true,
        }),
        (e: unknown) => e instanceof CofferError && e.code === 'CORRUPT' && /does not match its id/.test(e.message),
      );
      assert.deepEqual(readdirSync(join(s.root, 'out')), []);

      // put back: the restore works again (nothing about the failures stuck)
      writeFileSync(victim, saved);
      await restoreDisk(s.repo, s.pool, { pointId: s.point.id, disk: 0, target: { kind: 'path', path: s.out } });
      assert.ok(readFileSync(s.out).equals(s.data));
      if (via === 'file') assert.equal(s.store.chunkGets, 0, 'every chunk went through the workers');
    } finally {
      await s.pool.close();
    }
  });
}

test('a write error on a worker crosses to the caller with its code (no root needed)', async () => {
  const s = await setup(6 * CS, 0);
  try {
    const file = aChunkFile(join(s.root, 'repo'));
    const idHex = file.slice(file.lastIndexOf('/') + 1);
    const req = { file, idHex, checkId: false, offset: 0, length: CS, position: 0 };
    // starts the workers (inline start 0) and writes into a file of ours: the request itself is right
    const ok = join(s.root, 'out', 'ok.raw');
    writeFileSync(ok, '');
    assert.equal(await s.pool.restoreFile({ ...req, target: ok, targetName: ok }), true);
    await s.pool.closeTarget(ok, ok);
    assert.equal(statSync(ok).size, CS);
    await assert.rejects(
      s.pool.restoreFile({ ...req, target: '/dev/full', targetName: 'the full device' }),
      (e: unknown) => e instanceof CofferError && e.code === 'STORAGE_FULL' && /the full device/.test(e.message),
    );
    await assert.rejects(
      s.pool.restoreFile({ ...req, target: join(s.root, 'out'), targetName: 'a directory' }),
      (e: unknown) => e instanceof CofferError && e.code === 'TARGET_UNWRITABLE' && e.details?.errno === 'EISDIR',
    );
    await s.pool.closeTarget('/dev/full', 'the full device');
  } finally {
    await s.pool.close();
  }
});

test('the target fills up under the workers: STORAGE_FULL, the partial file removed', async (t) => {
  const s = await setup(96 * CS, 0); // 32 data chunks: 2 MiB into a 1 MiB tmpfs
  const mnt = join(s.root, 'small');
  mkdirSync(mnt);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { encoding: 'utf8' });
  try {
    if (m.status !== 0) {
      t.skip(`cannot mount a tmpfs (needs root): ${(m.stderr || m.error?.message || '').trim()}`);
      return;
    }
    const out = join(mnt, 'disk.raw');
    await assert.rejects(
      restoreDisk(s.repo, s.pool, { pointId: s.point.id, disk: 0, target: { kind: 'path', path: out } }),
      (e: unknown) => e instanceof CofferError && e.code === 'STORAGE_FULL' && e.message.includes(out),
    );
    assert.deepEqual(readdirSync(mnt), [], 'no partial file left on the full disk');
  } finally {
    if (m.status === 0) spawnSync('umount', [mnt]);
    await s.pool.close();
  }
});

test('restore to a block device on the worker path: zeros written, old content replaced', async (t) => {
  const s = await setup(30 * CS + 4096, 0);
  const img = join(s.root, 'dev.img');
  writeFileSync(img, Buffer.alloc(s.data.length, 0xee));
  const l = spawnSync('losetup', ['-f', '--show', img], { encoding: 'utf8' });
  if (l.status !== 0) {
    t.skip(`losetup failed (needs root and loop devices): ${(l.stderr || '').trim()}`);
    await s.pool.close();
    return;
  }
  const dev = l.stdout.trim();
  try {
    await restoreDisk(s.repo, s.pool, { pointId: s.point.id, disk: 0, target: { kind: 'path', path: dev } });
    spawnSync('losetup', ['-d', dev]);
    assert.ok(readFileSync(img).equals(s.data), 'device content equals the disk, zeros included');
    assert.equal(s.store.chunkGets, 0, 'every chunk went through the workers');
  } finally {
    if (existsSync(dev)) spawnSync('losetup', ['-d', dev]);
    await s.pool.close();
  }
});

test('chunkBlob names the file the workers read', () => {
  const store = new LocalBlobStore(join(dir, 'names'));
  const id = 'ab'.repeat(32);
  assert.equal(capabilityOf(store, 'localFiles')!.fileOf(chunkBlob(id)), join(dir, 'names', 'chunks', 'ab', id));
});
