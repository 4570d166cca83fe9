import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { api, makeToken, startServer, until, type RunningServer } from './helpers/coffer-server.js';
import { MiB, mkExt } from './helpers/fs-images.js';
import { makeState } from './helpers/find-states.js';

const ROLES = ['admin', 'operator', 'restore-operator', 'viewer'] as const;
const LONG = 'a-long-name-that-needs-a-pax-header-'.padEnd(150, 'y') + '-Ünïcödé.txt';

/** Find, diff and directory download (tar) through the server, over two real ext4 backups (mke2fs -d). */
describe('coffer server: find, diff and directory archives', () => {
  const tmp = tempDir('coffer-server-find-');
  const dir = tmp.path;
  const dataDir = join(dir, 'data');
  const repo = join(dir, 'repo');
  const disk = join(dir, 'disk.raw');
  const src = join(dir, 'src');
  let server: RunningServer;
  const tokens: Record<string, string> = {};
  let p1 = '';
  let p2 = '';

  before(async () => {
    assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']).code, 0);
    makeState(src, 1);
    mkExt(disk, 'ext4', src, 16 * MiB);
    p1 = JSON.parse(coffer(['backup', '--repo', repo, '--vm', 'guest', disk, '--json']).stdout).id;
    makeState(src, 2);
    writeFileSync(join(src, 'data/sub', LONG), 'long name\n');
    symlinkSync('../keep.txt', join(src, 'data/sub/link'));
    writeFileSync(join(src, 'data/sub/big.bin'), Buffer.alloc(700_001, 7));
    rmSync(disk);
    mkExt(disk, 'ext4', src, 16 * MiB);
    p2 = JSON.parse(coffer(['backup', '--repo', repo, '--vm', 'guest', disk, '--json']).stdout).id;
    writeFileSync(join(dir, 'repo.pw'), TEST_PASSWORD + '\n');
    server = await startServer({
      dir,
      dataDir,
      config: { repositories: [{ name: 'main', location: repo, passwordFile: join(dir, 'repo.pw') }] },
    });
    for (const role of ROLES) tokens[role] = makeToken(dataDir, role);
    await until(
      'the catalog has both restore points',
      async () =>
        (await api(server.url, 'GET', '/api/v1/restore-points', { token: tokens.viewer })).body?.items?.length === 2,
    );
  });

  after(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  it('find: a glob on a disk of a point, bounded and reported (viewer may search)', async () => {
    const r = await api(
      server.url,
      'GET',
      `/api/v1/restore-points/${p2}/disks/0/find?pattern=${encodeURIComponent('/data/*.txt')}`,
      { token: tokens.viewer },
    );
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.items.map((m: any) => [m.path, m.size]).sort(), [
      ['/data/grow.txt', 20],
      ['/data/keep.txt', 10],
      ['/data/new.txt', 10],
      ['/data/same.txt', 4],
      ['/data/sneaky.txt', 4],
    ]);
    assert.equal(r.body.partial, false);
    const old = await api(
      server.url,
      'GET',
      `/api/v1/restore-points/${p1}/disks/0/find?pattern=${encodeURIComponent('/data/remove.txt')}`,
      { token: tokens.viewer },
    );
    assert.deepEqual(
      old.body.items.map((m: any) => [m.pointId, m.path]),
      [[p1, '/data/remove.txt']],
    );
    const b = await api(
      server.url,
      'GET',
      `/api/v1/restore-points/${p2}/disks/0/find?pattern=${encodeURIComponent('/**/none')}&maxEntries=20`,
      { token: tokens.viewer },
    );
    assert.equal(b.body.partial, true);
    assert.equal(b.body.entriesWalked, 20);
    assert.ok(
      b.body.notes.some((n: string) => n.startsWith(`search stopped at 20 entries in point ${p2}`)),
      JSON.stringify(b.body.notes),
    );
    const bad = await api(
      server.url,
      'GET',
      `/api/v1/restore-points/${p2}/disks/0/find?pattern=${encodeURIComponent('/a/../b')}`,
      { token: tokens.viewer },
    );
    assert.equal(bad.status, 400);
  });

  it('diff: exactly the changes between the two points', async () => {
    const r = await api(
      server.url,
      'GET',
      `/api/v1/restore-points/${p1}/disks/0/diff?other=${p2}&path=/data&content=true`,
      { token: tokens.viewer },
    );
    assert.equal(r.status, 200, r.text);
    const got = r.body.volumes.flatMap((v: any) =>
      v.changes.map((c: any) => [c.change, c.path, (c.fields ?? []).join(',')]),
    );
    assert.deepEqual(got, [
      ['changed', '/data/grow.txt', 'size'],
      ['added', '/data/new.txt', ''],
      ['removed', '/data/remove.txt', ''],
      ['changed', '/data/same.txt', 'mtime'],
      ['changed', '/data/sneaky.txt', 'content'],
      ['added', `/data/sub/${LONG}`, ''],
      ['added', '/data/sub/big.bin', ''],
      ['added', '/data/sub/link', ''],
    ]);
  });

  it('archive: a directory as tar, extracted by the system tar equals the source; viewer refused; audited', async () => {
    const got: Record<string, number> = {};
    for (const role of ROLES) {
      const res = await fetch(`${server.url}/api/v1/restore-points/${p2}/disks/0/files/archive?path=/data`, {
        headers: { authorization: `Bearer ${tokens[role]}` },
      });
      const body = Buffer.from(await res.arrayBuffer());
      got[role] = res.status;
      if (role !== 'restore-operator') continue;
      assert.equal(res.headers.get('content-type'), 'application/x-tar');
      const out = join(dir, 'untar');
      mkdirSync(out, { recursive: true });
      writeFileSync(join(dir, 'data.tar'), body);
      const t = spawnSync('tar', ['-xf', join(dir, 'data.tar'), '-C', out], { encoding: 'utf8' });
      assert.equal(t.status, 0, t.stderr);
      const diff = spawnSync('diff', ['-r', '--no-dereference', join(src, 'data'), join(out, 'data')], {
        encoding: 'utf8',
      });
      assert.equal(diff.status, 0, diff.stdout + diff.stderr);
      assert.equal(readlinkSync(join(out, 'data/sub/link')), '../keep.txt');
      assert.equal(readFileSync(join(out, 'data/sub', LONG), 'utf8'), 'long name\n');
      assert.equal(lstatSync(join(out, 'data/same.txt')).mtimeMs, Date.UTC(2025, 5, 6, 7, 8, 9));
    }
    assert.deepEqual(got, { admin: 200, operator: 200, 'restore-operator': 200, viewer: 403 });
    const a = await until('the archive download in the audit log', async () => {
      const r = await api(
        server.url,
        'GET',
        `/api/v1/audit?limit=50&action=${encodeURIComponent('GET /api/v1/restore-points/:id/disks/:disk/files/archive')}`,
        { token: tokens.admin },
      );
      return r.body.items.length >= 4 ? r.body.items : undefined;
    });
    const mine = a.find((e: any) => e.actor.startsWith('token:restore-operator'));
    assert.ok(mine, JSON.stringify(a));
    assert.deepEqual(
      [mine.details.path, mine.details.complete, mine.details.files, mine.details.symlinks, mine.details.pointId],
      ['/data', true, 8, 1, p2],
    );
    assert.ok(a.some((e: any) => e.status === 403 && e.actor.startsWith('token:viewer')));
  });
});
