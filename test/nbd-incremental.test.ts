import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, json, tempDir } from './helpers/cli.js';
import { freePort, run, startNbdkit, startQemuNbd, type Daemon } from './helpers/servers.js';

const MiB = 1024 * 1024;

/**
 * Forever-incremental backups over NBD against real servers: qemu-nbd exporting a qcow2 with a persistent dirty
 * bitmap (written by qemu-io, which marks the bitmap), and nbdkit for allocation maps and faults.
 */
describe('NBD sources and forever-incremental backups (qemu-nbd, nbdkit)', () => {
  const tmp = tempDir('coffer-nbd-');
  const repo = join(tmp.path, 'repo');
  const img = join(tmp.path, 'disk.qcow2');
  const daemons: Daemon[] = [];
  before(() => {
    assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '1M']).code, 0);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', img, '64M']);
    run('qemu-io', [
      '-f',
      'qcow2',
      '-c',
      'write -P 0x11 0 5M',
      '-c',
      'write -P 0x22 20M 3M',
      '-c',
      'write -P 0x33 63M 1M',
      img,
    ]);
  });
  after(async () => {
    for (const d of daemons) await d.stop();
    tmp.cleanup();
  });

  const exportRaw = (name: string) => {
    const raw = join(tmp.path, name);
    run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', img, raw]);
    return raw;
  };
  let restores = 0;
  const restoreAndCompare = (id: string, expectedRaw: string) => {
    const out = join(tmp.path, `restored-${restores++}.raw`);
    const r = coffer(['restore', '--repo', repo, id, '--disk', '0', '--target', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readFileSync(out).equals(readFileSync(expectedRaw)), 'restored image differs');
  };

  /** Runs fn with a qemu-nbd serving the image; always stops it. */
  const withQemuNbd = async <T>(bitmap: string | undefined, fn: (port: number) => Promise<T> | T): Promise<T> => {
    const port = await freePort();
    const d = startQemuNbd(tmp.path, img, { port, ...(bitmap ? { bitmap } : {}) });
    daemons.push(d);
    try {
      return await fn(port);
    } finally {
      await d.stop();
    }
  };

  let fullId = '';
  test('full backup over nbd:// skips unallocated ranges (base:allocation)', async () => {
    const r = await withQemuNbd(undefined, (port) =>
      coffer(['backup', '--repo', repo, '--vm', 'kvm1', `nbd://127.0.0.1:${port}/`, '--json']),
    );
    assert.equal(r.code, 0, r.stderr);
    const res = json(r);
    assert.equal(res.mode, 'full');
    assert.equal(res.bytesRead, 9 * MiB, 'only the 9 allocated MiB are read');
    assert.equal(res.disks[0].sizeBytes, 64 * MiB);
    fullId = res.id;
    restoreAndCompare(fullId, exportRaw('v0.raw'));
  });

  test('incremental with a QEMU dirty bitmap reads only changed chunks; every point restores in full', async () => {
    run('qemu-img', ['bitmap', '--add', img, 'b0']);
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x44 1M 64k', '-c', 'write -P 0x55 40M 1536k', img]);
    const [r, v] = await withQemuNbd('b0', (port) => [
      coffer(['backup', '--repo', repo, '--vm', 'kvm1', `nbd://127.0.0.1:${port}/?bitmap=b0`, '--json']),
      // --verify-cbt reads everything and finds no drift when the bitmap is right
      coffer([
        'backup',
        '--repo',
        repo,
        '--vm',
        'kvm1',
        `nbd://127.0.0.1:${port}/?bitmap=b0`,
        '--verify-cbt',
        '--json',
      ]),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const res = json(r);
    assert.equal(res.mode, 'incremental');
    assert.equal(res.parent, fullId);
    assert.equal(res.changeToken, 'qemu-dirty-bitmap:b0');
    const changed = 64 * 1024 + 1536 * 1024;
    assert.equal(res.disks[0].changedBytes, changed);
    assert.equal(res.bytesRead, 3 * MiB, 'chunks 1, 40 and 41 only');
    assert.ok(res.bytesRead <= 3 * changed, 'bytes read <= 3x bytes changed');
    assert.ok(res.chunksReused >= 6);
    const v1 = exportRaw('v1.raw');
    restoreAndCompare(res.id, v1);
    restoreAndCompare(fullId, join(tmp.path, 'v0.raw'));
    assert.equal(v.code, 0, v.stderr);
    assert.deepEqual(json(v).disks[0].cbtDrift, []);
    const verify = coffer(['verify', '--repo', repo, '--read-data']);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });

  test('--verify-cbt detects changes the bitmap missed', async () => {
    // a write while the bitmap is disabled: change tracking "loses" it, as buggy CBT does
    run('qemu-img', ['bitmap', '--disable', img, 'b0']);
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x66 30M 4k', img]);
    run('qemu-img', ['bitmap', '--enable', img, 'b0']);
    const [plain, checked] = await withQemuNbd('b0', (port) => [
      coffer(['backup', '--repo', repo, '--vm', 'kvm1', `nbd://127.0.0.1:${port}/?bitmap=b0`, '--json']),
      coffer([
        'backup',
        '--repo',
        repo,
        '--vm',
        'kvm1',
        `nbd://127.0.0.1:${port}/?bitmap=b0`,
        '--verify-cbt',
        '--json',
      ]),
    ]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(checked.code, 0, checked.stderr);
    const res = json(checked);
    assert.deepEqual(res.disks[0].cbtDrift, [{ offset: 30 * MiB, length: MiB }]);
    assert.match(checked.stderr, /change tracking missed 1 changed chunk/);
    restoreAndCompare(res.id, exportRaw('v2.raw')); // the verified point holds the real data
  });

  test('a VM whose previous point is missing falls back to a full read and says so', async () => {
    const r = await withQemuNbd('b0', (port) =>
      coffer(['backup', '--repo', repo, '--vm', 'fresh-vm', `nbd://127.0.0.1:${port}/?bitmap=b0`, '--json']),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(json(r).mode, 'full');
    assert.match(json(r).disks[0].fallbackReason, /no previous restore point/);
    assert.match(r.stderr, /change tracking not used/);
  });

  test('qcow2, VHDX and VHD image files are read through a private qemu-nbd', async () => {
    const raw = join(tmp.path, 'v-img.raw');
    run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', img, raw]);
    for (const [fmt, ext, extra] of [
      ['qcow2', 'qcow2', []],
      ['vhdx', 'vhdx', []],
      ['vpc', 'vhd', ['-o', 'force_size=on']],
    ] as const) {
      const file = join(tmp.path, `conv.${ext}`);
      run('qemu-img', ['convert', '-f', 'raw', '-O', fmt, ...extra, raw, file]);
      const r = coffer(['backup', '--repo', repo, '--vm', `img-${ext}`, `file://${file}`, '--json']);
      assert.equal(r.code, 0, `${ext}: ${r.stderr}`);
      const out = join(tmp.path, `out-${ext}.raw`);
      assert.equal(coffer(['restore', '--repo', repo, json(r).id, '--disk', '0', '--target', out]).code, 0);
      const got = readFileSync(out);
      assert.ok(got.subarray(0, statSync(raw).size).equals(readFileSync(raw)), `${ext} restores the same bytes`);
    }
  });

  test('a 2 GiB nbdkit sparse-random disk: only allocated data is read', async () => {
    const port = await freePort();
    const d = startNbdkit(tmp.path, port, 'sparse-random', ['size=2G', 'seed=7', 'percent=2', 'runlength=262144']);
    daemons.push(d);
    const r = coffer(['backup', '--repo', repo, '--vm', 'sparse', `nbd://127.0.0.1:${port}/`, '--json']);
    await d.stop();
    assert.equal(r.code, 0, r.stderr);
    const res = json(r);
    assert.ok(res.bytesRead < 2 * 1024 * MiB * 0.5, `read ${res.bytesRead}`);
    assert.ok(res.chunksNew > 0);
  });
});
