import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { MiB, mkExt } from './helpers/fs-images.js';
import { expectError, expectOk } from './helpers/more-cli.js';
import { makeState, T1 } from './helpers/find-states.js';
import { EXIT_CODES } from '../src/cli/exit-codes.js';

const T = { timeout: 180_000 };

/** `coffer files find` and `files diff` over two real backups of an ext4 image made by mke2fs -d. */
describe('coffer files find/diff', () => {
  const tmp = tempDir('coffer-find-');
  const repo = join(tmp.path, 'repo');
  const disk = join(tmp.path, 'disk.raw');
  const src = join(tmp.path, 'src');
  let p1 = '';
  let p2 = '';
  let time2 = '';
  const files = (args: string[]) => coffer(['files', ...args, '--repo', repo, '--no-progress', '--json']);

  before(() => {
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    makeState(src, 1);
    mkExt(disk, 'ext4', src, 16 * MiB);
    p1 = expectOk(coffer(['backup', '--repo', repo, '--vm', 'guest', disk, '--json'])).id;
    makeState(src, 2);
    rmSync(disk);
    mkExt(disk, 'ext4', src, 16 * MiB);
    const b = expectOk(coffer(['backup', '--repo', repo, '--vm', 'guest', disk, '--json']));
    p2 = b.id;
    const pts = coffer(['list', '--repo', repo, '--json']);
    const all = JSON.parse(pts.stdout);
    const list: any[] = Array.isArray(all) ? all : (all.items ?? all.points);
    time2 = list.find((p: any) => p.id === p2).time;
  });
  after(() => tmp.cleanup());

  test('a plain path across both points, newest first, with size and mtime', T, () => {
    const r = expectOk(files(['find', '/data/grow.txt']));
    assert.deepEqual(
      r.matches.map((m: any) => [m.pointId, m.path, m.size, m.disk, m.partition, m.type]),
      [
        [p2, '/data/grow.txt', 20, 0, 0, 'file'],
        [p1, '/data/grow.txt', 10, 0, 0, 'file'],
      ],
    );
    assert.equal(r.matches[0].mtime, T1.toISOString());
    assert.equal(r.partial, false);
    assert.deepEqual(
      r.points.map((p: any) => p.id),
      [p2, p1],
    );
    // a plain path is resolved directly: nothing else is walked
    assert.equal(r.points[0].entriesWalked, 0);
    const gone = expectOk(files(['find', '/data/remove.txt']));
    assert.deepEqual(
      gone.matches.map((m: any) => m.pointId),
      [p1],
    );
    const text = coffer(['files', 'find', '/data/new.txt', '--repo', repo, '--no-progress']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^${p2} .* disk 0 part 0 +- +10 +2024-01-02 03:04:05 +/data/new\\.txt$`, 'm'));
    assert.match(text.stdout, /1 match\(es\) in 2 restore point\(s\)/);
  });

  test('--since and --vm filter the points; --max-points is reported', T, () => {
    const r = expectOk(files(['find', '/data/grow.txt', '--since', time2]));
    assert.deepEqual(
      r.matches.map((m: any) => m.pointId),
      [p2],
    );
    expectError(files(['find', '/x', '--since', 'not-a-date']), EXIT_CODES.USAGE, 'USAGE');
    expectError(files(['find', '/x', '--vm', 'nobody']), EXIT_CODES.NOT_FOUND, 'NOT_FOUND');
    assert.equal(expectOk(files(['find', '/data/grow.txt', '--vm', 'guest'])).matches.length, 2);
    const one = expectOk(files(['find', '/data/grow.txt', '--max-points', '1']));
    assert.deepEqual(
      one.matches.map((m: any) => m.pointId),
      [p2],
    );
    assert.equal(one.partial, true);
    assert.equal(one.pointsSkipped, 1);
    assert.ok(
      one.notes.some((n: string) => /only the newest 1 of 2 restore points/.test(n)),
      one.notes.join('\n'),
    );
  });

  test('glob semantics: *, ?, **, classes, over the full path', T, () => {
    const paths = (pattern: string, extra: string[] = []) =>
      expectOk(files(['find', pattern, '--max-points', '1', ...extra]))
        .matches.map((m: any) => m.path)
        .sort();
    assert.deepEqual(paths('/data/*.txt'), [
      '/data/grow.txt',
      '/data/keep.txt',
      '/data/new.txt',
      '/data/same.txt',
      '/data/sneaky.txt',
    ]);
    assert.deepEqual(paths('/data/*'), [
      '/data/grow.txt',
      '/data/keep.txt',
      '/data/new.txt',
      '/data/same.txt',
      '/data/sneaky.txt',
      '/data/sub',
    ]);
    assert.deepEqual(paths('/**/deep.log'), ['/data/sub/deep.log']);
    assert.deepEqual(paths('/**/*.conf'), ['/etc/app/app.conf']);
    assert.deepEqual(paths('/etc/**'), ['/etc', '/etc/app', '/etc/app/app.conf', '/etc/hosts']);
    assert.deepEqual(paths('/data/[gk]*.txt'), ['/data/grow.txt', '/data/keep.txt']);
    assert.deepEqual(paths('/data/[!gk]???.txt'), ['/data/same.txt']);
    assert.deepEqual(
      paths('/many/f29?.txt'),
      Array.from({ length: 10 }, (_, i) => `/many/f29${i}.txt`),
    );
    assert.deepEqual(paths('/data/grow'), []);
    assert.deepEqual(paths('/nothing/**'), []);
    // only /data is walked for /data/*.txt, not /many (300 entries)
    const r = expectOk(files(['find', '/data/*.txt', '--max-points', '1']));
    assert.ok(r.points[0].entriesWalked < 20, `walked ${r.points[0].entriesWalked}`);
  });

  test('budgets are reported, never silently partial', T, () => {
    const r = expectOk(files(['find', '/**/nothing-here', '--max-entries', '50']));
    assert.equal(r.partial, true);
    assert.equal(r.matches.length, 0);
    for (const p of r.points) {
      assert.equal(p.entriesWalked, 50);
      assert.match(p.stopped, new RegExp(`^search stopped at 50 entries in point ${p.id}`));
    }
    assert.ok(
      r.notes.some((n: string) => n.startsWith(`search stopped at 50 entries in point ${p2}`)),
      r.notes.join('\n'),
    );
    const limited = expectOk(files(['find', '/many/*', '--limit', '7']));
    assert.equal(limited.matches.length, 7);
    assert.equal(limited.partial, true);
    assert.ok(
      limited.notes.some((n: string) => /result limit 7 reached/.test(n)),
      limited.notes.join('\n'),
    );
    const text = coffer(['files', 'find', '/**/nothing-here', '--max-entries', '50', '--repo', repo, '--no-progress']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /PARTIAL/);
    assert.match(text.stderr, /search stopped at 50 entries in point/);
  });

  test('diff lists exactly the expected changes; --content reads same-size same-mtime files', T, () => {
    const r = expectOk(files(['diff', p1, p2]));
    const got = r.volumes.flatMap((v: any) =>
      v.changes.map((c: any) => [c.change, c.path, (c.fields ?? []).join(','), c.sizeA ?? null, c.sizeB ?? null]),
    );
    assert.deepEqual(got, [
      ['changed', '/data/grow.txt', 'size', 10, 20],
      ['added', '/data/new.txt', '', null, 10],
      ['removed', '/data/remove.txt', '', 11, null],
      ['changed', '/data/same.txt', 'mtime', 4, 4],
    ]);
    assert.deepEqual(r.counts, { added: 1, removed: 1, changed: 2 });
    assert.equal(r.partial, false);
    const c = expectOk(files(['diff', p1, p2, '/data', '--content']));
    const got2 = c.volumes.flatMap((v: any) =>
      v.changes.map((x: any) => [x.change, x.path, (x.fields ?? []).join(',')]),
    );
    assert.deepEqual(got2, [
      ['changed', '/data/grow.txt', 'size'],
      ['added', '/data/new.txt', ''],
      ['removed', '/data/remove.txt', ''],
      ['changed', '/data/same.txt', 'mtime'],
      ['changed', '/data/sneaky.txt', 'content'],
    ]);
    assert.ok(c.volumes[0].contentCompared >= 3);
    const none = expectOk(files(['diff', p2, p2, '--content']));
    assert.deepEqual(none.counts, { added: 0, removed: 0, changed: 0 });
    const budget = expectOk(files(['diff', p1, p2, '--max-entries', '5']));
    assert.equal(budget.partial, true);
    assert.ok(
      budget.notes.some((n: string) => /diff stopped at 5 entries/.test(n)),
      budget.notes.join('\n'),
    );
    const text = coffer(['files', 'diff', p1, p2, '--repo', repo, '--no-progress']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^~ - disk 0 part 0 {2}\/data\/grow\.txt {2}10 -> 20 {2}\(size\)$/m);
    assert.match(text.stdout, /^\+ - disk 0 part 0 {2}\/data\/new\.txt {2}10$/m);
    assert.match(text.stdout, /1 added, 1 removed, 2 changed/);
  });

  test('diff refuses points of different VMs unless --force', T, () => {
    const other = expectOk(coffer(['backup', '--repo', repo, '--vm', 'other', disk, '--json'])).id;
    expectError(files(['diff', p1, other]), EXIT_CODES.USAGE, 'USAGE');
    const r = expectOk(files(['diff', p1, other, '--force']));
    assert.equal(r.counts.added, 1);
  });
});
