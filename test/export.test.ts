import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { coffer, json, tempDir } from './helpers/cli.js';
import { makeDisk } from './helpers/disks.js';

/** restore --format qcow2|vmdk|vhdx writes real images (checked with qemu-img; the VMDK also by Coffer's own reader). */
test('restore --format qcow2, vmdk (streamOptimized), vhdx', () => {
  const tmp = tempDir();
  try {
    const disk = join(tmp.path, 'disk.raw');
    makeDisk(disk, 6 * 1024 * 1024 + 4096, 'export');
    const repo = join(tmp.path, 'repo');
    assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '64K']).code, 0);
    const b = coffer(['backup', '--repo', repo, '--vm', 'vm1', disk, '--json']);
    assert.equal(b.code, 0, b.stderr);
    const id = json(b).id;
    for (const [format, qemuName] of [
      ['qcow2', 'qcow2'],
      ['vmdk', 'vmdk'],
      ['vhdx', 'vhdx'],
    ] as const) {
      const out = join(tmp.path, `out.${format}`);
      const r = coffer(['restore', '--repo', repo, id, '--disk', '0', '--target', out, '--format', format, '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(json(r).format, format);
      const info = spawnSync('qemu-img', ['info', '--output=json', out], { encoding: 'utf8' });
      assert.equal(JSON.parse(info.stdout).format, qemuName);
      const cmp = spawnSync('qemu-img', ['compare', '-F', 'raw', out, disk], { encoding: 'utf8' });
      assert.equal(cmp.status, 0, `${format}: ${cmp.stdout}${cmp.stderr}`);
      // an existing target is refused without --force
      const again = coffer([
        'restore',
        '--repo',
        repo,
        id,
        '--disk',
        '0',
        '--target',
        out,
        '--format',
        format,
        '--json',
      ]);
      assert.equal(again.code, 11);
    }
    const vmdkInfo = spawnSync('qemu-img', ['info', '--output=json', join(tmp.path, 'out.vmdk')], { encoding: 'utf8' });
    assert.match(vmdkInfo.stdout, /streamOptimized/);
    // the exported VMDK, read back by Coffer's native reader, is the same disk: nothing new to store
    const back = coffer(['backup', '--repo', repo, '--vm', 'vm2', join(tmp.path, 'out.vmdk'), '--json']);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(json(back).chunksNew, 0);
    assert.equal(
      coffer(['restore', '--repo', repo, id, '--disk', '0', '--target', join(tmp.path, 'x.img'), '--format', 'vdi'])
        .code,
      2,
    );
    assert.deepEqual(
      readdirSync(tmp.path).filter((n) => n.includes('coffer-partial')),
      [],
      'no temporary files left',
    );
    assert.ok(!existsSync(join(tmp.path, 'x.img')));
  } finally {
    tmp.cleanup();
  }
});
