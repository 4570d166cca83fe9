// Acceptance surface of the coffer CLI: real repositories, real disk images, the built binary.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, truncateSync, writeFileSync, closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { mutate } from './helpers/disks.js';
import {
  assertNoStack,
  assertSameBuffer,
  assertSameBytes,
  blobFiles,
  cofferRaw,
  expectError,
  expectOk,
  makeGuestDisk,
  makeSparseDisk,
  dataBytes,
} from './helpers/more-cli.js';

const KiB = 1024;
const MiB = 1024 * 1024;
const CHUNK = 64 * KiB;
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const HEX32 = /^[0-9a-f]{32}$/;

describe('coffer CLI surface', () => {
  const tmp = tempDir('coffer-surface-');
  const repo = join(tmp.path, 'repo');
  const disk0 = join(tmp.path, 'disk0.raw');
  const disk1 = join(tmp.path, 'disk1.raw');
  const disk0v1 = join(tmp.path, 'disk0-v1.raw');
  // disk 0: guest-like (random, text, holes), size not a multiple of the chunk size
  const DISK0_SIZE = 4 * MiB + 12_345;
  // disk 1: mostly holes
  const DISK1_SIZE = 16 * MiB;
  let first: any;
  let second: any;
  let third: any;

  before(() => {
    makeGuestDisk(disk0, DISK0_SIZE, 'surface-d0');
    makeSparseDisk(
      disk1,
      DISK1_SIZE,
      [
        [0, 100_000],
        [5 * MiB + 7, 200_000],
        [DISK1_SIZE - 3000, 3000],
      ],
      'surface-d1',
    );
  });
  after(() => tmp.cleanup());

  test('init --repo PATH creates a repository (JSON result)', () => {
    const r = expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--json']));
    assert.match(r.id, HEX32);
    assert.equal(r.chunkSizeBytes, CHUNK);
    assert.equal(r.formatVersion, 1);
    assert.equal(r.location, repo);
    const blobs = blobFiles(repo);
    assert.ok(blobs.includes('config'), blobs.join(','));
    assert.equal(blobs.filter((b) => /^keys\/[0-9a-f]{16}$/.test(b)).length, 1, blobs.join(','));
  });

  test('init with defaults (text output, 1 MiB chunks)', () => {
    const dir = join(tmp.path, 'repo-default');
    const r = coffer(['init', '--repo', dir]);
    assert.equal(r.code, 0, r.stderr);
    assertNoStack(r);
    assert.match(r.stdout, /^created repository [0-9a-f]{32} at /);
    const cfg = JSON.parse(readFileSync(join(dir, 'config'), 'utf8'));
    assert.equal(cfg.chunkSizeBytes, MiB);
    assert.equal(cfg.formatVersion, 1);
    assert.equal(cfg.magic, 'coffer-repository');
    // and it is usable: an empty list
    assert.deepEqual(expectOk(coffer(['list', '--repo', dir, '--json'])), []);
  });

  test('backup of two disks (a path and a file:// URL) prints one JSON result', () => {
    const url = pathToFileURL(disk1).href;
    assert.ok(url.startsWith('file:///'));
    const r = coffer(['backup', '--repo', repo, '--vm', 'vm1', disk0, url, '--json']);
    first = expectOk(r);
    assert.match(first.id, HEX32);
    assert.equal(first.vm, 'vm1');
    assert.equal(first.mode, 'full');
    assert.equal(first.parent, null);
    assert.ok(dataBytes(disk0) < DISK0_SIZE, 'the test disk has holes');
    assert.equal(first.bytesRead, dataBytes(disk0) + dataBytes(disk1), 'holes are not read');
    assert.ok(first.bytesStored > 0);
    assert.equal(typeof first.durationMs, 'number');
    assert.ok(first.durationMs >= 0);
    assert.ok(first.chunksNew > 0);
    assert.equal(first.disks.length, 2);
    assert.deepEqual(
      first.disks.map((d: any) => [d.index, d.sizeBytes]),
      [
        [0, DISK0_SIZE],
        [1, DISK1_SIZE],
      ],
    );
    // disk 1 is 256 chunks of which 7 hold data (chunks 0-1, 80-83, 255)
    assert.equal(first.disks[1].zeroChunks, 256 - 7);
    // the stored data is compressed text + incompressible data: well below what was read
    assert.ok(first.bytesStored < DISK0_SIZE + 300_000 + 64 * KiB, `stored ${first.bytesStored}`);
    // the chunk blobs on disk are exactly the new chunks
    assert.equal(blobFiles(repo, 'chunks').length, first.chunksNew);
    assert.deepEqual(blobFiles(repo, 'points'), [`points/${first.id}`]);
    assert.deepEqual(blobFiles(repo, 'locks'), []);
  });

  test('list --json shows the restore point', () => {
    const list = expectOk(coffer(['list', '--repo', repo, '--json']));
    assert.equal(list.length, 1);
    const p = list[0];
    assert.equal(p.id, first.id);
    // the same VM shape as `show` (issue 20)
    assert.deepEqual(p.vm, { name: 'vm1', id: null });
    assert.match(p.time, ISO_8601);
    assert.ok(!Number.isNaN(Date.parse(p.time)));
    assert.ok(Math.abs(Date.parse(p.time) - Date.now()) < 10 * 60_000);
    assert.equal(p.parent, null);
    assert.deepEqual(p.disks, [
      { index: 0, sizeBytes: DISK0_SIZE },
      { index: 1, sizeBytes: DISK1_SIZE },
    ]);
  });

  test('second backup of the unchanged VM: parent is the first, nothing new stored', () => {
    const chunksBefore = blobFiles(repo, 'chunks');
    second = expectOk(coffer(['backup', '--repo', repo, '--vm', 'vm1', disk0, disk1, '--json']));
    assert.notEqual(second.id, first.id);
    assert.equal(second.parent, first.id);
    assert.equal(second.mode, 'full');
    assert.equal(second.bytesRead, dataBytes(disk0) + dataBytes(disk1));
    assert.equal(second.chunksNew, 0);
    assert.equal(second.bytesStored, 0);
    assert.equal(second.chunksReused, first.chunksNew + first.chunksReused);
    assert.deepEqual(blobFiles(repo, 'chunks'), chunksBefore);
    const list = expectOk(coffer(['list', '--repo', repo, '--json']));
    assert.deepEqual(
      list.map((p: any) => [p.id, p.parent]),
      [
        [first.id, null],
        [second.id, first.id],
      ],
    );
  });

  test('after mutating 1 MiB, the next backup stores about 1 MiB', () => {
    writeFileSync(disk0v1, readFileSync(disk0)); // keep the old content for restores of older points
    // 1 MiB at an offset that is not chunk aligned: touches 17 chunks of 64 KiB
    mutate(disk0, 2 * MiB + 4096, MiB, 'surface-mutation');
    third = expectOk(coffer(['backup', '--repo', repo, '--vm', 'vm1', disk0, disk1, '--json']));
    assert.equal(third.parent, second.id);
    assert.equal(third.chunksNew, 17);
    assert.ok(third.bytesStored >= MiB, `stored ${third.bytesStored}`);
    assert.ok(third.bytesStored <= 17 * CHUNK + 17 * 256, `stored ${third.bytesStored}`);
    assert.equal(third.disks[1].chunksNew, 0);
    assert.equal(third.disks[1].bytesStored, 0);
  });

  test('restore to a file is bit-exact and sparse', () => {
    const out0 = join(tmp.path, 'out0.raw');
    const r0 = expectOk(coffer(['restore', '--repo', repo, first.id, '--disk', '0', '--target', out0, '--json']));
    assert.equal(r0.sizeBytes, DISK0_SIZE);
    assertSameBytes(out0, disk0v1);
    const out1 = join(tmp.path, 'out1.raw');
    const r1 = coffer(['restore', '--repo', repo, first.id, '--disk', '1', '--target', out1]);
    assert.equal(r1.code, 0, r1.stderr);
    assertNoStack(r1);
    assertSameBytes(out1, disk1);
    const st = statSync(out1);
    assert.equal(st.size, DISK1_SIZE);
    assert.ok(
      st.blocks * 512 < DISK1_SIZE / 4,
      `restored disk 1 is not sparse: ${st.blocks * 512} bytes allocated of ${DISK1_SIZE}`,
    );
    // disk 0 has a hole every fourth 256 KiB: also sparse
    assert.ok(statSync(out0).blocks * 512 < DISK0_SIZE, 'restored disk 0 is not sparse');
  });

  test('restore to stdout (--target -) is bit-exact', () => {
    const r = cofferRaw(['restore', '--repo', repo, third.id, '--disk', '0', '--target', '-', '--no-progress']);
    assert.equal(r.code, 0, r.stderr);
    assertNoStack(r);
    assertSameBuffer(r.stdout, readFileSync(disk0), 'stdout restore of disk 0');
    const r1 = cofferRaw(['restore', '--repo', repo, third.id, '--disk', '1', '--target', '-', '-q']);
    assert.equal(r1.code, 0, r1.stderr);
    assertSameBuffer(r1.stdout, readFileSync(disk1), 'stdout restore of disk 1 (holes written as zeros)');
  });

  test('restore by id prefix and by "latest"', () => {
    const byPrefix = join(tmp.path, 'prefix.raw');
    const r = expectOk(
      coffer(['restore', '--repo', repo, second.id.slice(0, 8), '--disk', '0', '--target', byPrefix, '--json']),
    );
    assert.equal(r.id, second.id);
    assertSameBytes(byPrefix, disk0v1);
    const latest = join(tmp.path, 'latest.raw');
    const rl = expectOk(coffer(['restore', '--repo', repo, 'latest', '--disk', '0', '--target', latest, '--json']));
    assert.equal(rl.id, third.id);
    assertSameBytes(latest, disk0);
  });

  test('show prints one restore point (JSON and text)', () => {
    const m = expectOk(coffer(['show', '--repo', repo, second.id.slice(0, 6), '--json']));
    assert.equal(m.id, second.id);
    assert.equal(m.vm.name, 'vm1');
    assert.equal(m.parent, first.id);
    assert.equal(m.disks.length, 2);
    assert.equal(m.disks[0].sizeBytes, DISK0_SIZE);
    assert.equal(m.disks[0].chunkCount, Math.ceil(DISK0_SIZE / CHUNK));
    assert.equal(m.disks[1].source, pathToFileURL(disk1).href);
    const t = coffer(['show', '--repo', repo, 'latest']);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, new RegExp(`restore point ${third.id}`));
    assert.match(t.stdout, /VM\s+vm1/);
    assert.match(t.stdout, new RegExp(`parent\\s+${second.id}`));
  });

  test('verify and verify --read-data exit 0 on a clean repository', () => {
    const plain = coffer(['verify', '--repo', repo]);
    assert.equal(plain.code, 0, plain.stdout + plain.stderr);
    assertNoStack(plain);
    assert.match(plain.stdout, /no errors found/);
    const rep = expectOk(coffer(['verify', '--repo', repo, '--read-data', '--json']));
    assert.equal(rep.ok, true);
    assert.deepEqual(rep.problems, []);
    assert.equal(rep.points, 3);
    assert.equal(rep.disks, 6);
    assert.equal(rep.chunksStored, blobFiles(repo, 'chunks').length);
    assert.equal(rep.chunksRead, rep.chunksReferenced);
    assert.equal(rep.chunksUnreferenced, 0);
  });

  test('dedup across VMs: the same disk under another VM stores no new chunks', () => {
    const chunksBefore = blobFiles(repo, 'chunks');
    const r = expectOk(coffer(['backup', '--repo', repo, '--vm', 'other-vm', disk0, '--json']));
    assert.equal(r.vm, 'other-vm');
    assert.equal(r.parent, null);
    assert.equal(r.chunksNew, 0);
    assert.equal(r.bytesStored, 0);
    assert.deepEqual(blobFiles(repo, 'chunks'), chunksBefore);
    const out = join(tmp.path, 'other.raw');
    expectOk(coffer(['restore', '--repo', repo, r.id, '--disk', '0', '--target', out, '--json']));
    assertSameBytes(out, disk0);
    const list = expectOk(coffer(['list', '--repo', repo, '--json', '--vm', 'other-vm']));
    assert.deepEqual(
      list.map((p: any) => p.id),
      [r.id],
    );
  });

  test('disks whose size is not a multiple of the chunk size (tiny, chunk+1, chunk-1)', () => {
    for (const size of [1, 100, CHUNK - 1, CHUNK + 1, 3 * CHUNK + 17]) {
      const src = join(tmp.path, `odd-${size}.raw`);
      makeSparseDisk(src, size, [[0, size]], `odd-${size}`);
      const b = expectOk(coffer(['backup', '--repo', repo, '--vm', `odd-${size}`, src, '--json']));
      assert.equal(b.bytesRead, size);
      assert.equal(b.disks[0].sizeBytes, size);
      const out = join(tmp.path, `odd-${size}.out`);
      expectOk(coffer(['restore', '--repo', repo, b.id, '--disk', '0', '--target', out, '--json']));
      assertSameBytes(out, src);
    }
  });

  test('an all-zero disk stores nothing and restores as a hole', () => {
    const zero = join(tmp.path, 'zero.raw');
    closeSync(openSync(zero, 'w'));
    truncateSync(zero, 10 * MiB + 5);
    const chunksBefore = blobFiles(repo, 'chunks');
    const b = expectOk(coffer(['backup', '--repo', repo, '--vm', 'zero-vm', zero, '--json']));
    assert.equal(b.bytesRead, 0, 'a file that is all hole is not read at all');
    assert.equal(b.bytesStored, 0);
    assert.equal(b.chunksNew, 0);
    assert.equal(b.chunksReused, 0);
    assert.equal(b.zeroChunks, Math.ceil((10 * MiB + 5) / CHUNK));
    assert.deepEqual(blobFiles(repo, 'chunks'), chunksBefore);
    const out = join(tmp.path, 'zero.out');
    expectOk(coffer(['restore', '--repo', repo, b.id, '--disk', '0', '--target', out, '--json']));
    assertSameBytes(out, zero);
    assert.equal(statSync(out).blocks, 0, 'restored all-zero disk allocates blocks');
  });

  test('--password-file instead of COFFER_PASSWORD', () => {
    const pwFile = join(tmp.path, 'pw.txt');
    writeFileSync(pwFile, `${TEST_PASSWORD}\n`);
    const ok = coffer(['list', '--repo', repo, '--json', '--password-file', pwFile], { COFFER_PASSWORD: undefined });
    assert.ok(expectOk(ok).length >= 3);
    const wrongFile = join(tmp.path, 'wrong.txt');
    writeFileSync(wrongFile, 'not the password\n');
    // the file wins over the environment
    expectError(coffer(['list', '--repo', repo, '--json', '--password-file', wrongFile]), 5, 'WRONG_KEY');
  });

  describe('keys: add, list, passwd, remove', () => {
    const krepo = join(tmp.path, 'krepo');
    const PW1 = 'first password';
    const PW2 = 'second password';
    const PW3 = 'third password';
    let key1: string;
    let key2: string;
    let key3: string;

    test('key list shows the initial key as current', () => {
      expectOk(coffer(['init', '--repo', krepo, '--chunk-size', '64K', '--json'], { COFFER_PASSWORD: PW1 }));
      const keys = expectOk(coffer(['key', 'list', '--repo', krepo, '--json'], { COFFER_PASSWORD: PW1 }));
      assert.equal(keys.length, 1);
      assert.equal(keys[0].current, true);
      assert.match(keys[0].id, /^[0-9a-f]{16}$/);
      assert.equal(keys[0].kdf.algorithm, 'scrypt');
      assert.equal(keys[0].wrapped, undefined, 'key list must not print the wrapped key');
      key1 = keys[0].id;
    });

    test('key add with COFFER_NEW_PASSWORD: both passwords open the repository', () => {
      const added = expectOk(
        coffer(['key', 'add', '--repo', krepo, '--json', '--label', 'backup operator'], {
          COFFER_PASSWORD: PW1,
          COFFER_NEW_PASSWORD: PW2,
        }),
      );
      assert.match(added.id, /^[0-9a-f]{16}$/);
      key2 = added.id;
      const keys = expectOk(coffer(['key', 'list', '--repo', krepo, '--json'], { COFFER_PASSWORD: PW2 }));
      assert.deepEqual(
        keys.map((k: any) => [k.id, k.current]).sort(),
        [
          [key1, false],
          [key2, true],
        ].sort(),
      );
      assert.equal(keys.find((k: any) => k.id === key2).label, 'backup operator');
      assert.equal(expectOk(coffer(['list', '--repo', krepo, '--json'], { COFFER_PASSWORD: PW1 })).length, 0);
    });

    test('key add without a new password is a usage error', () => {
      expectError(
        coffer(['key', 'add', '--repo', krepo, '--json'], { COFFER_PASSWORD: PW1, COFFER_NEW_PASSWORD: undefined }),
        2,
        'USAGE',
      );
      assert.equal(blobFiles(krepo, 'keys').length, 2);
    });

    test('key passwd: the new password works, the old one stops working', () => {
      const r = expectOk(
        coffer(['key', 'passwd', '--repo', krepo, '--json'], { COFFER_PASSWORD: PW2, COFFER_NEW_PASSWORD: PW3 }),
      );
      assert.equal(r.removed, key2);
      key3 = r.id;
      assert.notEqual(key3, key2);
      expectError(coffer(['list', '--repo', krepo, '--json'], { COFFER_PASSWORD: PW2 }), 5, 'WRONG_KEY');
      const keys = expectOk(coffer(['key', 'list', '--repo', krepo, '--json'], { COFFER_PASSWORD: PW3 }));
      assert.deepEqual(keys.map((k: any) => k.id).sort(), [key1, key3].sort());
      assert.equal(keys.find((k: any) => k.id === key3).current, true);
      // the label of the replaced key is kept
      assert.equal(keys.find((k: any) => k.id === key3).label, 'backup operator');
      assert.deepEqual(blobFiles(krepo, 'keys'), [`keys/${key1}`, `keys/${key3}`].sort());
    });

    test('key passwd to the same password leaves exactly one key for that password', () => {
      const repo2 = join(tmp.path, 'krepo-same');
      expectOk(coffer(['init', '--repo', repo2, '--kdf-cost', '1024', '--json'], { COFFER_PASSWORD: PW1 }));
      const r = coffer(['key', 'passwd', '--repo', repo2, '--json'], {
        COFFER_PASSWORD: PW1,
        COFFER_NEW_PASSWORD: PW1,
      });
      assertNoStack(r);
      // either refused up front (usage) or done (the key replaced): never a half-done change with a duplicate key
      assert.ok(r.code === 0 || r.code === 2, `exit ${r.code}: ${r.stdout} ${r.stderr}`);
      const keys = expectOk(coffer(['key', 'list', '--repo', repo2, '--json'], { COFFER_PASSWORD: PW1 }));
      assert.equal(keys.length, 1, `key passwd (exit ${r.code}) left ${keys.length} keys: ${r.stdout}`);
    });

    test('removing the key in use fails with exit 14 (KEY_IN_USE)', () => {
      const e = expectError(
        coffer(['key', 'remove', '--repo', krepo, key3, '--json'], { COFFER_PASSWORD: PW3 }),
        14,
        'KEY_IN_USE',
      );
      assert.match(e.message, new RegExp(key3));
      assert.equal(blobFiles(krepo, 'keys').length, 2);
      // text mode: the error on stderr, no stack
      const t = coffer(['key', 'remove', '--repo', krepo, key3], { COFFER_PASSWORD: PW3 });
      assert.equal(t.code, 14);
      assert.match(t.stderr, /KEY_IN_USE/);
      assertNoStack(t);
    });

    test('removing an unknown key is NOT_FOUND (9)', () => {
      expectError(
        coffer(['key', 'remove', '--repo', krepo, '0123456789abcdef', '--json'], { COFFER_PASSWORD: PW3 }),
        9,
        'NOT_FOUND',
      );
    });

    test('removing another key works; its password stops working; the last key cannot be removed', () => {
      const r = expectOk(coffer(['key', 'remove', '--repo', krepo, key1, '--json'], { COFFER_PASSWORD: PW3 }));
      assert.equal(r.removed, key1);
      expectError(coffer(['list', '--repo', krepo, '--json'], { COFFER_PASSWORD: PW1 }), 5, 'WRONG_KEY');
      expectError(
        coffer(['key', 'remove', '--repo', krepo, key3, '--json'], { COFFER_PASSWORD: PW3 }),
        14,
        'KEY_IN_USE',
      );
      const keys = expectOk(coffer(['key', 'list', '--repo', krepo, '--json'], { COFFER_PASSWORD: PW3 }));
      assert.deepEqual(
        keys.map((k: any) => k.id),
        [key3],
      );
    });
  });

  test('the repository verifies clean after everything above', () => {
    const rep = expectOk(coffer(['verify', '--repo', repo, '--read-data', '--json']));
    assert.equal(rep.ok, true, JSON.stringify(rep.problems));
    assert.deepEqual(blobFiles(repo, 'locks'), []);
  });
});
