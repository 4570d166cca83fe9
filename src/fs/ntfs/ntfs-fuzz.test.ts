import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CofferError, type Op } from '../../shared/index.js';
import { BufferReader, openFilesystem, type BlockReader, type FsNode, type GuestFs } from '../index.js';
import { findAll, MiB } from '../testing/images.js';
import { makeNtfsTree, mkNtfs } from '../testing/ntfs-images.js';

const T = { timeout: 300_000 };

/** Counts bytes read: a mutated volume may make the reader do more work, but never without bound. */
class CountingReader implements BlockReader {
  bytes = 0;
  constructor(
    private readonly inner: BlockReader,
    private readonly budget: number,
  ) {}
  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }
  async read(offset: number, length: number, op?: Op): Promise<Buffer> {
    this.bytes += length;
    assert.ok(this.bytes <= this.budget, `more than ${this.budget} bytes read: unbounded work`);
    return this.inner.read(offset, length, op);
  }
}

/** Walks everything: lists, reads every file and stream (counting, not keeping), reads links. Returns entries seen. */
async function walkAll(fs: GuestFs): Promise<number> {
  let seen = 0;
  const visit = async (dir: FsNode, depth: number): Promise<void> => {
    if (depth > 64) return;
    for (const n of await fs.list(dir).catch(swallow)) {
      seen++;
      try {
        if (n.type === 'file') {
          for await (const p of fs.read(n)) assert.ok(p.data.length <= 2 * MiB);
          for (const s of n.streams ?? []) for await (const _ of fs.readStream!(n, s.name));
        } else if (n.type === 'symlink') await fs.readlink(n);
        else if (n.type === 'dir') await visit(n, depth + 1);
      } catch (e) {
        swallow(e);
      }
    }
  };
  await visit(await fs.root(), 0);
  return seen;
}

function swallow(e: unknown): never[] {
  assert.ok(e instanceof CofferError, `not a coded error: ${String((e as Error)?.stack ?? e)}`);
  assert.ok(['FS_CORRUPT', 'FS_UNSUPPORTED', 'NOT_FOUND', 'USAGE'].includes(e.code), `${e.code}: ${e.message}`);
  return [];
}

/**
 * Seeded mutation runs over a real NTFS image (mkntfs + wimapply + ntfscp): bytes flipped in the boot sector, MFT
 * records, index blocks and runlists; truncation. Every run must end (bounded reads), with content or a coded error.
 */
describe('NTFS reader under seeded mutation (bounded fuzz)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'coffer-ntfs-fuzz-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const src = join(tmp, 'src');
  mkdirSync(src);
  makeNtfsTree(src);
  const img = join(tmp, 'fuzz.img');
  mkNtfs(img, src, 24 * MiB, tmp);
  const pristine = readFileSync(img);
  const mftAt = Number(pristine.readBigUInt64LE(48)) * 4096;
  const indx = findAll(img, 'INDX');
  let seed = 0x5eed;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const pick = (n: number) => Math.floor(rnd() * n);

  test('the pristine image walks cleanly', T, async () => {
    const fs = await openFilesystem(new BufferReader(pristine));
    assert.ok((await walkAll(fs)) > 600);
  });

  const regions: [string, () => [number, number]][] = [
    ['boot sector', () => [0, 512]],
    ['MFT records', () => [mftAt, 120 * 1024]],
    ['index blocks', () => [indx[pick(indx.length)]!, 4096]],
    ['attribute headers and runlists', () => [mftAt + (16 + pick(104)) * 1024 + 56, 400]],
  ];
  for (const [what, region] of regions) {
    test(`flipped bytes in ${what}: no crash, no hang, coded errors only`, T, async () => {
      let opened = 0;
      for (let round = 0; round < 20; round++) {
        const b = Buffer.from(pristine);
        const [start, len] = region();
        const flips = 1 + pick(what === 'boot sector' ? 3 : 12);
        for (let k = 0; k < flips; k++) b[start + pick(len)] = pick(256);
        const r = new CountingReader(new BufferReader(b), 64 * pristine.length);
        try {
          const fs = await openFilesystem(r);
          opened++;
          await walkAll(fs);
        } catch (e) {
          swallow(e);
        }
      }
      assert.ok(what === 'boot sector' || opened > 0, 'some mutated volumes still open');
    });
  }

  test('truncated images: coded errors only', T, async () => {
    for (let round = 0; round < 12; round++) {
      const cut = 512 + pick(pristine.length - 512);
      const r = new CountingReader(new BufferReader(pristine.subarray(0, cut)), 64 * pristine.length);
      try {
        await walkAll(await openFilesystem(r));
      } catch (e) {
        swallow(e);
      }
    }
  });
});
