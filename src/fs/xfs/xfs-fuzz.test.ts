import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CofferError } from '../../shared/index.js';
import { BufferReader, openFilesystem, type FsNode, type GuestFs } from '../index.js';
import { MiB } from '../testing/images.js';
import { makeXfsImage } from '../testing/xfs-lvm-images.js';
import { crc32c } from './crc32c.js';

const asRoot = process.getuid?.() === 0;

/**
 * Metadata structures of a v5 image found by magic, with where their checksum is (so a mutation can be made "valid").
 */
function structures(img: Buffer): { at: number; len: number; crc: number }[] {
  const out: { at: number; len: number; crc: number }[] = [{ at: 0, len: 512, crc: 224 }];
  const crcOf: Record<string, number> = { XDB3: 4, XDD3: 4, BMA3: 64, XSLM: 12 };
  for (let o = 0; o < img.length; o += 4096) {
    const m = img.toString('latin1', o, o + 4);
    if (m in crcOf) out.push({ at: o, len: 4096, crc: crcOf[m]! });
  }
  for (let o = 0; o < img.length; o += 512)
    if (img.readUInt16BE(o) === 0x494e && img[o + 4] === 3) out.push({ at: o, len: 512, crc: 100 });
  return out;
}

/** Walks everything: every error must be coded; work is bounded (nodes, bytes). */
async function walk(fs: GuestFs): Promise<{ nodes: number; errors: number }> {
  let nodes = 0;
  let errors = 0;
  const seen = new Set<string>();
  const guard = async (f: () => Promise<unknown>) => {
    try {
      await f();
    } catch (e) {
      assert.ok(e instanceof CofferError, `uncoded: ${String((e as Error)?.stack ?? e)}`);
      errors++;
    }
  };
  const visit = async (dir: FsNode) => {
    if (seen.has(dir.id) || seen.size > 50) return;
    seen.add(dir.id);
    let entries: FsNode[] = [];
    await guard(async () => (entries = await fs.list(dir)));
    for (const e of entries) {
      if (++nodes > 30000) return;
      if (e.error) {
        assert.ok(e.error instanceof CofferError);
        errors++;
        continue;
      }
      if (e.type === 'dir') await visit(e);
      else if (e.type === 'symlink') await guard(() => fs.readlink(e));
      else if (e.type === 'file')
        await guard(async () => {
          let bytes = 0;
          for await (const p of fs.read(e)) if ((bytes += p.data.length) > 64 * MiB) break;
        });
    }
  };
  await guard(async () => visit(await fs.root()));
  return { nodes, errors };
}

describe('XFS reader: seeded mutation fuzzing (checksums fixed after each mutation)', {
  skip: !asRoot && 'needs root (loop mounts)',
}, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'coffer-xfsfuzz-'));
  let img: Buffer;
  before(() => {
    makeXfsImage(join(tmp, 'f.img'), 32 * MiB, { nodeEntries: 700 });
    img = readFileSync(join(tmp, 'f.img'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test('80 mutations: no crash, no hang, only coded errors, bounded memory', { timeout: 300_000 }, async () => {
    const structs = structures(img);
    assert.ok(structs.length > 50, `${structs.length} structures`);
    let seed = 0xc0ffee;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    let opened = 0;
    let refused = 0;
    let damagedEntries = 0;
    for (let i = 0; i < 80; i++) {
      const s = structs[rnd(structs.length)]!;
      const saved = Buffer.from(img.subarray(s.at, s.at + s.len));
      const region = img.subarray(s.at, s.at + s.len);
      for (let k = 0; k < 1 + rnd(3); k++) {
        // bias towards the headers and the first records, where counts, levels, sizes and pointers are
        const off = rnd(4) === 0 ? rnd(s.len) : rnd(Math.min(s.len, 256));
        const kind = rnd(3);
        if (kind === 0) region[off] ^= 1 << rnd(8);
        else if (kind === 1) region[off] = 0xff;
        else region[off] = 0;
      }
      region.writeUInt32LE(0, s.crc);
      region.writeUInt32LE(crc32c(region), s.crc);
      try {
        const fs = await openFilesystem(new BufferReader(img));
        opened++;
        const r = await walk(fs);
        damagedEntries += r.errors;
      } catch (e) {
        assert.ok(e instanceof CofferError, `uncoded at open: ${String((e as Error)?.stack ?? e)}`);
        refused++;
      } finally {
        saved.copy(img, s.at);
      }
      assert.ok(process.memoryUsage().heapUsed < 1024 * MiB, 'memory stays bounded');
    }
    assert.ok(opened > 40, `${opened} opened, ${refused} refused`);
    assert.ok(damagedEntries > 0, 'some mutations were noticed');
  });
});
