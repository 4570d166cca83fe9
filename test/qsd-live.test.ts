import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { coffer, json, tempDir } from './helpers/cli.js';
import { freePort, run } from './helpers/servers.js';

const MiB = 1024 * 1024;

/**
 * A live-VM stand-in: qemu-storage-daemon holds a qcow2 with an active dirty bitmap and exports it over NBD
 * (writable, bitmap included), as a running QEMU guest would. Guest writes go through the export (qemu-io over NBD)
 * and mark the bitmap; Coffer reads the bitmap through qemu:dirty-bitmap:b0.
 */
test('qemu-storage-daemon: full, guest writes through the export, incremental from the live bitmap', async (t) => {
  const tmp = tempDir('coffer-qsd-');
  const pidFile = join(tmp.path, 'qsd.pid');
  after(() => {
    if (existsSync(pidFile)) {
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGTERM');
      } catch {
        /* gone */
      }
    }
    tmp.cleanup();
  });
  if (spawnSync('qemu-storage-daemon', ['--version']).status !== 0) {
    t.skip('qemu-storage-daemon is not installed (scripts/setup.sh installs qemu-system-common)');
    return;
  }
  const img = join(tmp.path, 'live.qcow2');
  run('qemu-img', ['create', '-q', '-f', 'qcow2', img, '32M']);
  run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 4M', '-c', 'write -P 0x6b 16M 2M', img]);
  run('qemu-img', ['bitmap', '--add', img, 'b0']);
  const port = await freePort();
  const qsd = spawnSync(
    'qemu-storage-daemon',
    [
      '--blockdev',
      `driver=file,node-name=file0,filename=${img}`,
      '--blockdev',
      'driver=qcow2,node-name=disk0,file=file0',
      '--nbd-server',
      `addr.type=inet,addr.host=127.0.0.1,addr.port=${port}`,
      '--export',
      'type=nbd,id=exp0,node-name=disk0,name=disk0,writable=on,bitmaps.0=b0',
      '--pidfile',
      pidFile,
      '--daemonize',
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(qsd.status, 0, qsd.stderr);
  const uri = `nbd://127.0.0.1:${port}/disk0`;
  const repo = join(tmp.path, 'repo');
  assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '1M']).code, 0);

  const full = coffer(['backup', '--repo', repo, '--vm', 'live', `${uri}?bitmap=b0`, '--json']);
  assert.equal(full.code, 0, full.stderr);
  assert.equal(json(full).mode, 'full');
  assert.equal(json(full).bytesRead, 6 * MiB);

  // the guest writes while "running": through the export, so the daemon marks b0
  run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x7c 2M 8k', '-c', 'write -P 0x7d 30M 1M', uri]);
  const incr = coffer(['backup', '--repo', repo, '--vm', 'live', `${uri}?bitmap=b0`, '--json']);
  assert.equal(incr.code, 0, incr.stderr);
  const res = json(incr);
  assert.equal(res.mode, 'incremental');
  assert.equal(res.bytesRead, 2 * MiB, 'chunks 2 and 30 only');

  // the incremental restore point equals the live disk
  const live = join(tmp.path, 'live.raw');
  run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, live]);
  const out = join(tmp.path, 'restored.raw');
  assert.equal(coffer(['restore', '--repo', repo, res.id, '--disk', '0', '--target', out]).code, 0);
  assert.ok(readFileSync(out).equals(readFileSync(live)));
});
