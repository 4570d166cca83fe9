import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CofferError } from '../../shared/index.js';
import { BufferReader, FileReader, openFilesystem, type GuestFs } from '../index.js';
import { readTree, LONG_NAME, MiB, T_MTIME, T_ATIME, UNICODE_NAME, sh } from '../testing/images.js';
import {
  ADS_DATA,
  ADS_NAME,
  JUNCTION_TARGET,
  NTFS_MANY,
  attrOffset,
  makeNtfsTree,
  manyStreamData,
  mkNtfs,
  ntfsRecordOf,
  recordOffset,
} from '../testing/ntfs-images.js';
import { NtfsFs } from './ntfs.js';

const T = { timeout: 120_000 };

async function expectCode(p: Promise<unknown>, code: string, re?: RegExp): Promise<CofferError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CofferError, `expected CofferError, got ${String((e as Error).stack)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return e;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

describe('NTFS reader against mkntfs + wimapply + ntfscp images', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'coffer-ntfs-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const src = join(tmp, 'src');
  const tree = makeNtfsTree(src);
  const img = join(tmp, 'ntfs.img');
  const compressed = mkNtfs(img, src, 64 * MiB, tmp);
  const pristine = readFileSync(img);
  const openBuf = (b: Buffer) => openFilesystem(new BufferReader(b));

  test('every file, link, stream and name comes back as put in', T, async () => {
    const r = await FileReader.open(img);
    try {
      const fs = await openFilesystem(r);
      assert.ok(fs instanceof NtfsFs);
      assert.equal(fs.kind, 'ntfs');
      assert.deepEqual(fs.warnings, []);
      const all = await readTree(fs);
      for (const rel of tree.files) {
        const e = all.get(rel);
        assert.ok(e, `${rel} missing`);
        assert.equal(e.node.type, 'file', rel);
        assert.ok(e.data!.equals(readFileSync(join(src, rel))), `${rel}: content differs`);
        assert.equal(e.node.mtimeMs, T_MTIME, `${rel} mtime`);
        assert.equal(e.node.atimeMs, T_ATIME, `${rel} atime`);
        assert.ok(e.node.ctimeMs !== undefined);
      }
      assert.equal([...all.keys()].filter((k) => k.startsWith('many/')).length, NTFS_MANY);
      assert.ok(all.has(LONG_NAME) && all.has(UNICODE_NAME) && all.has('日本語のファイル名.txt'));
      // no metafiles, no '.', no 8.3 duplicates in the listing
      assert.ok(
        ![...all.keys()].some((k) => k.startsWith('$') || k === '.' || /~\d/.test(k)),
        [...all.keys()].filter((k) => !k.startsWith('many/')).join(', '),
      );
      const sp = all.get('sparse.img')!;
      assert.ok(sp.node.attributes!.includes('sparse'));
      assert.ok(sp.dataBytes! < 1 * MiB, `sparse file: ${sp.dataBytes} bytes of data read (holes are skipped)`);
      // hard link: one record, two names
      const h1 = all.get('hardlink.json')!.node;
      const h2 = all.get('Program Files/Some App/settings.json')!.node;
      assert.equal(h1.id, h2.id);
      assert.equal(h1.nlink, 2);
      // reparse points: never followed, the target as stored
      assert.equal(all.get('rel-link')!.node.type, 'symlink');
      assert.equal(all.get('rel-link')!.link, 'Program Files/Some App/settings.json');
      assert.equal(all.get('dir-link')!.link, 'deep/level1');
      assert.equal(all.get('junction')!.node.type, 'symlink');
      assert.equal(all.get('junction')!.link, JUNCTION_TARGET);
      assert.equal(all.get('empty')!.data!.length, 0);
      assert.equal(all.get('empty-dir')!.node.type, 'dir');
      // LZNT1: both compression units that hold compressed data and stored ones, against the input and ntfscat
      for (const [name, data] of compressed) {
        const e = all.get(name)!;
        assert.ok(e.node.attributes!.includes('compressed'), `${name} attributes ${e.node.attributes}`);
        assert.ok(e.data!.equals(data), `${name}: decompressed content differs`);
        assert.ok(e.dataBytes! < data.length, `${name}: zero units are holes`);
      }
      // alternate data streams: listed, readable; the unnamed stream is the content
      const ws = all.get('with-stream.txt')!;
      assert.deepEqual(ws.node.streams!.map((x) => x.name).sort(), [ADS_NAME, 'second']);
      const readS = async (node: typeof ws.node, name: string) => {
        const parts: Buffer[] = [];
        for await (const p of fs.readStream!(node, name)) parts.push(p.data);
        return Buffer.concat(parts);
      };
      assert.equal((await readS(ws.node, ADS_NAME)).toString(), ADS_DATA);
      // a file whose attributes spread over extension records ($ATTRIBUTE_LIST)
      const ms = all.get('many-streams.txt')!.node;
      assert.equal(ms.streams!.length, 14);
      for (let i = 1; i <= 14; i++) assert.ok((await readS(ms, `stream${i}`)).equals(manyStreamData(i)), `stream${i}`);
      await expectCode(
        (async () => {
          for await (const _ of fs.readStream!(ms, 'nope'));
        })(),
        'NOT_FOUND',
      );
    } finally {
      await r.close();
    }
  });

  test('contents agree with ntfs-3g (ntfscat)', T, async () => {
    const fs = await openBuf(pristine);
    const root = await fs.root();
    const names = ['big.bin', 'compressed.txt', 'compressed-2.bin', 'sparse.img'];
    for (const n of names) {
      const node = (await fs.list(root)).find((e) => e.name === n)!;
      const out = Buffer.alloc(node.sizeBytes);
      for await (const p of fs.read(node)) p.data.copy(out, p.offset);
      const ref = join(tmp, 'ntfscat.out');
      sh('sh', ['-c', `ntfscat "$1" "/$2" > "$3"`, 'sh', img, n, ref]);
      assert.ok(out.equals(readFileSync(ref)), `${n} differs from ntfscat`);
    }
  });

  test('a dirty volume is read with a warning that $LogFile was not replayed', T, async () => {
    const b = Buffer.from(pristine);
    const vi = attrOffset(b, recordOffset(b, 3), 0x70);
    b[vi + b.readUInt16LE(vi + 20) + 10]! |= 1;
    const fs = (await openBuf(b)) as NtfsFs;
    assert.equal(fs.dirty, true);
    assert.match(fs.warnings.join('\n'), /dirty.*\$LogFile is not replayed/);
    assert.ok((await fs.list(await fs.root())).length > 10);
  });

  test('BitLocker is recognised and refused; a torn record is corrupt', T, async () => {
    const b = Buffer.from(pristine);
    b.write('-FVE-FS-', 3, 'latin1');
    await expectCode(openBuf(b), 'FS_UNSUPPORTED', /BitLocker/);
    const c = Buffer.from(pristine);
    const rec = recordOffset(c, ntfsRecordOf(img, '/', 'big.bin'));
    c[rec + 510] ^= 0xff; // the update sequence number at the end of the first sector
    const fs = await openBuf(c);
    const big = (await fs.list(await fs.root())).find((e) => e.name === 'big.bin')!;
    assert.equal(big.type, 'unknown');
    assert.match(big.error!.message, /torn write/);
  });

  test('hostile runlists, index cycles, absurd sizes, attribute lists: coded errors', T, async () => {
    const rec = (b: Buffer, name: string) => recordOffset(b, ntfsRecordOf(img, '/', name));
    const listed = async (b: Buffer, name: string, dir?: string) => {
      const fs: GuestFs = await openBuf(b);
      let d = await fs.root();
      if (dir) d = (await fs.list(d)).find((e) => e.name === dir)!;
      return { fs, node: (await fs.list(d)).find((e) => e.name === name)! };
    };
    const readAll = async (fs: GuestFs, node: Awaited<ReturnType<typeof listed>>['node']) => {
      for await (const _ of fs.read(node));
    };
    // two runs on the same cluster (a loop through the same data)
    let b = Buffer.from(pristine);
    let a = attrOffset(b, rec(b, 'big.bin'), 0x80);
    let mp = a + b.readUInt16LE(a + 32);
    const lcn = b.readUIntLE(mp + 1 + (b[mp]! & 0xf), b[mp]! >> 4);
    assert.ok(lcn < 32768);
    Buffer.from([0x21, 0x01, lcn & 0xff, (lcn >> 8) & 0xff, 0x11, 0x01, 0x00, 0x00]).copy(b, mp);
    b.writeBigInt64LE(1n, a + 24);
    for (const o of [40, 48, 56]) b.writeBigInt64LE(8192n, a + o);
    let got = await listed(b, 'big.bin');
    assert.match(got.node.error?.message ?? '', /runs overlap/);
    // a run past the end of the volume
    b = Buffer.from(pristine);
    a = attrOffset(b, rec(b, 'big.bin'), 0x80);
    mp = a + b.readUInt16LE(a + 32);
    Buffer.from([0x41, 0x01, 0xff, 0xff, 0xff, 0x70, 0x00]).copy(b, mp);
    b.writeBigInt64LE(0n, a + 24);
    for (const o of [40, 48, 56]) b.writeBigInt64LE(4096n, a + o);
    got = await listed(b, 'big.bin');
    assert.match(got.node.error?.message ?? '', /outside the volume/);
    // an absurd data size
    b = Buffer.from(pristine);
    a = attrOffset(b, rec(b, 'big.bin'), 0x80);
    b.writeBigInt64LE(2n ** 50n, a + 48);
    got = await listed(b, 'big.bin');
    assert.equal(got.node.type, 'unknown');
    assert.equal(got.node.error!.code, 'FS_CORRUPT');
    // an index node reached twice: two root entries of "many" point at the same child block
    b = Buffer.from(pristine);
    a = attrOffset(b, rec(b, 'many'), 0x90, '$I30');
    const v = a + b.readUInt16LE(a + 20);
    let e = v + 16 + b.readUInt32LE(v + 16);
    const len0 = b.readUInt16LE(e + 8);
    assert.equal(b.readUInt16LE(e + 12) & 1, 1, 'the root of many has child nodes (it uses $INDEX_ALLOCATION)');
    const child0 = b.readBigUInt64LE(e + len0 - 8);
    e += len0;
    b.writeBigUInt64LE(child0, e + b.readUInt16LE(e + 8) - 8);
    let fs = await openBuf(b);
    const many = (await fs.list(await fs.root())).find((x) => x.name === 'many')!;
    await expectCode(fs.list(many), 'FS_CORRUPT', /reached twice \(a cycle\)/);
    // the attribute list names a record that is not an extension of the file (the root directory), or the file itself
    b = Buffer.from(pristine);
    a = attrOffset(b, rec(b, 'many-streams.txt'), 0x20);
    assert.equal(b[a + 8], 1, 'libntfs-3g made this attribute list non-resident');
    mp = a + b.readUInt16LE(a + 32);
    const lv = b.readUIntLE(mp + 1 + (b[mp]! & 0xf), b[mp]! >> 4) * 4096;
    const ll = Number(b.readBigInt64LE(a + 48));
    const self = ntfsRecordOf(img, '/', 'many-streams.txt');
    for (let p = lv; p < lv + ll; p += b.readUInt16LE(p + 4))
      if (b.readUInt32LE(p + 16) !== self) b.writeUInt32LE(5, p + 16);
    got = await listed(b, 'many-streams.txt');
    assert.match(got.node.error?.message ?? '', /record 5 is not an extension record/);
    // an extension record that claims to be its own base
    b = Buffer.from(pristine);
    let ext = -1;
    for (let p = lv; p < lv + ll; p += b.readUInt16LE(p + 4))
      if (b.readUInt32LE(p + 16) !== self) ext = b.readUInt32LE(p + 16);
    const xo = recordOffset(b, ext);
    b.writeUInt32LE(ext, xo + 32);
    got = await listed(b, 'many-streams.txt');
    assert.match(got.node.error?.message ?? '', /is not an extension record of/);
    // a compressed file whose LZNT1 data is garbage (a back-reference before its chunk): corrupt on read, not a crash
    b = Buffer.from(pristine);
    a = attrOffset(b, rec(b, 'compressed.txt'), 0x80);
    mp = a + b.readUInt16LE(a + 32);
    const clcn = b.readUIntLE(mp + 1 + (b[mp]! & 0xf), b[mp]! >> 4);
    const cb = 4096;
    Buffer.from([0xff, 0xbf, 0xff, 0xff, 0xff, 0xff]).copy(b, clcn * cb);
    got = await listed(b, 'compressed.txt');
    await expectCode(readAll(got.fs, got.node), 'FS_CORRUPT', /LZNT1/);
    fs = await openBuf(pristine);
    void fs;
  });

  test('DOS 8.3-only names are hidden; Win32, Win32+DOS and POSIX names shown', T, async () => {
    const listing = async (ns: number) => {
      const b = Buffer.from(pristine);
      const a = attrOffset(b, recordOffset(b, ntfsRecordOf(img, '/Program Files', 'Some App')), 0x90, '$I30');
      const v = a + b.readUInt16LE(a + 20);
      const e = v + 16 + b.readUInt32LE(v + 16);
      b[e + 16 + 65] = ns; // the namespace of the index entry's file name
      const fs = await openBuf(b);
      const pf = (await fs.list(await fs.root())).find((x) => x.name === 'Program Files')!;
      const app = (await fs.list(pf)).find((x) => x.name === 'Some App')!;
      return (await fs.list(app)).map((x) => x.name);
    };
    assert.deepEqual(await listing(0), ['settings.json']);
    assert.deepEqual(await listing(1), ['settings.json']);
    assert.deepEqual(await listing(3), ['settings.json']);
    assert.deepEqual(await listing(2), []);
  });

  test('a truncated image: coded errors, never a crash', T, async () => {
    for (const cut of [4096, 1 * MiB, 4 * MiB, 16 * MiB, 40 * MiB]) {
      try {
        const fs = await openBuf(pristine.subarray(0, cut));
        await readTree(fs);
      } catch (e) {
        assert.ok(e instanceof CofferError, `cut at ${cut}: ${String((e as Error).stack)}`);
      }
    }
    writeFileSync(join(tmp, 'unused'), '');
  });
});
