import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { coffer, json, tempDir } from './helpers/cli.js';
import { makeDisk } from './helpers/disks.js';

/**
 * Block devices as source and restore target, with a real loop device (root only; skipped with the reason otherwise).
 * A restore to a device writes zero chunks explicitly (a device may hold old data) and is always synced.
 */
test('backup from and restore to a block device (loop device)', async (t) => {
  const tmp = tempDir();
  const devices: string[] = [];
  const attach = (file: string) => {
    const r = spawnSync('losetup', ['-f', '--show', file], { encoding: 'utf8' });
    if (r.status !== 0) return undefined;
    devices.push(r.stdout.trim());
    return r.stdout.trim();
  };
  try {
    const src = join(tmp.path, 'src.img');
    makeDisk(src, 6 * 1024 * 1024 + 512 * 3);
    const srcDev = attach(src);
    if (!srcDev) {
      t.skip('losetup failed (needs root and loop devices)');
      return;
    }
    const repo = join(tmp.path, 'repo');
    assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '64K']).code, 0);
    const b = coffer(['backup', '--repo', repo, '--vm', 'dev', srcDev, '--json']);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(json(b).disks[0].sizeBytes, 6 * 1024 * 1024 + 512 * 3);

    // target device pre-filled with garbage: zero chunks must be written, not skipped
    const dst = join(tmp.path, 'dst.img');
    writeFileSync(dst, Buffer.alloc(6 * 1024 * 1024 + 512 * 3, 0xee));
    const dstDev = attach(dst)!;
    const r = coffer(['restore', '--repo', repo, json(b).id, '--disk', '0', '--target', dstDev, '--json']);
    assert.equal(r.code, 0, r.stderr);
    for (const d of devices.splice(0)) spawnSync('losetup', ['-d', d]);
    assert.ok(readFileSync(dst).equals(readFileSync(src)), 'device content equals the source, zeros included');

    // a device smaller than the disk: a clear error, not a partial success
    const small = join(tmp.path, 'small.img');
    writeFileSync(small, Buffer.alloc(1024 * 1024));
    const smallDev = attach(small)!;
    const s = coffer(['restore', '--repo', repo, json(b).id, '--disk', '0', '--target', smallDev, '--json']);
    assert.notEqual(s.code, 0);
    assert.match(json(s).error.code, /TARGET_UNWRITABLE|STORAGE_FULL/);
  } finally {
    for (const d of devices) spawnSync('losetup', ['-d', d]);
    tmp.cleanup();
  }
});
