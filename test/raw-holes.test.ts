import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { coffer, json, tempDir } from './helpers/cli.js';
import { makeDisk } from './helpers/disks.js';
import { dataBytes } from './helpers/more-cli.js';

/** Raw images: holes are found with qemu-img map and never read; without qemu-img everything is read, same result. */
test('raw image holes: skipped with qemu-img map, read (same restore point content) without it', () => {
  const tmp = tempDir();
  try {
    const disk = join(tmp.path, 'disk.raw');
    makeDisk(disk, 8 * 1024 * 1024 + 1234, 'holes');
    const repo = join(tmp.path, 'repo');
    assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '64K']).code, 0);
    const a = coffer(['backup', '--repo', repo, '--vm', 'a', disk, '--json']);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(json(a).bytesRead, dataBytes(disk));
    assert.ok(json(a).bytesRead < 8 * 1024 * 1024);
    // no qemu-img on PATH: the whole file is read; the restore points are identical
    const b = coffer(['backup', '--repo', repo, '--vm', 'b', disk, '--json'], { PATH: '/nonexistent' });
    assert.equal(b.code, 0, b.stderr);
    assert.equal(json(b).bytesRead, 8 * 1024 * 1024 + 1234);
    assert.equal(json(b).chunksNew, 0, 'same chunks');
    for (const id of [json(a).id, json(b).id]) {
      const out = join(tmp.path, `${id}.raw`);
      assert.equal(coffer(['restore', '--repo', repo, id, '--disk', '0', '--target', out]).code, 0);
      assert.ok(readFileSync(out).equals(readFileSync(disk)));
    }
  } finally {
    tmp.cleanup();
  }
});
