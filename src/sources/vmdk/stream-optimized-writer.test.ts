// The streamOptimized writer against Coffer's own VMDK reader and qemu-img: several grain tables (more than 512
// grains), a partial last grain, zero grains skipped, and wrong stream lengths refused.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { streamOptimizedVmdk, type StreamOptimizedStats } from './stream-optimized-writer.js';
import { VmdkSource } from './vmdk-source.js';

async function* chunks(b: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let o = 0; o < b.length; o += size) yield b.subarray(o, Math.min(b.length, o + size));
}

async function collect(g: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of g) parts.push(p);
  return Buffer.concat(parts);
}

test('streamOptimized writer: Coffer and qemu-img read back the image; only non-zero grains are written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-so-'));
  try {
    // 40 MiB + 1.5 KiB (a partial last grain): 641 grains -> two grain tables
    const size = 40 * 1024 * 1024 + 1536;
    const img = Buffer.alloc(size);
    randomBytes(70_000).copy(img, 100); // grains 0 and 1
    randomBytes(4096).copy(img, 33 * 1024 * 1024 + 62 * 1024); // grains 528 and 529 (second table)
    img.fill(0x5a, size - 1000); // the partial last grain
    for (const step of [65536, 7919]) {
      const stats: StreamOptimizedStats = { grains: 0, zeroGrains: 0, bytesOut: 0 };
      const out = await collect(streamOptimizedVmdk(chunks(img, step), { capacityBytes: size }, stats));
      assert.equal(stats.grains, 5);
      assert.equal(stats.zeroGrains, 641 - 5);
      assert.equal(stats.bytesOut, out.length);
      assert.ok(out.length < 90_000, `${out.length} bytes for ~78 KB of data`);
      const file = join(dir, `d-${step}.vmdk`);
      writeFileSync(file, out);
      const src = await VmdkSource.open(file);
      try {
        assert.equal(src.sizeBytes, size);
        const back = Buffer.alloc(size);
        await src.read(0, size, back);
        assert.ok(back.equals(img), 'Coffer reads back other bytes');
      } finally {
        await src.close();
      }
      const raw = join(dir, `d-${step}.raw`);
      const conv = spawnSync('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', file, raw]);
      assert.equal(conv.status, 0, conv.stderr.toString());
      assert.ok(readFileSync(raw).equals(img), 'qemu-img reads back other bytes');
      const chk = spawnSync('qemu-img', ['check', '-f', 'vmdk', file]);
      assert.equal(chk.status, 0, chk.stdout.toString() + chk.stderr.toString());
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('streamOptimized writer: an all-zero disk is metadata only; bad lengths are refused', async () => {
  const zero = await collect(streamOptimizedVmdk(chunks(Buffer.alloc(1 << 20), 65536), { capacityBytes: 1 << 20 }));
  assert.ok(zero.length <= 7 * 512, `${zero.length} bytes`);
  await assert.rejects(
    collect(streamOptimizedVmdk(chunks(Buffer.alloc(1000), 1000), { capacityBytes: 1 << 20 })),
    /ended after 1000 of/,
  );
  await assert.rejects(
    collect(streamOptimizedVmdk(chunks(Buffer.alloc(2 << 20), 65536), { capacityBytes: 1 << 20 })),
    /more than/,
  );
  await assert.rejects(
    collect(streamOptimizedVmdk(chunks(Buffer.alloc(0), 1), { capacityBytes: 1000 })),
    /USAGE|sectors/,
  );
});
