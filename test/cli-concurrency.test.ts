// Concurrency, cancellation and a full disk, against the built CLI.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Repository, lockBlob } from '../src/repository/index.js';
import { LocalBlobStore } from '../src/storage/index.js';
import { coffer, cofferAsync, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import {
  assertNoStack,
  assertSameBytes,
  blobFiles,
  expectError,
  expectOk,
  makeRandomDisk,
} from './helpers/more-cli.js';

const MiB = 1024 * 1024;

/** A pid that is certainly not running: that of a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  assert.ok(r.pid > 0);
  return r.pid;
}

describe('two backups at once: per-VM leases', () => {
  const tmp = tempDir('coffer-conc-');
  const repoDir = join(tmp.path, 'repo');
  const disk1 = join(tmp.path, 'd1.raw');
  const disk2 = join(tmp.path, 'd2.raw');
  let repo: Repository;

  before(async () => {
    makeRandomDisk(disk1, 3 * MiB + 5, 'conc-1');
    makeRandomDisk(disk2, 2 * MiB + 9, 'conc-2');
    expectOk(coffer(['init', '--repo', repoDir, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    repo = await Repository.open(new LocalBlobStore(repoDir), TEST_PASSWORD);
  });
  after(() => tmp.cleanup());

  test('a held VM lease makes a backup of that VM fail with exit 4 LOCKED; another VM backs up meanwhile', async () => {
    const lease = await repo.acquireLease(repo.vmScope('vm1'), 'test');
    try {
      const held = blobFiles(repoDir, 'locks');
      assert.equal(held.length, 1);
      const a = cofferAsync(['backup', '--repo', repoDir, '--vm', 'vm1', disk1, '--json']);
      const b = cofferAsync(['backup', '--repo', repoDir, '--vm', 'vm2', disk2, '--json']);
      const [ra, rb] = await Promise.all([a.done, b.done]);
      const e = expectError(ra, 4, 'LOCKED');
      assert.match(e.message, /\btest\b/, 'the message names the holder operation');
      assert.ok(e.message.includes(hostname()), `the message names the holder host: ${e.message}`);
      assert.ok(e.message.includes(`pid ${process.pid}`), `the message names the holder pid: ${e.message}`);
      assert.equal(e.details.operation, 'test');
      assert.equal(e.details.pid, process.pid);
      const okB = expectOk(rb);
      assert.equal(okB.vm, 'vm2');
      // the failed backup removed its own lock and committed nothing; ours is still there
      assert.deepEqual(blobFiles(repoDir, 'locks'), held);
      const list = expectOk(coffer(['list', '--repo', repoDir, '--json']));
      assert.deepEqual(
        list.map((p: any) => p.vm.name),
        ['vm2'],
      );
      // text mode: the holder in the message on stderr, no stack
      const t = coffer(['backup', '--repo', repoDir, '--vm', 'vm1', disk1, '-q']);
      assert.equal(t.code, 4);
      assert.match(t.stderr, /LOCKED.*test on .*pid/);
      assertNoStack(t);
    } finally {
      await lease.release();
    }
    assert.deepEqual(blobFiles(repoDir, 'locks'), []);
    const r = expectOk(coffer(['backup', '--repo', repoDir, '--vm', 'vm1', disk1, '--json']));
    assert.equal(r.vm, 'vm1');
    assert.equal(r.parent, null);
    assert.deepEqual(blobFiles(repoDir, 'locks'), []);
  });

  test('two CLI backups of the same VM at once: exactly one wins, the other exits 4 LOCKED', async () => {
    const before = expectOk(coffer(['list', '--repo', repoDir, '--json'])).length;
    // a disk of random data: hashing, compressing and storing it takes a second or more, a wide window for the
    // second backup to meet the first one's lease (holes would be skipped at once)
    const big = join(tmp.path, 'big.raw');
    makeRandomDisk(big, 256 * MiB, 'conc-big');
    const a = cofferAsync(['backup', '--repo', repoDir, '--vm', 'vm3', big, '--json']);
    // start the second once the first is under way (it has printed progress, so it holds the lease)
    await new Promise<void>((resolve) => {
      const onData = (d: Buffer) => {
        if (d.toString().includes('backup vm3')) {
          a.child.stderr.off('data', onData);
          resolve();
        }
      };
      a.child.stderr.on('data', onData);
      a.done.then(() => resolve());
    });
    const rb = await cofferAsync(['backup', '--repo', repoDir, '--vm', 'vm3', big, '--json']).done;
    const ra = await a.done;
    assert.equal(ra.code, 0, `the first backup failed: ${ra.stdout} ${ra.stderr}`);
    expectError(rb, 4, 'LOCKED');
    const list = expectOk(coffer(['list', '--repo', repoDir, '--json']));
    assert.equal(list.length, before + 1);
    assert.deepEqual(blobFiles(repoDir, 'locks'), []);
    rmSync(big);
  });

  test('stale leases (expired, or of a dead process on this host) do not block', async () => {
    const scope = repo.vmScope('vm1');
    const now = Date.now();
    const expired = {
      holder: 'aaaaaaaaaaaaaaaa',
      host: 'some-other-host',
      pid: 1,
      operation: 'backup of VM vm1',
      acquiredAt: now - 3_600_000,
      expiresAt: now - 60_000,
    };
    const dead = {
      holder: 'bbbbbbbbbbbbbbbb',
      host: hostname(),
      pid: deadPid(),
      operation: 'backup of VM vm1',
      acquiredAt: now - 1000,
      expiresAt: now + 3_600_000,
    };
    await new LocalBlobStore(repoDir).put(
      lockBlob(scope, `${expired.holder}-000000`),
      Buffer.from(JSON.stringify(expired)),
    );
    await new LocalBlobStore(repoDir).put(lockBlob(scope, `${dead.holder}-000003`), Buffer.from(JSON.stringify(dead)));
    assert.equal(blobFiles(repoDir, 'locks').length, 2);
    const r = coffer(['backup', '--repo', repoDir, '--vm', 'vm1', disk1, '--json']);
    const res = expectOk(r);
    assert.equal(res.vm, 'vm1');
    assert.match(r.stderr, /removing stale lock/);
    assert.deepEqual(blobFiles(repoDir, 'locks'), [], 'stale locks were not removed');
    // an unreadable lock blob does not block either
    await new LocalBlobStore(repoDir).put(lockBlob(scope, 'cccccccccccccccc-000000'), Buffer.from('garbage'));
    expectOk(coffer(['backup', '--repo', repoDir, '--vm', 'vm1', disk1, '--json']));
    assert.deepEqual(blobFiles(repoDir, 'locks'), []);
    const v = expectOk(coffer(['verify', '--repo', repoDir, '--read-data', '--json']));
    assert.equal(v.ok, true, JSON.stringify(v.problems));
  });
});

describe('Ctrl-C during a backup', () => {
  const tmp = tempDir('coffer-sigint-');
  const repoDir = join(tmp.path, 'repo');
  const disk = join(tmp.path, 'big.raw');
  const SIZE = 600 * MiB;

  before(() => {
    makeRandomDisk(disk, SIZE, 'sigint');
    expectOk(coffer(['init', '--repo', repoDir, '--kdf-cost', '1024', '--chunk-size', '4M', '--json']));
  });
  after(() => tmp.cleanup());

  test('SIGINT: exit 130 CANCELLED, no restore point, no locks; the next backup succeeds and verifies', async () => {
    const run = cofferAsync(['backup', '--repo', repoDir, '--vm', 'big', disk, '--json']);
    const started = Date.now();
    const progressed = await new Promise<boolean>((resolve) => {
      const onData = (d: Buffer) => {
        if (d.toString().includes('backup big')) {
          run.child.stderr.off('data', onData);
          resolve(true);
        }
      };
      run.child.stderr.on('data', onData);
      run.done.then(() => resolve(false));
    });
    assert.ok(progressed, 'the backup finished (or failed) before it could be interrupted');
    const wait = Math.max(0, 400 - (Date.now() - started));
    await new Promise((r) => setTimeout(r, wait));
    assert.equal(run.child.exitCode, null, 'the backup finished before SIGINT');
    run.child.kill('SIGINT');
    const r = await run.done;
    const e = expectError(r, 130, 'CANCELLED');
    assert.match(e.message, /SIGINT|cancel/i);
    assert.deepEqual(expectOk(coffer(['list', '--repo', repoDir, '--json'])), []);
    assert.deepEqual(blobFiles(repoDir, 'points'), []);
    assert.deepEqual(blobFiles(repoDir, 'locks'), []);
    const partial = blobFiles(repoDir, 'chunks').length;
    assert.ok(partial < SIZE / (4 * MiB), `all ${partial} chunks were stored before the cancel took effect`);

    const b = expectOk(coffer(['backup', '--repo', repoDir, '--vm', 'big', disk, '--json', '-q']));
    assert.equal(b.parent, null);
    assert.equal(b.chunksNew + b.chunksReused, SIZE / (4 * MiB));
    assert.equal(b.chunksReused, partial, 'the chunks stored by the cancelled run are reused');
    const v = expectOk(coffer(['verify', '--repo', repoDir, '--read-data', '--json', '-q']));
    assert.equal(v.ok, true, JSON.stringify(v.problems));
    assert.equal(v.chunksUnreferenced, 0);
    assert.deepEqual(blobFiles(repoDir, 'locks'), []);
  });

  test('SIGINT during a restore: exit 130 CANCELLED and no partial target file', async () => {
    const out = join(tmp.path, 'restored.raw');
    const run = cofferAsync(['restore', '--repo', repoDir, 'latest', '--disk', '0', '--target', out, '--json']);
    const progressed = await new Promise<boolean>((resolve) => {
      const onData = (d: Buffer) => {
        if (d.toString().includes('restore ')) {
          run.child.stderr.off('data', onData);
          resolve(true);
        }
      };
      run.child.stderr.on('data', onData);
      run.done.then(() => resolve(false));
    });
    assert.ok(progressed, 'the restore finished (or failed) before it could be interrupted');
    assert.equal(run.child.exitCode, null, 'the restore finished before SIGINT');
    run.child.kill('SIGINT');
    expectError(await run.done, 130, 'CANCELLED');
    assert.equal(existsSync(out), false, 'a cancelled restore left a partial target file');
  });
});

describe('disk full during a backup (ENOSPC)', () => {
  const tmp = tempDir('coffer-enospc-');
  const mnt = join(tmp.path, 'mnt');
  const repoDir = join(mnt, 'repo');
  const small = join(tmp.path, 'small.raw');
  const large = join(tmp.path, 'large.raw');
  let mounted = false;

  after(() => {
    if (mounted) {
      const u = spawnSync('umount', [mnt], { encoding: 'utf8' });
      if (u.status !== 0) spawnSync('umount', ['-l', mnt]);
    }
    tmp.cleanup();
  });

  test('a backup that fills the repository disk exits 10 STORAGE_FULL; committed data stays intact', (t) => {
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) {
      t.skip(`cannot mount a tmpfs (needs root): ${(m.stderr || m.error?.message || '').trim()}`);
      return;
    }
    mounted = true;
    makeRandomDisk(small, 2 * MiB + 3, 'enospc-small');
    makeRandomDisk(large, 64 * MiB, 'enospc-large');
    expectOk(coffer(['init', '--repo', repoDir, '--chunk-size', '1M', '--kdf-cost', '1024', '--json']));
    const first = expectOk(coffer(['backup', '--repo', repoDir, '--vm', 'vm1', small, '--json']));

    const r = coffer(['backup', '--repo', repoDir, '--vm', 'vm1', large, '--json']);
    const e = expectError(r, 10, 'STORAGE_FULL');
    assert.ok(e.hint, 'STORAGE_FULL carries a hint');
    assert.deepEqual(blobFiles(repoDir, 'points'), [`points/${first.id}`]);
    assert.deepEqual(blobFiles(repoDir, 'locks'), []);
    const list = expectOk(coffer(['list', '--repo', repoDir, '--json']));
    assert.deepEqual(
      list.map((p: any) => p.id),
      [first.id],
    );

    const v = expectOk(coffer(['verify', '--repo', repoDir, '--read-data', '--json']));
    assert.equal(v.ok, true, JSON.stringify(v.problems));
    assert.equal(v.points, 1);
    const out = join(tmp.path, 'restored.raw');
    expectOk(coffer(['restore', '--repo', repoDir, first.id, '--disk', '0', '--target', out, '--json']));
    assertSameBytes(out, small);
  });
});
