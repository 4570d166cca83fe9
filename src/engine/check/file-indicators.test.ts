import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { FileChange } from '../file-search.js';
import { entropyBitsPerByte, findRenames, HIGH_ENTROPY, isRansomNote, LOW_ENTROPY } from './file-indicators.js';

test('entropy: random bytes near 8 bits per byte, text well below the low mark, empty 0', () => {
  assert.ok(entropyBitsPerByte(randomBytes(65536)) > 7.99);
  assert.ok(entropyBitsPerByte(randomBytes(2048)) >= HIGH_ENTROPY, 'a small encrypted sample still counts');
  const text = Buffer.from('2026-12-05T08:00:00Z host kernel[42]: service started for user session ok\n'.repeat(500));
  assert.ok(entropyBitsPerByte(text) < LOW_ENTROPY);
  assert.equal(entropyBitsPerByte(new Uint8Array(0)), 0);
  assert.equal(entropyBitsPerByte(Buffer.alloc(4096, 7)), 0);
});

test('ransom note names: the usual families, not ordinary files', () => {
  for (const n of [
    'README_RESTORE_FILES.txt',
    'HOW_TO_DECRYPT.html',
    'How-To-Restore-Files.txt',
    '_readme.txt',
    'DECRYPT_INSTRUCTIONS.txt',
    'RECOVER-FILES.txt',
    '!!!READ_ME!!!.txt',
    'YOUR_FILES_ARE_ENCRYPTED.TXT',
    'restore_my_files.hta',
  ])
    assert.ok(isRansomNote(n), n);
  for (const n of ['README.md', 'readme.txt', 'restore.sh', 'decrypt.c', 'files.txt', 'conf1.conf', 'INSTALL'])
    assert.ok(!isRansomNote(n), n);
});

test('renames: X -> X.ext in the same directory, only for removed X', () => {
  const ch = (change: FileChange['change'], path: string, type: FileChange['type'] = 'file'): FileChange => ({
    change,
    path,
    type,
  });
  const r = findRenames([
    ch('removed', '/home/a.docx'),
    ch('added', '/home/a.docx.locked'),
    ch('removed', '/etc/b.conf'),
    ch('added', '/etc/b.conf.x-y_1'),
    ch('added', '/home/new.txt.locked'), // no removed /home/new.txt
    ch('added', '/var/c.log.1'), // /var/c.log not removed (log rotation keeps it): not a rename
    ch('removed', '/d'),
    ch('added', '/d.bak', 'dir'),
  ]);
  assert.deepEqual(r, [
    { from: '/home/a.docx', to: '/home/a.docx.locked', extension: 'locked' },
    { from: '/etc/b.conf', to: '/etc/b.conf.x-y_1', extension: 'x-y_1' },
  ]);
});
