import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { checkPassword, hashPassword, PERMISSIONS, ROLES } from './auth.js';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRestoreTarget, confineRestoreTarget } from './jobs/restore-target.js';
import { decodeCursor, encodeCursor } from './catalog/index.js';

test('scrypt password hashes: salted, verified, wrong passwords and garbage rejected', async () => {
  const a = await hashPassword('correct horse');
  const b = await hashPassword('correct horse');
  assert.notEqual(a, b);
  assert.match(a, /^scrypt\$16384\$8\$1\$/);
  assert.equal(await checkPassword('correct horse', a), true);
  assert.equal(await checkPassword('correct horsf', a), false);
  assert.equal(await checkPassword('correct horse', 'plain:correct horse'), false);
});

/** docs/DESIGN.md's RBAC matrix must say what the code does. */
test('the RBAC matrix in DESIGN.md matches PERMISSIONS', () => {
  const doc = readFileSync(new URL('../../../docs/DESIGN.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('### RBAC matrix'), doc.indexOf('### Security'));
  const header = /^\| endpoint class \| (.*) \|$/m.exec(section)![1]!.split(' | ');
  assert.deepEqual(header, [...ROLES]);
  const rows = [...section.matchAll(/^\| ([^|]+) \| (yes|no) \| (yes|no) \| (yes|no) \| (yes|no) \|$/gm)];
  const classOf: Record<string, keyof typeof PERMISSIONS> = {
    read: 'read',
    'start restore': 'restore',
    'start backup': 'operate',
    'create, change': 'policies',
    'audit log': 'admin',
  };
  assert.equal(rows.length, Object.keys(PERMISSIONS).length);
  for (const r of rows) {
    const key = Object.entries(classOf).find(([prefix]) => r[1]!.startsWith(prefix))?.[1];
    assert.ok(key, `unknown row ${r[1]}`);
    const allowed = ROLES.filter((_, i) => r[i + 2] === 'yes');
    assert.deepEqual(allowed, [...PERMISSIONS[key]], r[1]);
  }
});

test('restore targets stay inside the restore directories', () => {
  const dirs = ['/srv/restores', '/mnt/other'];
  assert.equal(checkRestoreTarget('a.raw', dirs), '/srv/restores/a.raw');
  assert.equal(checkRestoreTarget('sub/a.raw', dirs), '/srv/restores/sub/a.raw');
  assert.equal(checkRestoreTarget('/mnt/other/x.raw', dirs), '/mnt/other/x.raw');
  for (const bad of [
    '../a.raw',
    '/srv/restores',
    '/srv/restores/../etc/passwd',
    '/etc/passwd',
    '/srv/restoresX/a.raw',
  ]) {
    assert.throws(() => checkRestoreTarget(bad, dirs), /outside the restore directories/, bad);
  }
});

test('cursors round-trip and foreign cursors are USAGE errors', () => {
  assert.deepEqual(decodeCursor(encodeCursor(['2026-01-01T00:00:00Z', 'main', 'ab']), 3), [
    '2026-01-01T00:00:00Z',
    'main',
    'ab',
  ]);
  assert.equal(decodeCursor(undefined, 1), undefined);
  assert.throws(() => decodeCursor('zzz', 1), /not a cursor this server issued/);
  assert.throws(() => decodeCursor(encodeCursor([1, 2]), 1), /not a cursor/);
  assert.throws(() => decodeCursor(Buffer.from('[{"a":1}]').toString('base64url'), 1), /not a cursor/);
});

test('restore targets are confined on the file system too (symlinks, devices)', async () => {
  const base = mkdtempSync(join(tmpdir(), 'coffer-confine-'));
  try {
    const dir = join(base, 'restores');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    mkdirSync(join(base, 'outside'));
    symlinkSync(join(base, 'outside'), join(dir, 'escape'));
    symlinkSync('/dev/null', join(dir, 'dev'));
    writeFileSync(join(dir, 'old.raw'), 'x');
    await confineRestoreTarget(join(dir, 'new.raw'), [dir]);
    await confineRestoreTarget(join(dir, 'sub', 'new.raw'), [dir]);
    await confineRestoreTarget(join(dir, 'old.raw'), [dir]);
    await assert.rejects(
      confineRestoreTarget(join(dir, 'escape', 'x.raw'), [dir]),
      /resolves outside the restore directories/,
    );
    await assert.rejects(confineRestoreTarget(join(dir, 'dev'), [dir]), /not a regular file/);
    await assert.rejects(confineRestoreTarget(join(dir, 'nodir', 'x.raw'), [dir]), /does not exist/);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
