import assert from 'node:assert/strict';
import {
  constants as fsConstants,
  copyFileSync,
  mkdirSync,
  openSync,
  closeSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
  appendFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { CofferError } from '../src/shared/index.js';
import { openSource, type BlockSource } from '../src/sources/index.js';
import { coffer, cofferAsync, json, tempDir } from './helpers/cli.js';
import { assertSameBytes, expectError, expectOk, makeSparseDisk } from './helpers/more-cli.js';
import { run } from './helpers/servers.js';

const KiB = 1024;
const MiB = 1024 * 1024;
const SECTOR = 512;
const GRAIN = 64 * KiB; // qemu-img's default grain: 128 sectors

/**
 * Hostile and damaged VMDK files. Valid images come from `qemu-img convert -O vmdk -o subformat=...`; each damaged
 * copy changes one thing. Every failure must be SOURCE_UNREADABLE (exit 8) naming the problem, with no stack trace,
 * no hang, and no restore point left behind; in-process, never a RangeError/TypeError.
 */
describe('VMDK reader against damaged and hostile files', () => {
  const tmp = tempDir('coffer-vmdk-');
  const repo = join(tmp.path, 'repo');
  const raw = join(tmp.path, 'src.raw');
  const SIZE = 32 * MiB;
  // data at grain 0 (so grain 0's table entry is allocated), mid-disk, and at the very end
  const REGIONS: [number, number][] = [
    [0, MiB],
    [10 * MiB, 512 * KiB],
    [SIZE - 256 * KiB, 256 * KiB],
  ];
  const ALLOCATED = REGIONS.reduce((a, [, l]) => a + l, 0);
  const vmdk: Record<string, string> = {};
  let vmCounter = 0;

  before(() => {
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '1M', '--kdf-cost', '1024', '--json']));
    makeSparseDisk(raw, SIZE, REGIONS, 'vmdk-src');
    for (const sub of ['monolithicSparse', 'streamOptimized', 'monolithicFlat', 'twoGbMaxExtentSparse']) {
      const dir = join(tmp.path, `valid-${sub}`);
      mkdirSync(dir);
      vmdk[sub] = join(dir, `${sub}.vmdk`);
      run('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', `subformat=${sub}`, raw, vmdk[sub]!]);
    }
  });
  after(() => tmp.cleanup());

  const pointCount = () => (json(coffer(['list', '--repo', repo, '--json'])) as unknown[]).length;
  /** Restore points the successful backups of this file made (the tests run in order). */
  let expectedPoints = 0;
  const assertNoNewPoint = () => assert.equal(pointCount(), expectedPoints, 'a failed backup left a restore point');

  /** A copy of a valid image (and, for descriptors, its extent files) in a fresh directory. */
  let copies = 0;
  const copyOf = (sub: string, extraFiles: string[] = []): string => {
    const dir = join(tmp.path, `case-${copies++}`);
    mkdirSync(dir);
    const dst = join(dir, `${sub}.vmdk`);
    copyFileSync(vmdk[sub]!, dst);
    for (const f of extraFiles) copyFileSync(join(tmp.path, `valid-${sub}`, f), join(dir, f));
    return dst;
  };
  const writeU32 = (file: string, at: number, v: number) => patch(file, at, (b) => b.writeUInt32LE(v >>> 0), 4);
  const writeU64 = (file: string, at: number, v: bigint) => patch(file, at, (b) => b.writeBigUInt64LE(v), 8);
  const patch = (file: string, at: number, fill: (b: Buffer) => void, n: number) => {
    const b = Buffer.alloc(n);
    fill(b);
    const fd = openSync(file, 'r+');
    try {
      writeSync(fd, b, 0, n, at);
    } finally {
      closeSync(fd);
    }
  };
  const u64 = (file: string, at: number) => Number(readFileSync(file).readBigUInt64LE(at));
  const u32 = (file: string, at: number) => readFileSync(file).readUInt32LE(at);
  /** Byte offset of grain 0's grain table entry, and the sector it points at. */
  const gte0 = (file: string) => {
    const gd = u64(file, 56) * SECTOR;
    const gt = u32(file, gd) * SECTOR;
    return { gdAt: gd, gteAt: gt, grainSector: u32(file, gt) };
  };

  /** Opens the source and reads every allocated range (bounded by a timeout); returns the error thrown. */
  const readAllError = async (file: string, limitMs = 10_000): Promise<unknown> => {
    const work = (async () => {
      let src: BlockSource | undefined;
      try {
        src = await openSource(`file://${file}`);
        const buf = Buffer.alloc(MiB);
        const extents = src.dataExtents ? src.dataExtents() : [{ offset: 0, length: src.sizeBytes }];
        for await (const e of extents) {
          for (let o = e.offset; o < e.offset + e.length; o += MiB) {
            const n = Math.min(MiB, e.offset + e.length - o);
            await src.read(o, n, buf.subarray(0, n));
          }
        }
        return undefined;
      } catch (e) {
        return e;
      } finally {
        await src?.close();
      }
    })();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>(
      (_, rej) => (timer = setTimeout(() => rej(new Error(`reading ${file} hung for ${limitMs} ms`)), limitMs)),
    );
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  /** In-process and through the CLI: SOURCE_UNREADABLE naming the problem, no stack, no new restore point. */
  const expectRejected = async (file: string, message: RegExp, opts: { hint?: RegExp } = {}) => {
    const e = await readAllError(file);
    assert.ok(e !== undefined, `${file} was read without an error`);
    assert.ok(
      e instanceof CofferError,
      `expected a CofferError, got ${(e as Error)?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack}`,
    );
    assert.equal(e.code, 'SOURCE_UNREADABLE', `${e.code}: ${e.message}`);
    assert.match(e.message, message);
    if (opts.hint) assert.match(e.hint ?? '', opts.hint);

    const vm = `hostile-${vmCounter++}`;
    const r = coffer(['backup', '--repo', repo, '--vm', vm, `file://${file}`, '--json']);
    const err = expectError(r, 8, 'SOURCE_UNREADABLE');
    assert.match(err.message, message);
    if (opts.hint) assert.match(err.hint ?? '', opts.hint);
    assertNoNewPoint();
  };

  // ---------------------------------------------------------------------------------------------------------------
  // Valid images

  for (const sub of ['monolithicSparse', 'streamOptimized', 'monolithicFlat', 'twoGbMaxExtentSparse']) {
    test(`${sub}: backs up and restores bit-exact`, () => {
      const r = expectOk(coffer(['backup', '--repo', repo, '--vm', `valid-${sub}`, `file://${vmdk[sub]}`, '--json']));
      expectedPoints++;
      assert.equal(r.disks[0].sizeBytes, SIZE);
      if (sub !== 'monolithicFlat') {
        // sparse: only allocated grains are read (whole 1 MiB chunks around them)
        assert.ok(r.bytesRead <= ALLOCATED + 2 * MiB, `read ${r.bytesRead} of ${SIZE} bytes (${ALLOCATED} allocated)`);
        assert.ok(r.bytesRead < SIZE / 4, `read ${r.bytesRead} of ${SIZE} bytes`);
      }
      const out = join(tmp.path, `restored-${sub}.raw`);
      expectOk(coffer(['restore', '--repo', repo, r.id, '--disk', '0', '--target', out, '--json']));
      assertSameBytes(out, raw);
    });
  }

  test('streamOptimized with the grain directory in a footer (GD_AT_END) restores bit-exact', () => {
    const f = copyOf('streamOptimized');
    const header = readFileSync(f).subarray(0, SECTOR);
    // footer marker (type 3), a copy of the header with the real gdOffset, end-of-stream marker
    const marker = Buffer.alloc(SECTOR);
    marker.writeBigUInt64LE(1n, 0);
    marker.writeUInt32LE(3, 12);
    appendFileSync(f, Buffer.concat([marker, header, Buffer.alloc(SECTOR)]));
    writeU64(f, 56, 0xffffffffffffffffn);
    const r = expectOk(coffer(['backup', '--repo', repo, '--vm', 'valid-footer', `file://${f}`, '--json']));
    expectedPoints++;
    const out = join(tmp.path, 'restored-footer.raw');
    expectOk(coffer(['restore', '--repo', repo, r.id, '--disk', '0', '--target', out, '--json']));
    assertSameBytes(out, raw);
  });

  // ---------------------------------------------------------------------------------------------------------------
  // Damaged sparse extents (monolithicSparse)

  test('truncated sparse file: cut in half', async () => {
    const f = copyOf('monolithicSparse');
    truncateSync(f, Math.floor(statSync(f).size / 2));
    await expectRejected(f, /invalid VMDK: .*(outside the file|end of file)/);
  });

  test('truncated sparse file: cut to 100 bytes', async () => {
    const f = copyOf('monolithicSparse');
    truncateSync(f, 100);
    await expectRejected(f, /invalid VMDK|too short|end of file/);
  });

  test('wrong magic', async () => {
    const f = copyOf('monolithicSparse');
    patch(f, 0, (b) => b.write('KDMX', 'latin1'), 4);
    // sniffing no longer sees a VMDK: force the format so the VMDK reader sees the bad magic
    await expectRejectedSpec(
      `file://${f}?format=vmdk`,
      /invalid VMDK: (neither a sparse extent nor a descriptor|bad sparse extent magic)/,
    );
  });

  test('version 99', async () => {
    const f = copyOf('monolithicSparse');
    writeU32(f, 4, 99);
    await expectRejected(f, /unsupported sparse extent version 99/);
  });

  test('absurd capacity (2^60 sectors)', async () => {
    const f = copyOf('monolithicSparse');
    writeU64(f, 12, 2n ** 60n);
    await expectRejected(f, /absurd capacity/);
  });

  test('absurd capacity just past the limit (2^37 + 1 sectors)', async () => {
    const f = copyOf('monolithicSparse');
    writeU64(f, 12, 2n ** 37n + 1n);
    await expectRejected(f, /absurd capacity/);
  });

  for (const [label, v] of [
    ['0', 0n],
    ['3', 3n],
    ['huge (2^40)', 2n ** 40n],
    ['4096 (too large)', 4096n],
  ] as const) {
    test(`grain size ${label}`, async () => {
      const f = copyOf('monolithicSparse');
      writeU64(f, 20, v);
      await expectRejected(f, /(invalid grain size|absurd grain size)/);
    });
  }

  test('numGTEsPerGT != 512', async () => {
    const f = copyOf('monolithicSparse');
    writeU32(f, 44, 1024);
    await expectRejected(f, /entries per grain table/);
  });

  test('gdOffset beyond EOF', async () => {
    const f = copyOf('monolithicSparse');
    writeU64(f, 56, BigInt(Math.ceil(statSync(f).size / SECTOR) + 1000));
    await expectRejected(f, /grain directory .*outside the file/);
  });

  test('gdOffset absurd (2^62)', async () => {
    const f = copyOf('monolithicSparse');
    writeU64(f, 56, 2n ** 62n);
    await expectRejected(f, /grain directory/);
  });

  test('a grain directory entry pointing beyond EOF', async () => {
    const f = copyOf('monolithicSparse');
    writeU32(f, gte0(f).gdAt, 0x7fffffff);
    await expectRejected(f, /grain table .*outside the file/);
  });

  test('a grain table entry pointing beyond EOF', async () => {
    const f = copyOf('monolithicSparse');
    writeU32(f, gte0(f).gteAt, 0xfffffff0);
    await expectRejected(f, /grain 0 .*outside the file/);
  });

  test('an embedded descriptor beyond EOF', async () => {
    const f = copyOf('monolithicSparse');
    writeU64(f, 28, BigInt(Math.ceil(statSync(f).size / SECTOR) + 10));
    await expectRejected(f, /descriptor .*outside the file/);
  });

  // ---------------------------------------------------------------------------------------------------------------
  // streamOptimized

  test('streamOptimized: grain marker with the wrong LBA', async () => {
    const f = copyOf('streamOptimized');
    writeU64(f, gte0(f).grainSector * SECTOR, 12345n);
    await expectRejected(f, /grain 0 marker names sector 12345/);
  });

  test('streamOptimized: compressed size 0', async () => {
    const f = copyOf('streamOptimized');
    writeU32(f, gte0(f).grainSector * SECTOR + 8, 0);
    await expectRejected(f, /absurd compressed size 0/);
  });

  test('streamOptimized: compressed size huge', async () => {
    const f = copyOf('streamOptimized');
    writeU32(f, gte0(f).grainSector * SECTOR + 8, 0xfffffff0);
    await expectRejected(f, /absurd compressed size/);
  });

  test('streamOptimized: compressed size within limits but past EOF', async () => {
    const f = copyOf('streamOptimized');
    // the last grain's marker, with a size that runs past the end of the file
    const { gteAt } = gte0(f);
    const lastGrain = SIZE / GRAIN - 1;
    const sector = u32(f, gteAt + lastGrain * 4);
    assert.ok(sector > 1, 'the last grain is allocated');
    writeU32(f, sector * SECTOR + 8, 2 * GRAIN);
    await expectRejected(f, /outside the file/);
  });

  test('streamOptimized: deflate garbage', async () => {
    const f = copyOf('streamOptimized');
    const at = gte0(f).grainSector * SECTOR;
    const size = u32(f, at + 8);
    patch(f, at + 12, (b) => b.fill(0xab), Math.min(size, 256));
    await expectRejected(f, /grain 0 does not inflate/);
  });

  test('streamOptimized: a grain that inflates to more than a grain (deflate bomb)', async () => {
    const f = copyOf('streamOptimized');
    const at = gte0(f).grainSector * SECTOR;
    const bomb = deflateSync(Buffer.alloc(64 * GRAIN));
    assert.ok(bomb.length < u32(f, at + 8), 'fits where the grain was');
    writeU32(f, at + 8, bomb.length);
    patch(f, at + 12, (b) => bomb.copy(b), bomb.length);
    await expectRejected(f, /grain 0 does not inflate/);
  });

  test('streamOptimized: footer removed (header says the grain directory is at the end)', async () => {
    const f = copyOf('streamOptimized');
    writeU64(f, 56, 0xffffffffffffffffn);
    await expectRejected(f, /invalid VMDK: (bad sparse extent magic|.*footer)/);
  });

  test('streamOptimized: footer that again says GD_AT_END', async () => {
    const f = copyOf('streamOptimized');
    writeU64(f, 56, 0xffffffffffffffffn);
    const header = readFileSync(f).subarray(0, SECTOR);
    appendFileSync(f, Buffer.concat([Buffer.alloc(SECTOR), header, Buffer.alloc(SECTOR)]));
    await expectRejected(f, /footer has no grain directory offset/);
  });

  test('streamOptimized: too short for a footer', async () => {
    const f = copyOf('streamOptimized');
    writeU64(f, 56, 0xffffffffffffffffn);
    truncateSync(f, 1024);
    await expectRejected(f, /too short for a footer/);
  });

  // ---------------------------------------------------------------------------------------------------------------
  // Descriptor files (monolithicFlat: "monolithicFlat.vmdk" + "monolithicFlat-flat.vmdk")

  const FLAT = 'monolithicFlat-flat.vmdk';
  const descriptorWith = (extentLines: string, extra = '') => {
    const f = copyOf('monolithicFlat', [FLAT]);
    const text = readFileSync(f, 'latin1');
    assert.match(text, /^RW .*$/m, 'the descriptor has an extent line');
    const replaced = text.replace(/^RW .*$/m, extentLines);
    writeFileSync(
      f,
      replaced.replace(/^parentCID=.*$/m, (l) => extra || l),
      'latin1',
    );
    return f;
  };

  test('descriptor: extent with a ../ path', async () => {
    const f = descriptorWith(`RW ${SIZE / SECTOR} FLAT "../valid-monolithicFlat/${FLAT}" 0`);
    await expectRejected(f, /must be a plain file name/);
  });

  test('descriptor: extent with an absolute path', async () => {
    const f = descriptorWith(`RW ${SIZE / SECTOR} FLAT "${join(tmp.path, 'valid-monolithicFlat', FLAT)}" 0`);
    await expectRejected(f, /must be a plain file name/);
  });

  test('descriptor: missing extent file', async () => {
    const f = descriptorWith(`RW ${SIZE / SECTOR} FLAT "nonexistent-flat.vmdk" 0`);
    await expectRejected(f, /nonexistent-flat\.vmdk: no such file/);
  });

  test('descriptor: flat extent smaller than declared', async () => {
    const f = descriptorWith(`RW ${SIZE / SECTOR} FLAT "${FLAT}" 0`);
    truncateSync(join(f, '..', FLAT), SIZE / 2);
    await expectRejected(f, /needs \d+ bytes, the file has \d+/);
  });

  test('descriptor: absurd extent size', async () => {
    const f = descriptorWith(`RW 99999999999999999999 FLAT "${FLAT}" 0`);
    await expectRejected(f, /absurd extent size/);
  });

  test('descriptor: extents adding up to an absurd size', async () => {
    const lines = Array.from({ length: 3 }, () => `RW ${2 ** 36} ZERO`).join('\n');
    const f = descriptorWith(lines);
    await expectRejected(f, /absurd size/);
  });

  test('descriptor: unparsable extent line', async () => {
    const f = descriptorWith(`RW ${SIZE / SECTOR} FLAT ${FLAT} zero`);
    await expectRejected(f, /unparsable extent line/);
  });

  test('descriptor: 2 MB descriptor file', async () => {
    const f = descriptorWith(`RW ${SIZE / SECTOR} FLAT "${FLAT}" 0`);
    appendFileSync(f, `# ${'x'.repeat(100)}\n`.repeat((2 * 1024 * 1024) / 103));
    assert.ok(statSync(f).size > 2 * MiB - 1024);
    await expectRejected(f, /too large|larger than/);
  });

  test('descriptor: parentCID set (snapshot delta) is refused with a hint', async () => {
    const f = descriptorWith(`RW ${SIZE / SECTOR} FLAT "${FLAT}" 0`, 'parentCID=1a2b3c4d');
    await expectRejected(f, /snapshot delta disk/, { hint: /consolidate|vSphere/ });
  });

  test('monolithicSparse with an embedded parentCID is refused with a hint', async () => {
    const f = copyOf('monolithicSparse');
    const off = u64(f, 28) * SECTOR;
    const text = readFileSync(f).toString('latin1', off, off + 1024);
    const at = text.indexOf('parentCID=ffffffff');
    assert.ok(at >= 0);
    patch(f, off + at, (b) => b.write('parentCID=1a2b3c4d', 'latin1'), 18);
    await expectRejected(f, /snapshot delta disk/, { hint: /consolidate|vSphere/ });
  });

  test('descriptor: RDM extents', async () => {
    for (const type of ['VMFSRDM', 'VMFSRAW']) {
      const f = descriptorWith(`RW ${SIZE / SECTOR} ${type} "${FLAT}"`);
      await expectRejected(f, new RegExp(`${type} extents \\(raw device mappings\\)`));
    }
  });

  test('descriptor: sparse extent smaller than the descriptor says', async () => {
    const f = copyOf('twoGbMaxExtentSparse', ['twoGbMaxExtentSparse-s001.vmdk']);
    const text = readFileSync(f, 'latin1');
    writeFileSync(
      f,
      text.replace(/^RW (\d+) SPARSE/m, (_, n) => `RW ${Number(n) * 2} SPARSE`),
      'latin1',
    );
    await expectRejected(f, /holds \d+ bytes, the descriptor says \d+/);
  });

  test('descriptor: extent file is a descriptor, not a sparse extent', async () => {
    const f = copyOf('twoGbMaxExtentSparse', ['twoGbMaxExtentSparse-s001.vmdk']);
    writeFileSync(join(f, '..', 'twoGbMaxExtentSparse-s001.vmdk'), readFileSync(f));
    await expectRejected(f, /bad sparse extent magic|end of file/);
  });

  test('descriptor: extent file is a FIFO: fails fast instead of blocking forever in open()', {
    timeout: 40_000,
  }, async () => {
    const f = descriptorWith(`RW ${SIZE / SECTOR} FLAT "pipe-flat.vmdk" 0`);
    const fifo = join(f, '..', 'pipe-flat.vmdk');
    run('mkfifo', [fifo]);
    // a blocked open(2) of a FIFO only returns once a writer appears: be that writer when cleaning up
    const unblock = () => {
      try {
        closeSync(openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK));
      } catch {
        /* no reader waiting */
      }
    };
    let inProcess: unknown;
    try {
      inProcess = await readAllError(f, 3_000);
    } catch (e) {
      inProcess = e;
    } finally {
      unblock();
    }
    const started = Date.now();
    const { child, done } = cofferAsync([
      'backup',
      '--repo',
      repo,
      '--vm',
      `hostile-${vmCounter++}`,
      `file://${f}`,
      '--json',
    ]);
    let hung = false;
    const t1 = setTimeout(() => {
      hung = true;
      unblock();
    }, 4_000);
    const t2 = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const r = await done;
    clearTimeout(t1);
    clearTimeout(t2);
    assertNoNewPoint();
    assert.ok(
      inProcess instanceof CofferError && !hung,
      `openSource blocks in open() of a FIFO extent: in-process: ${String(inProcess)}; CLI ${hung ? 'blocked until the test opened the FIFO for writing' : 'returned'} after ${Date.now() - started} ms (exit ${r.code}, ${r.stdout.trim()})`,
    );
    assert.equal(inProcess.code, 'SOURCE_UNREADABLE');
    assert.match(expectError(r, 8, 'SOURCE_UNREADABLE').message, /pipe-flat\.vmdk.*(not a regular file|FIFO)/);
  });

  /** Like expectRejected for a SOURCE spec that is not a plain file:// path. */
  async function expectRejectedSpec(spec: string, message: RegExp): Promise<void> {
    let src: BlockSource | undefined;
    let err: unknown;
    try {
      src = await openSource(spec);
      const buf = Buffer.alloc(MiB);
      await src.read(0, MiB, buf);
    } catch (e) {
      err = e;
    } finally {
      await src?.close();
    }
    assert.ok(err instanceof CofferError, `expected a CofferError, got ${String(err)}`);
    assert.equal(err.code, 'SOURCE_UNREADABLE', err.message);
    assert.match(err.message, message);
    const r = coffer(['backup', '--repo', repo, '--vm', `hostile-${vmCounter++}`, spec, '--json']);
    assert.match(expectError(r, 8, 'SOURCE_UNREADABLE').message, message);
    assertNoNewPoint();
  }
});
