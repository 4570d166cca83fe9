// Failure paths of the coffer CLI: each with its exit code, its error code in --json output, no stack trace,
// and the committed data intact afterwards.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { coffer, tempDir, type CliResult } from './helpers/cli.js';
import {
  assertNoStack,
  assertSameBytes,
  blobFiles,
  cofferAs,
  expectError,
  expectOk,
  expectReport,
  fastPrng,
  flipByte,
  makeGuestDisk,
  makeRandomDisk,
} from './helpers/more-cli.js';

const CHUNK = 64 * 1024;

describe('coffer CLI bad input and damaged repositories', () => {
  const tmp = tempDir('coffer-bad-');
  const base = join(tmp.path, 'base');
  const diskA = join(tmp.path, 'a.raw');
  const diskB = join(tmp.path, 'b.raw');
  let p1: string; // vm1, disk A
  let p2: string; // vm2, disk B
  let chunksA: string[]; // chunk blobs referenced by p1 (written by its backup)
  let indexA: string; // index blob of p1's disk 0
  let copies = 0;

  /** A fresh copy of the base repository to damage. */
  const copyRepo = (): string => {
    const dir = join(tmp.path, `copy-${copies++}`);
    cpSync(base, dir, { recursive: true });
    return dir;
  };
  const verifyClean = (repo: string) => {
    const rep = expectOk(coffer(['verify', '--repo', repo, '--read-data', '--json']));
    assert.equal(rep.ok, true, JSON.stringify(rep.problems));
    assert.equal(rep.points, 2);
  };
  const listIds = (repo: string) => expectOk(coffer(['list', '--repo', repo, '--json'])).map((p: any) => p.id);
  /** A failed backup must leave no restore point and no lock behind. */
  const assertNothingCommitted = (repo: string, pointsBefore: string[]) => {
    assert.deepEqual(blobFiles(repo, 'points'), pointsBefore);
    assert.deepEqual(blobFiles(repo, 'locks'), []);
  };

  before(() => {
    makeGuestDisk(diskA, 1024 * 1024 + 777, 'bad-a');
    makeRandomDisk(diskB, 300_000, 'bad-b');
    // a cheap KDF keeps the many CLI runs fast (the default cost is covered by cli-surface)
    expectOk(coffer(['init', '--repo', base, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    p1 = expectOk(coffer(['backup', '--repo', base, '--vm', 'vm1', diskA, '--json'])).id;
    chunksA = blobFiles(base, 'chunks');
    const idx = blobFiles(base, 'indexes');
    assert.equal(idx.length, 1);
    indexA = idx[0]!;
    p2 = expectOk(coffer(['backup', '--repo', base, '--vm', 'vm2', diskB, '--json'])).id;
    assert.ok(chunksA.length >= 4);
  });
  after(() => tmp.cleanup());

  describe('sources', () => {
    test('missing source file: exit 8 SOURCE_UNREADABLE, nothing committed', () => {
      const before = blobFiles(base, 'points');
      const missing = join(tmp.path, 'no-such-disk.raw');
      const e = expectError(
        coffer(['backup', '--repo', base, '--vm', 'vm1', missing, '--json']),
        8,
        'SOURCE_UNREADABLE',
      );
      assert.match(e.message, /no-such-disk\.raw/);
      assertNothingCommitted(base, before);
      // a missing second disk fails the whole backup too
      expectError(coffer(['backup', '--repo', base, '--vm', 'vm1', diskA, missing, '--json']), 8, 'SOURCE_UNREADABLE');
      assertNothingCommitted(base, before);
      // text mode: one error line on stderr, no stack
      const t = coffer(['backup', '--repo', base, '--vm', 'vm1', `file://${missing}`]);
      assert.equal(t.code, 8);
      assert.match(t.stderr, /SOURCE_UNREADABLE/);
      assertNoStack(t);
    });

    test('a directory as source: exit 8 SOURCE_UNREADABLE', () => {
      const before = blobFiles(base, 'points');
      const dir = join(tmp.path, 'a-directory');
      mkdirSync(dir);
      expectError(coffer(['backup', '--repo', base, '--vm', 'vm1', dir, '--json']), 8, 'SOURCE_UNREADABLE');
      assertNothingCommitted(base, before);
    });

    test('a path under a regular file as source (ENOTDIR): exit 8 SOURCE_UNREADABLE', () => {
      const before = blobFiles(base, 'points');
      expectError(
        coffer(['backup', '--repo', base, '--vm', 'vm1', join(diskA, 'child'), '--json']),
        8,
        'SOURCE_UNREADABLE',
      );
      assertNothingCommitted(base, before);
    });

    test('a source file without read permission (mode 000): exit 8 SOURCE_UNREADABLE', () => {
      const before = blobFiles(base, 'points');
      const locked = join(tmp.path, 'mode000.raw');
      writeFileSync(locked, fastPrng('mode000', 100_000));
      chmodSync(locked, 0o000);
      const args = ['backup', '--repo', base, '--vm', 'vm1', locked, '--json'];
      let r: CliResult;
      if (process.getuid?.() === 0) {
        // root reads mode-000 files: run the CLI as nobody, which can read the repository but not the source
        chmodSync(tmp.path, 0o755);
        const control = cofferAs(65534, 65534, ['list', '--repo', base, '--json']);
        assert.equal(control.code, 0, `nobody cannot open the repository: ${control.stdout} ${control.stderr}`);
        r = cofferAs(65534, 65534, args);
      } else {
        r = coffer(args);
      }
      const e = expectError(r, 8, 'SOURCE_UNREADABLE');
      assert.match(e.message, /permission denied/);
      assertNothingCommitted(base, before);
    });
  });

  describe('passwords and repository location', () => {
    test('wrong password: exit 5 WRONG_KEY', () => {
      expectError(coffer(['list', '--repo', base, '--json'], { COFFER_PASSWORD: 'wrong password' }), 5, 'WRONG_KEY');
      const before = blobFiles(base, 'points');
      expectError(
        coffer(['backup', '--repo', base, '--vm', 'vm1', diskA, '--json'], { COFFER_PASSWORD: 'wrong password' }),
        5,
        'WRONG_KEY',
      );
      assertNothingCommitted(base, before);
    });

    test('no password: exit 2 USAGE', () => {
      const e = expectError(coffer(['list', '--repo', base, '--json'], { COFFER_PASSWORD: undefined }), 2, 'USAGE');
      assert.match(e.message, /COFFER_PASSWORD/);
      expectError(coffer(['list', '--repo', base, '--json'], { COFFER_PASSWORD: '' }), 2, 'USAGE');
      expectError(
        coffer(['list', '--repo', base, '--json', '--password-file', join(tmp.path, 'no-such-pw')]),
        2,
        'USAGE',
      );
      const empty = join(tmp.path, 'empty-pw');
      writeFileSync(empty, '');
      expectError(coffer(['list', '--repo', base, '--json', '--password-file', empty]), 2, 'USAGE');
    });

    test('not a repository: nonexistent path, empty directory, a file: exit 3 REPO_NOT_FOUND', () => {
      const nowhere = join(tmp.path, 'no-such-repo');
      expectError(coffer(['list', '--repo', nowhere, '--json']), 3, 'REPO_NOT_FOUND');
      expectError(coffer(['backup', '--repo', nowhere, '--vm', 'vm1', diskA, '--json']), 3, 'REPO_NOT_FOUND');
      assert.equal(existsSync(nowhere), false, 'a command other than init created the repository directory');
      const empty = join(tmp.path, 'empty-dir');
      mkdirSync(empty);
      expectError(coffer(['list', '--repo', empty, '--json']), 3, 'REPO_NOT_FOUND');
      expectError(
        coffer(['restore', '--repo', empty, 'latest', '--disk', '0', '--target', join(tmp.path, 'x.raw'), '--json']),
        3,
        'REPO_NOT_FOUND',
      );
      assert.deepEqual(blobFiles(empty), []);
      expectError(coffer(['list', '--repo', diskA, '--json']), 3, 'REPO_NOT_FOUND');
    });

    test('init twice: exit 13 REPO_EXISTS, the repository is untouched', () => {
      const config = readFileSync(join(base, 'config'));
      const keys = blobFiles(base, 'keys');
      expectError(coffer(['init', '--repo', base, '--json']), 13, 'REPO_EXISTS');
      assert.deepEqual(readFileSync(join(base, 'config')), config);
      assert.deepEqual(blobFiles(base, 'keys'), keys);
    });

    test('command line errors: exit 2 USAGE', () => {
      expectError(coffer(['backup', '--repo', base, diskA, '--json']), 2, 'USAGE'); // no --vm
      expectError(coffer(['backup', '--repo', base, '--vm', 'vm1', '--json']), 2, 'USAGE'); // no source
      expectError(
        coffer(['restore', '--repo', base, p1, '--disk', 'abc', '--target', join(tmp.path, 'u.raw'), '--json']),
        2,
        'USAGE',
      );
      expectError(coffer(['init', '--repo', join(tmp.path, 'bad-chunk'), '--chunk-size', '3K', '--json']), 2, 'USAGE');
    });
  });

  describe('restore points and targets', () => {
    test('unknown restore point id: exit 9 NOT_FOUND; a malformed id: exit 2 USAGE', () => {
      const unknown = p1 === 'f'.repeat(32) ? 'e'.repeat(32) : 'f'.repeat(32);
      const out = join(tmp.path, 'unknown.raw');
      expectError(
        coffer(['restore', '--repo', base, unknown, '--disk', '0', '--target', out, '--json']),
        9,
        'NOT_FOUND',
      );
      expectError(coffer(['show', '--repo', base, unknown, '--json']), 9, 'NOT_FOUND');
      expectError(coffer(['show', '--repo', base, 'not-an-id', '--json']), 2, 'USAGE');
      assert.equal(existsSync(out), false);
    });

    test('"latest" in an empty repository: exit 9 NOT_FOUND', () => {
      const empty = join(tmp.path, 'empty-repo');
      expectOk(coffer(['init', '--repo', empty, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
      expectError(coffer(['show', '--repo', empty, 'latest', '--json']), 9, 'NOT_FOUND');
    });

    test('ambiguous id prefix: exit 2 AMBIGUOUS', () => {
      const repo = copyRepo();
      // a second point name with the same 4-hex prefix (resolving looks at names only)
      const twin = p1.slice(0, 4) + (p1[4] === '0' ? '1' : '0') + p1.slice(5);
      copyFileSync(join(repo, 'points', p1), join(repo, 'points', twin));
      const e = expectError(
        coffer([
          'restore',
          '--repo',
          repo,
          p1.slice(0, 4),
          '--disk',
          '0',
          '--target',
          join(tmp.path, 'amb.raw'),
          '--json',
        ]),
        2,
        'AMBIGUOUS',
      );
      assert.deepEqual([...e.details.matches].sort(), [p1, twin].sort());
      // a longer prefix is unique again
      const out = join(tmp.path, 'unambiguous.raw');
      expectOk(coffer(['restore', '--repo', repo, p1.slice(0, 6), '--disk', '0', '--target', out, '--json']));
      assertSameBytes(out, diskA);
    });

    test('disk index out of range: exit 9 NOT_FOUND', () => {
      const out = join(tmp.path, 'range.raw');
      const e = expectError(
        coffer(['restore', '--repo', base, p1, '--disk', '1', '--target', out, '--json']),
        9,
        'NOT_FOUND',
      );
      assert.match(e.message, /disk 1/);
      expectError(coffer(['restore', '--repo', base, p1, '--disk', '99', '--target', out, '--json']), 9, 'NOT_FOUND');
      assert.equal(existsSync(out), false);
    });

    test('restore target exists: exit 11 TARGET_EXISTS without --force, success with --force', () => {
      const out = join(tmp.path, 'exists.raw');
      writeFileSync(out, 'precious');
      const e = expectError(
        coffer(['restore', '--repo', base, p1, '--disk', '0', '--target', out, '--json']),
        11,
        'TARGET_EXISTS',
      );
      assert.match(e.hint ?? '', /--force/);
      assert.equal(readFileSync(out, 'utf8'), 'precious');
      expectOk(coffer(['restore', '--repo', base, p1, '--disk', '0', '--target', out, '--force', '--json']));
      assertSameBytes(out, diskA);
    });

    test('restore target in a missing directory: exit 11 TARGET_UNWRITABLE', () => {
      expectError(
        coffer(['restore', '--repo', base, p1, '--disk', '0', '--target', join(tmp.path, 'no-dir', 'x.raw'), '--json']),
        11,
        'TARGET_UNWRITABLE',
      );
    });
  });

  describe('damaged repository data', () => {
    test('corrupt chunk: verify passes, verify --read-data and restore exit 6 naming it; no partial target', () => {
      const repo = copyRepo();
      const chunk = chunksA[Math.floor(chunksA.length / 2)]!;
      const hex = chunk.slice(chunk.lastIndexOf('/') + 1);
      const path = join(repo, chunk);
      const undo = flipByte(path, Math.floor(readFileSync(path).length / 2));

      const plain = expectOk(coffer(['verify', '--repo', repo, '--json']));
      assert.equal(plain.ok, true, 'verify without --read-data checks presence only');

      const r = coffer(['verify', '--repo', repo, '--read-data', '--json']);
      const report = expectReport(r, 6);
      assert.equal(report.ok, false);
      assert.deepEqual(
        report.problems.map((p: any) => [p.kind, p.id]),
        [['chunk-corrupt', hex]],
      );
      assert.deepEqual(report.problems[0].points, [p1]);
      const t = coffer(['verify', '--repo', repo, '--read-data']);
      assert.equal(t.code, 6);
      assert.match(t.stdout, new RegExp(hex));
      assertNoStack(t);

      const out = join(tmp.path, 'corrupt-chunk.raw');
      const e = expectError(
        coffer(['restore', '--repo', repo, p1, '--disk', '0', '--target', out, '--json']),
        6,
        'CORRUPT',
      );
      assert.match(e.message, new RegExp(hex));
      assert.equal(existsSync(out), false, 'a failed restore left a partial target file');
      // the other restore point does not use that chunk
      const outB = join(tmp.path, 'corrupt-chunk-b.raw');
      expectOk(coffer(['restore', '--repo', repo, p2, '--disk', '0', '--target', outB, '--json']));
      assertSameBytes(outB, diskB);

      undo();
      verifyClean(repo);
    });

    test('missing chunk: plain verify exits 6 naming it; restore exits 6', () => {
      const repo = copyRepo();
      const chunk = chunksA[0]!;
      const hex = chunk.slice(chunk.lastIndexOf('/') + 1);
      rmSync(join(repo, chunk));
      const r = coffer(['verify', '--repo', repo, '--json']);
      assert.deepEqual(
        expectReport(r, 6).problems.map((p: any) => [p.kind, p.id]),
        [['chunk-missing', hex]],
      );
      const out = join(tmp.path, 'missing-chunk.raw');
      const e = expectError(
        coffer(['restore', '--repo', repo, p1, '--disk', '0', '--target', out, '--json']),
        6,
        'CORRUPT',
      );
      assert.match(e.message, new RegExp(hex));
      assert.equal(existsSync(out), false);
      copyFileSync(join(base, chunk), join(repo, chunk));
      verifyClean(repo);
    });

    test('corrupt index: verify and restore exit 6; the other point still restores', () => {
      const repo = copyRepo();
      const path = join(repo, indexA);
      const undo = flipByte(path, Math.floor(readFileSync(path).length / 2));
      const r = coffer(['verify', '--repo', repo, '--json']);
      const indexHex = indexA.slice(indexA.lastIndexOf('/') + 1);
      assert.deepEqual(
        expectReport(r, 6).problems.map((p: any) => [p.kind, p.id]),
        [['index', indexHex]],
      );
      const out = join(tmp.path, 'corrupt-index.raw');
      expectError(coffer(['restore', '--repo', repo, p1, '--disk', '0', '--target', out, '--json']), 6, 'CORRUPT');
      assert.equal(existsSync(out), false);
      const outB = join(tmp.path, 'corrupt-index-b.raw');
      expectOk(coffer(['restore', '--repo', repo, p2, '--disk', '0', '--target', outB, '--json']));
      assertSameBytes(outB, diskB);
      undo();
      verifyClean(repo);
    });

    test('corrupt manifest: list prints the other points and exits 6 naming it; verify exits 6', () => {
      const repo = copyRepo();
      const path = join(repo, 'points', p2);
      const undo = flipByte(path, Math.floor(readFileSync(path).length / 2));

      const t = coffer(['list', '--repo', repo]);
      assert.equal(t.code, 6, t.stdout + t.stderr);
      assertNoStack(t);
      assert.match(t.stdout, new RegExp(`^${p1.slice(0, 8)} .*vm1`, 'm'));
      assert.doesNotMatch(t.stdout, new RegExp(p2.slice(0, 8)));
      assert.match(t.stderr, new RegExp(p2));

      const j = coffer(['list', '--repo', repo, '--json']);
      assert.deepEqual(
        expectReport(j, 6).map((p: any) => p.id),
        [p1],
        'one document: the readable points',
      );
      assert.match(j.stderr, new RegExp(p2), 'the damaged point is named on stderr');

      const v = coffer(['verify', '--repo', repo, '--json']);
      assert.deepEqual(
        expectReport(v, 6).problems.map((p: any) => [p.kind, p.id]),
        [['point', p2]],
      );
      // the undamaged point restores
      const out = join(tmp.path, 'corrupt-manifest.raw');
      expectOk(coffer(['restore', '--repo', repo, p1, '--disk', '0', '--target', out, '--json']));
      assertSameBytes(out, diskA);
      undo();
      verifyClean(repo);
    });

    test('a manifest renamed to another point id fails authentication (exit 6)', () => {
      const repo = copyRepo();
      const other = p2.slice(0, 31) + (p2[31] === '0' ? '1' : '0');
      copyFileSync(join(repo, 'points', p2), join(repo, 'points', other));
      expectError(coffer(['show', '--repo', repo, other, '--json']), 6, 'CORRUPT');
      rmSync(join(repo, 'points', other));
      verifyClean(repo);
    });
  });

  describe('damaged config and keys', () => {
    const withConfig = (
      mutate: (text: string) => string | Buffer,
      exitCode: number,
      errorCode: string,
      messageRe?: RegExp,
    ) => {
      const repo = copyRepo();
      const path = join(repo, 'config');
      const original = readFileSync(path);
      chmodSync(path, 0o644);
      writeFileSync(path, mutate(original.toString('utf8')));
      for (const args of [['list'], ['restore', p1, '--disk', '0', '--target', join(tmp.path, `cfg-${copies}.raw`)]]) {
        const [cmd, ...rest] = args;
        const e = expectError(coffer([cmd!, '--repo', repo, ...rest, '--json']), exitCode, errorCode);
        if (messageRe) assert.match(e.message, messageRe);
      }
      assert.equal(existsSync(join(tmp.path, `cfg-${copies}.raw`)), false);
      assert.deepEqual(blobFiles(repo, 'points'), blobFiles(base, 'points'));
      writeFileSync(path, original);
      verifyClean(repo);
    };

    test('truncated config: exit 6 CORRUPT', () =>
      withConfig((t) => t.slice(0, Math.floor(t.length / 2)), 6, 'CORRUPT'));
    test('empty config: exit 6 CORRUPT', () => withConfig(() => '', 6, 'CORRUPT'));
    test('garbage config: exit 6 CORRUPT', () => withConfig(() => fastPrng('garbage-config', 400), 6, 'CORRUPT'));
    test('config that is JSON but not a Coffer config: exit 6 CORRUPT', () =>
      withConfig(() => '{"hello":"world"}\n', 6, 'CORRUPT'));

    test('tampered config (chunkSizeBytes changed): exit 6 CORRUPT because of the MAC', () =>
      withConfig(
        (t) => {
          const c = JSON.parse(t);
          assert.equal(c.chunkSizeBytes, CHUNK);
          c.chunkSizeBytes = 2 * CHUNK;
          return JSON.stringify(c, null, 2) + '\n';
        },
        6,
        'CORRUPT',
        /authenticat/,
      ));

    test('tampered config (compression level changed): exit 6 CORRUPT because of the MAC', () =>
      withConfig(
        (t) => {
          const c = JSON.parse(t);
          c.compression.level = 19;
          return JSON.stringify(c);
        },
        6,
        'CORRUPT',
        /authenticat/,
      ));

    test('unsupported formatVersion: exit 12 REPO_UNSUPPORTED', () =>
      withConfig(
        (t) => {
          const c = JSON.parse(t);
          c.formatVersion = 2;
          return JSON.stringify(c, null, 2) + '\n';
        },
        12,
        'REPO_UNSUPPORTED',
        /version 2/,
      ));

    test('a key file with absurd scrypt parameters neither hangs nor allocates; the other key still opens', () => {
      const repo = copyRepo();
      const PW2 = 'second key password';
      const k2 = expectOk(coffer(['key', 'add', '--repo', repo, '--json'], { COFFER_NEW_PASSWORD: PW2 })).id;
      expectOk(coffer(['list', '--repo', repo, '--json'], { COFFER_PASSWORD: PW2 }));
      const path = join(repo, 'keys', k2);
      const original = readFileSync(path, 'utf8');
      chmodSync(path, 0o644);
      for (const [N, r, p] of [
        [2 ** 40, 8, 1],
        [2 ** 30, 8, 1],
        [2 ** 22, 32, 16],
        [3, 8, 1],
      ] as const) {
        const k = JSON.parse(original);
        k.kdf.N = N;
        k.kdf.r = r;
        k.kdf.p = p;
        writeFileSync(path, JSON.stringify(k, null, 2));
        const started = Date.now();
        const res = coffer(['list', '--repo', repo, '--json'], { COFFER_PASSWORD: PW2 });
        const ms = Date.now() - started;
        expectError(res, 5, 'WRONG_KEY');
        assert.ok(ms < 10_000, `opening with a key of N=${N} r=${r} p=${p} took ${ms} ms`);
      }
      // with the hostile key file in place, the first key is unaffected
      const ok = coffer(['list', '--repo', repo, '--json']);
      assert.deepEqual(
        expectOk(ok)
          .map((x: any) => x.id)
          .sort(),
        [p1, p2].sort(),
      );
      writeFileSync(path, original);
      expectOk(coffer(['list', '--repo', repo, '--json'], { COFFER_PASSWORD: PW2 }));
      verifyClean(repo);
    });

    test('a garbage key file is skipped; the valid key opens', () => {
      const repo = copyRepo();
      writeFileSync(join(repo, 'keys', '0123456789abcdef'), fastPrng('garbage-key', 300));
      writeFileSync(join(repo, 'keys', 'not-a-key-name'), '{}');
      assert.deepEqual(listIds(repo).sort(), [p1, p2].sort());
      expectError(coffer(['list', '--repo', repo, '--json'], { COFFER_PASSWORD: 'wrong' }), 5, 'WRONG_KEY');
      verifyClean(repo);
    });
  });

  describe('hostile blob names', () => {
    test('stray files in points/ (not 32 lower-case hex, temp files) are ignored by list, show and verify', () => {
      const repo = copyRepo();
      const pts = join(repo, 'points');
      writeFileSync(join(pts, 'README'), 'hello');
      writeFileSync(join(pts, '.tmp-0123456789abcdef'), fastPrng('tmp', 100));
      writeFileSync(join(pts, `${p1}.bak`), readFileSync(join(pts, p1)));
      writeFileSync(join(pts, p1.toUpperCase().replace(/^[0-9]/, 'A')), readFileSync(join(pts, p1)));
      writeFileSync(join(pts, `${p1}0`), readFileSync(join(pts, p1)));
      writeFileSync(join(pts, p1.slice(0, 31)), readFileSync(join(pts, p1)));
      const list = expectOk(coffer(['list', '--repo', repo, '--json']));
      assert.deepEqual(list.map((p: any) => p.id).sort(), [p1, p2].sort());
      expectOk(coffer(['show', '--repo', repo, p1.slice(0, 8), '--json']));
      verifyClean(repo);
    });

    test('files in subdirectories of points/ and chunks/ are not restore points or chunks', () => {
      const repo = copyRepo();
      const sub = join(repo, 'points', 'sub');
      mkdirSync(sub);
      // a copy of a real manifest one level down, and a nested name with no top-level blob
      writeFileSync(join(sub, p1), readFileSync(join(repo, 'points', p1)));
      writeFileSync(join(sub, 'ab'.repeat(16)), fastPrng('nested', 200));
      mkdirSync(join(repo, 'chunks', 'zz'), { recursive: true });
      writeFileSync(join(repo, 'chunks', 'zz', 'ab'.repeat(32)), fastPrng('nested-chunk', 200));
      const list = expectOk(coffer(['list', '--repo', repo, '--json']));
      assert.deepEqual(list.map((p: any) => p.id).sort(), [p1, p2].sort(), 'list shows nested blobs as restore points');
      // resolving a prefix must not see the nested copy as a second match
      const out = join(tmp.path, 'nested.raw');
      expectOk(coffer(['restore', '--repo', repo, p1.slice(0, 8), '--disk', '0', '--target', out, '--json']));
      assertSameBytes(out, diskA);
      verifyClean(repo);
    });

    test('a VM name with path and control characters is stored as data, not as a name', () => {
      const repo = copyRepo();
      const vm = '../../etc/passwd\n\t; rm -rf / \u202e';
      const b = expectOk(coffer(['backup', '--repo', repo, '--vm', vm, diskB, '--json']));
      assert.equal(b.vm, vm);
      const list = expectOk(coffer(['list', '--repo', repo, '--json', '--vm', vm]));
      assert.deepEqual(
        list.map((p: any) => [p.id, p.vm.name]),
        [[b.id, vm]],
      );
      assert.ok(
        blobFiles(repo).every((n) =>
          /^(config|keys\/[0-9a-f]{16}|chunks\/[0-9a-f]{2}\/[0-9a-f]{64}|indexes\/[0-9a-f]{2}\/[0-9a-f]{64}|points\/[0-9a-f]{32})$/.test(
            n,
          ),
        ),
        blobFiles(repo).join('\n'),
      );
    });
  });

  test('the base repository is intact after all the failures above', () => {
    assert.deepEqual(listIds(base).sort(), [p1, p2].sort());
    verifyClean(base);
    const out = join(tmp.path, 'final-a.raw');
    expectOk(coffer(['restore', '--repo', base, p1, '--disk', '0', '--target', out, '--json']));
    assertSameBytes(out, diskA);
  });
});
