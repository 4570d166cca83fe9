// Issue 20, item 3: the CLI an operator meets on day one. The built CLI, real repositories and disk images.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { COFFER_BIN, coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { makeDisk } from './helpers/disks.js';
import { expectError, expectOk } from './helpers/more-cli.js';
import { startServer } from './helpers/coffer-server.js';

describe('coffer CLI for operators (issue 20)', () => {
  const tmp = tempDir('coffer-cli-ops-');
  const repo = join(tmp.path, 'repo');
  const disk = join(tmp.path, 'one.raw');
  const disk2 = join(tmp.path, 'two.raw');
  let single: { id: string };
  let double: { id: string };

  before(() => {
    makeDisk(disk, 1024 * 1024, 'ops-one');
    makeDisk(disk2, 512 * 1024, 'ops-two');
    const init = coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024']);
    assert.equal(init.code, 0, init.stderr);
    // the one warning that matters at init: the password is the only key
    assert.match(init.stderr, /warning: keep the repository password safe.*a lost password means every restore point/s);
    single = expectOk(coffer(['backup', '--repo', repo, '--vm', 'web01', disk, '--tag', 'nightly', '--json']));
    double = expectOk(coffer(['backup', '--repo', repo, '--vm', 'db01', disk, disk2, '--json']));
  });

  after(() => tmp.cleanup());

  it('COFFER_REPO stands for --repo; without either the error names both', () => {
    const list = expectOk(coffer(['list', '--json'], { COFFER_REPO: repo }));
    assert.equal(list.length, 2);
    const e = expectError(coffer(['list', '--json'], { COFFER_REPO: undefined }), 2, 'USAGE');
    assert.match(e.message, /--repo.*COFFER_REPO/);
    // --repo wins over the variable
    expectError(
      coffer(['list', '--repo', join(tmp.path, 'nowhere'), '--json'], { COFFER_REPO: repo }),
      3,
      'REPO_NOT_FOUND',
    );
  });

  it('list: one VM shape with show ({name, id}), stored size, tags, verification state; times in UTC, said so', () => {
    expectOk(coffer(['verify', '--repo', repo, '--json']));
    const list = expectOk(coffer(['list', '--repo', repo, '--json']));
    const p = list.find((x: { id: string }) => x.id === single.id);
    const shown = expectOk(coffer(['show', single.id, '--repo', repo, '--json']));
    assert.deepEqual(p.vm, shown.vm);
    assert.deepEqual(p.vm, { name: 'web01', id: null });
    assert.deepEqual(p.tags, ['nightly']);
    assert.equal(p.bytesStored, shown.stats.bytesStored);
    assert.ok(p.bytesStored > 0);
    assert.equal(p.verification.ok, true);
    assert.match(p.time, /Z$/);
    const text = coffer(['list', '--repo', repo]);
    assert.equal(text.code, 0, text.stderr);
    const [head, ...rows] = text.stdout.trim().split('\n');
    assert.match(head!, /TIME \(UTC\).*STORED.*VERIFIED.*TAGS/);
    const row = rows.find((r) => r.startsWith(single.id.slice(0, 8)))!;
    assert.match(row, /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ .*web01 .*(KiB|MiB) +ok +nightly/);
  });

  it('stats: stored size, dedup ratio, per VM', () => {
    const s = expectOk(coffer(['stats', '--repo', repo, '--json']));
    assert.equal(s.points, 2);
    assert.ok(s.storedBytes >= s.chunkBytes && s.chunkBytes > 0, JSON.stringify(s));
    // db01 holds web01's disk again: deduplicated, so the logical data is more than the chunks
    assert.ok(s.dedupRatio > 1, JSON.stringify(s));
    assert.equal(s.logicalBytes / s.chunkBytes, s.dedupRatio);
    assert.deepEqual(
      s.vms.map((v: { vm: { name: string }; points: number }) => [v.vm.name, v.points]),
      [
        ['db01', 1],
        ['web01', 1],
      ],
    );
    const db = s.vms.find((v: { vm: { name: string } }) => v.vm.name === 'db01');
    assert.ok(db.logicalBytes > s.vms.find((v: { vm: { name: string } }) => v.vm.name === 'web01').logicalBytes);
    const text = coffer(['stats', '--repo', repo]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /dedup ratio \d+\.\d\dx/);
    assert.match(text.stdout, /^web01 +1 /m);
    expectError(coffer(['stats', '--repo', repo, '--vm', 'nope', '--json']), 9, 'NOT_FOUND');
  });

  it('restore of a one-disk restore point needs no --disk; with two disks the error lists them', () => {
    const out = join(tmp.path, 'restored.raw');
    expectOk(coffer(['restore', single.id, '--repo', repo, '--target', out, '--json']));
    assert.ok(readFileSync(out).equals(readFileSync(disk)));
    const e = expectError(
      coffer(['restore', double.id, '--repo', repo, '--target', join(tmp.path, 'x.raw'), '--json']),
      2,
      'USAGE',
    );
    assert.match(e.message, /--disk <n>.*has 2 disks \(0, 1\)/);
  });

  it('init --repo FILE: a coded USAGE error, not IO EEXIST', () => {
    const file = join(tmp.path, 'a-file');
    writeFileSync(file, 'x');
    for (const at of [file, join(file, 'below')]) {
      const e = expectError(coffer(['init', '--repo', at, '--kdf-cost', '1024', '--json']), 2, 'USAGE');
      assert.match(e.message, /is a file, not a directory/);
      assert.doesNotMatch(e.message, /EEXIST|ENOTDIR/);
    }
  });

  it('files ls --partition N on a disk without that partition fails with NOT_FOUND', () => {
    const e = expectError(
      coffer(['files', 'ls', single.id, '/', '--repo', repo, '--disk', '0', '--partition', '2', '--json']),
      9,
      'NOT_FOUND',
    );
    assert.match(e.message, /has no partition 2/);
    expectError(
      coffer(['files', 'ls', single.id, '--repo', repo, '--disk', '0', '--partition', '2', '--json']),
      9,
      'NOT_FOUND',
    );
  });

  it('asks for the password on a terminal, without echo, when neither variable nor file gives one', {
    skip: existsSync('/usr/bin/script') ? false : 'script(1) (util-linux) is not installed',
  }, async () => {
    // script(1) gives the CLI a pseudo-terminal; the password is typed once the prompt is shown (typed earlier, the
    // terminal would echo it before the CLI turned echo off, as it would for a person typing ahead)
    const cmd = `${process.execPath} ${COFFER_BIN} list --repo ${repo} --json`;
    const child = spawn('script', ['-qec', cmd, '/dev/null'], {
      env: { ...process.env, COFFER_PASSWORD: '', COFFER_PASSWORD_FILE: '', COFFER_REPO: '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let typed = false;
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString('utf8');
      if (!typed && out.includes('repository password: ')) {
        typed = true;
        child.stdin.write(`${TEST_PASSWORD}\r`);
      }
    });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(code, 0, out);
    assert.ok(typed, out);
    assert.match(out, new RegExp(single.id));
    assert.ok(!out.includes(TEST_PASSWORD), `the password was echoed:\n${out}`);
    // no terminal (a pipe): no prompt, the USAGE error says how to give one
    const e = expectError(coffer(['list', '--repo', repo, '--json'], { COFFER_PASSWORD: undefined }), 2, 'USAGE');
    assert.match(e.message, /COFFER_PASSWORD.*--password-file/);
  });

  it('catalog backup and restore (SQLite online backup), and no Fastify deprecation warning at server start', async () => {
    const dir = join(tmp.path, 'srv');
    const dataDir = join(dir, 'data');
    mkdirSync(dir, { recursive: true });
    const server = await startServer({ dir, dataDir, config: { repositories: [] } });
    let backup: { file: string; sizeBytes: number; schemaVersion: number };
    const copy = join(tmp.path, 'catalog-backup.db');
    try {
      const u = coffer(['user', 'add', '--data', dataDir, '--name', 'ana', '--role', 'viewer'], {
        COFFER_USER_PASSWORD: 'viewer-password',
      });
      assert.equal(u.code, 0, u.stderr);
      // while the server runs
      backup = expectOk(coffer(['catalog', 'backup', '--data', dataDir, '--to', copy, '--json']));
      assert.equal(backup.file, copy);
      assert.ok(backup.sizeBytes > 0 && backup.schemaVersion > 0, JSON.stringify(backup));
      expectError(coffer(['catalog', 'backup', '--data', dataDir, '--to', copy, '--json']), 11, 'TARGET_EXISTS');
    } finally {
      await server.stop();
    }
    const log = readFileSync(server.logFile, 'utf8');
    assert.doesNotMatch(log, /FSTDEP|DeprecationWarning|deprecated/i, log);
    // a new machine: the backup restores into an empty data directory; the user is there
    const fresh = join(tmp.path, 'fresh-data');
    const r = expectOk(coffer(['catalog', 'restore', '--data', fresh, '--from', copy, '--json']));
    assert.equal(r.schemaVersion, backup.schemaVersion);
    expectError(coffer(['catalog', 'restore', '--data', fresh, '--from', copy, '--json']), 11, 'TARGET_EXISTS');
    expectOk(coffer(['catalog', 'restore', '--data', fresh, '--from', copy, '--force', '--json']));
    const s2 = await startServer({ dir, dataDir: fresh, config: { repositories: [] } });
    try {
      const login = await fetch(`${s2.url}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'ana', password: 'viewer-password' }),
      });
      assert.equal(login.status, 200, await login.text());
    } finally {
      await s2.stop();
    }
    // not a catalog: CORRUPT
    const junk = join(tmp.path, 'junk.db');
    writeFileSync(junk, 'not sqlite');
    expectError(coffer(['catalog', 'restore', '--data', join(tmp.path, 'd3'), '--from', junk, '--json']), 6, 'CORRUPT');
  });
});
