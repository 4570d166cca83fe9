import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CofferError } from '../shared/index.js';
import { openSource } from './index.js';
import { detectContainer } from './container-magic.js';

/**
 * Disk containers by magic (issue 21 item 5): every format qemu-img writes is either read (natively or through a
 * private qemu-nbd, with the virtual disk's size and bytes) or refused with SOURCE_UNSUPPORTED saying what it is;
 * --format raw takes the bytes as they are. Images made by qemu-img from one raw disk of known content.
 */

const T = { timeout: 60_000 };
const MiB = 1024 * 1024;

function sh(cmd: string, args: string[]): void {
  let r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  // qemu-img's LUKS PBKDF benchmark fails at once with "Unable to get accurate CPU usage" when its first round takes
  // under a millisecond of CPU (1 run in 5 here, more on a faster CPU): make the image again, up to 20 times; any
  // other failure fails the test
  for (let i = 0; r.status !== 0 && /accurate CPU usage/.test(r.stderr) && i < 19; i++) {
    r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  }
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
}

async function readAll(
  spec: string,
  opts: { format?: 'raw' } = {},
): Promise<{ size: number; data: Buffer; uri: string }> {
  const s = await openSource(spec, opts);
  try {
    const data = Buffer.alloc(s.sizeBytes);
    for (let o = 0; o < s.sizeBytes; o += MiB) await s.read(o, Math.min(MiB, s.sizeBytes - o), data.subarray(o));
    return { size: s.sizeBytes, data, uri: s.uri };
  } finally {
    await s.close();
  }
}

async function refused(p: Promise<unknown>, re: RegExp): Promise<CofferError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CofferError, String(e));
    assert.equal(e.code, 'SOURCE_UNSUPPORTED', e.message);
    assert.match(e.message, re);
    return e;
  }
  assert.fail('expected SOURCE_UNSUPPORTED');
}

describe('disk containers by magic', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'coffer-containers-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const raw = join(tmp, 'disk.raw');
  const content = Buffer.alloc(4 * MiB);
  for (let i = 0; i < content.length; i += 4096) content.write(`block ${i / 4096} of the disk`, i);
  writeFileSync(raw, content);

  for (const fmt of ['vdi', 'qed', 'parallels', 'qcow', 'qcow2', 'vhdx', 'vpc', 'vmdk']) {
    test(`${fmt}: read with the virtual disk's size and bytes, not the container's`, T, async () => {
      const img = join(tmp, `disk.${fmt}`);
      sh('qemu-img', ['convert', '-f', 'raw', '-O', fmt, raw, img]);
      const got = await readAll(img);
      assert.ok(got.size >= content.length, `${fmt}: size ${got.size}`); // vpc rounds up to its CHS geometry
      assert.ok(got.data.subarray(0, content.length).equals(content), `${fmt}: content differs`);
      assert.ok(got.data.subarray(content.length).every((b) => b === 0));
    });
  }

  test('LUKS (raw LUKS container): refused with what it is; --format raw stores its bytes as they are', T, async () => {
    const img = join(tmp, 'disk.luks');
    sh('qemu-img', [
      'create',
      '-q',
      '-f',
      'luks',
      '--object',
      'secret,id=s0,data=pw',
      '-o',
      'key-secret=s0,iter-time=10',
      img,
      '4M',
    ]);
    const e = await refused(openSource(img), /LUKS1 encrypted volume.*no key/);
    assert.equal(e.details.encrypted, true);
    const got = await readAll(img, { format: 'raw' });
    assert.equal(got.size, statSync(img).size);
    await refused(openSource(`file://${img}`), /LUKS/);
    assert.equal((await readAll(`file://${img}?format=raw`)).size, statSync(img).size);
  });

  test('a LUKS-encrypted qcow2 is refused as such (not "read ECONNRESET" from the private NBD socket)', T, async () => {
    const img = join(tmp, 'enc.qcow2');
    sh('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '--object',
      'secret,id=s0,data=pw',
      '-o',
      'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10',
      img,
      '4M',
    ]);
    await refused(openSource(img), /qcow2 image with LUKS encryption/);
  });

  test('compressed files are not disk images', T, async () => {
    const gz = join(tmp, 'disk.raw.gz');
    const r = spawnSync('gzip', ['-c', raw], { maxBuffer: 64 * MiB });
    writeFileSync(gz, r.stdout);
    await refused(openSource(gz), /gzip-compressed/);
  });

  test('a raw disk stays raw', T, async () => {
    const got = await readAll(raw);
    assert.equal(got.size, content.length);
    assert.ok(got.data.equals(content));
  });

  test('detectContainer is total: short and empty heads', () => {
    for (let n = 0; n < 80; n++) assert.ok(detectContainer(Buffer.alloc(n, 0xff), undefined));
    assert.deepEqual(detectContainer(Buffer.from('QFI\xfb', 'latin1'), undefined), { format: 'qcow2' });
  });
});
