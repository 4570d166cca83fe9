// `coffer backup` of disk containers (issue 21 item 5), through the built CLI: a VDI is read through qemu-nbd with its
// virtual size, a LUKS volume is refused with exit 40 SOURCE_UNSUPPORTED, and --format raw stores its bytes as they are.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { assertNoStack, expectError, expectOk } from './helpers/more-cli.js';

describe('backup of disk containers (CLI)', { timeout: 120_000 }, () => {
  const tmp = tempDir('coffer-containers-cli-');
  after(() => tmp.cleanup());
  const repo = join(tmp.path, 'repo');

  test('VDI read through qemu-nbd; LUKS refused (exit 40) unless --format raw', () => {
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    const raw = join(tmp.path, 'd.raw');
    writeFileSync(raw, Buffer.alloc(2 * 1024 * 1024, 3));
    const vdi = join(tmp.path, 'd.vdi');
    assert.equal(spawnSync('qemu-img', ['convert', '-f', 'raw', '-O', 'vdi', raw, vdi]).status, 0);
    const b = expectOk<{ id: string }>(coffer(['backup', '--repo', repo, '--vm', 'vbox', vdi, '--json']));
    const shown = expectOk<{ disks: { sizeBytes: number }[] }>(coffer(['show', '--repo', repo, b.id, '--json']));
    assert.equal(shown.disks[0]!.sizeBytes, 2 * 1024 * 1024, 'the virtual disk, not the VDI file');
    const luks = join(tmp.path, 'd.luks');
    const mkLuks = () =>
      spawnSync(
        'qemu-img',
        [
          'create',
          '-q',
          '-f',
          'luks',
          '--object',
          'secret,id=s0,data=pw',
          '-o',
          'key-secret=s0,iter-time=10',
          luks,
          '1M',
        ],
        { encoding: 'utf8' },
      );
    // qemu-img's LUKS PBKDF benchmark fails at once with "Unable to get accurate CPU usage" when its first round takes
    // under a millisecond of CPU (1 run in 5 here, more on a faster CPU): make the image again, up to 20 times; any
    // other failure fails the test
    let made = mkLuks();
    for (let i = 0; made.status !== 0 && /accurate CPU usage/.test(made.stderr) && i < 19; i++) made = mkLuks();
    assert.equal(made.status, 0, made.stderr);
    const e = expectError(
      coffer(['backup', '--repo', repo, '--vm', 'sealed', luks, '--json']),
      40,
      'SOURCE_UNSUPPORTED',
    );
    assert.match(e.message, /LUKS1 encrypted volume/);
    const t = coffer(['backup', '--repo', repo, '--vm', 'sealed', luks]);
    assert.equal(t.code, 40);
    assertNoStack(t);
    const ok = expectOk<{ id: string }>(
      coffer(['backup', '--repo', repo, '--vm', 'sealed', '--format', 'raw', luks, '--json']),
    );
    const s2 = expectOk<{ disks: { sizeBytes: number }[] }>(coffer(['show', '--repo', repo, ok.id, '--json']));
    assert.equal(s2.disks[0]!.sizeBytes, statSync(luks).size);
  });
});
