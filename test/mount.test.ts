import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, cofferAsync, json, tempDir } from './helpers/cli.js';
import { makeDisk } from './helpers/disks.js';
import { freePort } from './helpers/servers.js';

const MiB = 1024 * 1024;

function sh(cmd: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `coffer mount`, waits for its ready line (JSON), returns it and a stop function. */
async function mount(args: string[]) {
  const run = cofferAsync(['mount', ...args, '--json']);
  const ready = await new Promise<any>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`mount not ready: ${buf}`)), 15_000);
    run.child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line));
      }
    });
    run.done.then((r) => {
      clearTimeout(timer);
      reject(new Error(`mount exited ${r.code}: ${r.stdout} ${r.stderr}`));
    });
  });
  return {
    ready,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      run.child.kill(signal);
      return run.done;
    },
  };
}

/** Instant recovery: a restore point served over NBD, tested with real clients (nbdinfo, nbdcopy, qemu-img, qemu-io). */
describe('coffer mount (instant recovery over NBD)', () => {
  const tmp = tempDir('coffer-mount-');
  const repo = join(tmp.path, 'repo');
  const disk = join(tmp.path, 'disk.raw');
  let id = '';
  before(() => {
    makeDisk(disk, 24 * MiB + 4096 * 3);
    assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '64K']).code, 0);
    const b = coffer(['backup', '--repo', repo, '--vm', 'vm1', disk, '--json']);
    assert.equal(b.code, 0, b.stderr);
    id = json(b).id;
  });
  after(() => tmp.cleanup());

  test('read-only: nbdinfo, allocation map, qemu-img compare, nbdcopy over 4 connections', async () => {
    const port = await freePort();
    const m = await mount(['--repo', repo, id, '--disk', '0', '--nbd', `127.0.0.1:${port}`]);
    try {
      assert.equal(m.ready.uri, `nbd://127.0.0.1:${port}/`);
      const info = sh('nbdinfo', ['--json', m.ready.uri]);
      assert.equal(info.code, 0, info.stderr);
      const exp = JSON.parse(info.stdout).exports[0];
      assert.equal(exp['export-size'], 24 * MiB + 4096 * 3);
      assert.equal(exp.is_read_only, true);
      assert.equal(exp.can_multi_conn, true);
      const map = sh('nbdinfo', ['--map', m.ready.uri]);
      assert.match(map.stdout, /hole,zero/, 'zero chunks are reported as holes');
      const cmp = sh('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', m.ready.uri, disk]);
      assert.equal(cmp.code, 0, cmp.stdout + cmp.stderr);
      const out = join(tmp.path, 'copy.raw');
      const copy = sh('nbdcopy', ['--connections=4', m.ready.uri, out]);
      assert.equal(copy.code, 0, copy.stderr);
      assert.ok(readFileSync(out).equals(readFileSync(disk)));
      const w = sh('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 0 4k', m.ready.uri]);
      assert.notEqual(
        w.code === 0 && !/failed|error/i.test(w.stdout + w.stderr),
        true,
        'a read-only export refuses writes',
      );
    } finally {
      const r = await m.stop();
      assert.equal(r.code, 0, `mount exits 0 on SIGTERM: ${r.stderr}`);
    }
  });

  test('writable: writes land in the overlay, reads see them, the repository is untouched', async () => {
    const port = await freePort();
    const overlay = join(tmp.path, 'overlay.raw');
    const m = await mount([
      '--repo',
      repo,
      id,
      '--disk',
      '0',
      '--nbd',
      `127.0.0.1:${port}`,
      '--writable',
      '--overlay',
      overlay,
    ]);
    try {
      assert.equal(m.ready.writable, true);
      const io = (c: string) => sh('qemu-io', ['-f', 'raw', '-c', c, m.ready.uri]);
      assert.equal(io('write -P 0xab 1M 64k').code, 0);
      assert.equal(io('write -P 0xcd 3000 100').code, 0, 'unaligned write');
      const r1 = io('read -P 0xab 1M 64k');
      assert.ok(r1.code === 0 && !/Pattern verification failed/.test(r1.stdout), r1.stdout);
      const r2 = io('read -P 0xcd 3000 100');
      assert.ok(r2.code === 0 && !/Pattern verification failed/.test(r2.stdout), r2.stdout);
      // bytes around the unaligned write keep the backed-up content
      const out = join(tmp.path, 'written.raw');
      assert.equal(sh('nbdcopy', [m.ready.uri, out]).code, 0);
      const got = readFileSync(out);
      const orig = readFileSync(disk);
      assert.ok(got.subarray(0, 3000).equals(orig.subarray(0, 3000)));
      assert.ok(got.subarray(3100, MiB).equals(orig.subarray(3100, MiB)));
      assert.ok(got.subarray(MiB + 65536).equals(orig.subarray(MiB + 65536)));
    } finally {
      assert.equal((await m.stop('SIGINT')).code, 0);
    }
    assert.ok(existsSync(overlay), 'an overlay given with --overlay is kept');
    const v = coffer(['verify', '--repo', repo, '--read-data']);
    assert.equal(v.code, 0, v.stdout);
    const restored = join(tmp.path, 'restored.raw');
    assert.equal(coffer(['restore', '--repo', repo, id, '--disk', '0', '--target', restored]).code, 0);
    assert.ok(readFileSync(restored).equals(readFileSync(disk)), 'the restore point is unchanged');
  });

  test('bad requests: unknown point, unknown disk, port in use', async () => {
    const port = await freePort();
    const r1 = coffer(['mount', '--repo', repo, 'ffffffff', '--disk', '0', '--nbd', `127.0.0.1:${port}`, '--json']);
    assert.equal(r1.code, 9);
    const r2 = coffer(['mount', '--repo', repo, id, '--disk', '3', '--nbd', `127.0.0.1:${port}`, '--json']);
    assert.equal(r2.code, 9);
    const m = await mount(['--repo', repo, id, '--disk', '0', '--nbd', `127.0.0.1:${port}`]);
    try {
      const r3 = coffer(['mount', '--repo', repo, id, '--disk', '0', '--nbd', `127.0.0.1:${port}`, '--json']);
      assert.equal(r3.code, 2);
      assert.match(json(r3).error.message, /address in use/);
    } finally {
      await m.stop();
    }
  });
});
