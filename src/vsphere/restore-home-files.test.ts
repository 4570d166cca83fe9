// vmConfig.homeFiles (FORMAT.md §6.1.1) read back from a manifest is untrusted: everything checked, CORRUPT otherwise.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { HOME_FILE_MAX_BYTES, homeFile, parseHomeFiles, vmxHasVtpm } from './restore-home-files.js';

const fail = (why: string): never => {
  throw new Error(`CORRUPT: ${why}`);
};
const entry = (kind: string, name: string, bytes: Buffer) => ({
  kind,
  name,
  sizeBytes: bytes.length,
  sha256: createHash('sha256').update(bytes).digest('hex'),
  data: bytes.toString('base64'),
});

test('a valid section round-trips; vTPM is read from the .vmx; an unknown version is ignored', () => {
  const nv = Buffer.from('MRVN nvram bytes');
  const h = parseHomeFiles(
    {
      version: 1,
      files: [entry('vmx', 'a.vmx', Buffer.from('vtpm.present = "TRUE"\n')), entry('nvram', 'a.nvram', nv)],
    },
    fail,
  );
  assert.ok(homeFile(h, 'nvram')!.equals(nv));
  assert.equal(vmxHasVtpm(h), true);
  assert.equal(
    vmxHasVtpm(parseHomeFiles({ version: 1, files: [entry('vmx', 'a.vmx', Buffer.from('x = "1"'))] }, fail)),
    false,
  );
  assert.equal(parseHomeFiles({ version: 2, files: 'anything' }, fail), undefined);
});

test('hostile sections are CORRUPT, never a crash', () => {
  const good = entry('nvram', 'a.nvram', Buffer.from('abc'));
  const bad: unknown[] = [
    null,
    [],
    'x',
    { version: 1 },
    { version: 1, files: [null] },
    { version: 1, files: Array(5).fill(good) },
    { version: 1, files: [{ ...good, kind: 'vmdk' }] },
    { version: 1, files: [{ ...good, name: '../x.nvram' }] },
    { version: 1, files: [{ ...good, name: '' }] },
    { version: 1, files: [{ ...good, sizeBytes: 4 }] },
    { version: 1, files: [{ ...good, sizeBytes: HOME_FILE_MAX_BYTES + 1 }] },
    { version: 1, files: [{ ...good, sha256: 'f'.repeat(64) }] },
    { version: 1, files: [{ ...good, sha256: 'nothex' }] },
    { version: 1, files: [{ ...good, data: 12 }] },
  ];
  for (const b of bad) assert.throws(() => parseHomeFiles(b, fail), /CORRUPT/, JSON.stringify(b)?.slice(0, 80));
});
