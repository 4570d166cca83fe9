import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CofferError } from '../shared/index.js';
import { BufferReader, SliceReader } from './index.js';

test('SliceReader maps offsets into its window and refuses reads outside it', async () => {
  const disk = new BufferReader(Buffer.from(Array.from({ length: 4096 }, (_, i) => i & 0xff)));
  const part = new SliceReader(disk, 1024, 2048);
  assert.deepEqual([...(await part.read(0, 4))], [0, 1, 2, 3]);
  assert.equal((await part.read(2044, 4)).length, 4);
  for (const [off, len] of [
    [2045, 4],
    [-1, 1],
    [0, 2049],
    [1.5, 1],
    [Number.MAX_SAFE_INTEGER, 1],
  ] as const) {
    await assert.rejects(part.read(off, len), (e) => e instanceof CofferError && e.code === 'FS_CORRUPT');
  }
  assert.throws(
    () => new SliceReader(disk, 3000, 2000),
    (e) => e instanceof CofferError && e.code === 'FS_CORRUPT',
  );
});
