import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CofferError } from '../../shared/index.js';
import { FileReader, openFilesystem, type BlockReader } from '../index.js';
import { makeTree, mkExt, readTree, MiB, type Tree } from '../testing/images.js';
import {
  linearSegment,
  lvSection,
  makeLvmDisks,
  makeXfsImage,
  stripedSegment,
  writeIntoLv,
  type LvmDisk,
  type LvmLayout,
  type XfsExpect,
} from '../testing/xfs-lvm-images.js';
import { parseConfig } from './config-text.js';
import { lvmCrc } from './label.js';
import { scanVolumeGroups } from './physical-volumes.js';

const T = { timeout: 180_000 };
const asRoot = process.getuid?.() === 0;

async function openAll(paths: string[]): Promise<{ readers: FileReader[]; close(): Promise<void> }> {
  const readers = await Promise.all(paths.map((p) => FileReader.open(p)));
  return { readers, close: async () => void (await Promise.all(readers.map((r) => r.close()))) };
}

function expectCoded(e: unknown): CofferError {
  assert.ok(e instanceof CofferError, `not a coded error: ${String((e as Error)?.stack ?? e)}`);
  return e;
}

/** Rewrites the committed metadata text of the PV at `pvOffset` of `disk` (text, length, text and header checksums). */
function rewriteMetadata(disk: string, pvOffset: number, edit: (text: string) => string | Buffer): void {
  const b = readFileSync(disk);
  const mdaAt = pvOffset + 4096; // pvcreate's default first metadata area
  const h = b.subarray(mdaAt, mdaAt + 512);
  assert.equal(h.toString('latin1', 4, 20), ' LVM2 x[5A%r0N*>');
  const off = Number(h.readBigUInt64LE(40));
  const len = Number(h.readBigUInt64LE(48));
  const text = b.subarray(mdaAt + off, mdaAt + off + len).toString('utf8');
  const edited = edit(text);
  const nb = typeof edited === 'string' ? Buffer.from(edited) : edited;
  nb.copy(b, mdaAt + off);
  h.writeBigUInt64LE(BigInt(nb.length), 48);
  h.writeUInt32LE(lvmCrc(nb), 56);
  h.writeUInt32LE(lvmCrc(h.subarray(4)), 0);
  writeFileSync(disk, b);
}

describe('LVM2 volume groups made by pvcreate/vgcreate/vgcfgrestore', {
  skip: !asRoot && 'needs root (loop devices)',
}, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'coffer-lvm-'));
  const disks: LvmDisk[] = [
    { path: join(tmp, 'disk0.raw'), sizeBytes: 64 * MiB, partitionStart: 0 }, // the whole disk is a PV
    { path: join(tmp, 'disk1.raw'), sizeBytes: 64 * MiB, partitionStart: MiB }, // a PV in MBR partition 1
  ];
  let layout: LvmLayout;
  let tree: Tree;
  let xfs: XfsExpect;
  before(() => {
    const lvs = [
      lvSection('root', [linearSegment(0, 16, 'pv0', 0), linearSegment(16, 8, 'pv1', 0)]),
      lvSection('data', [
        stripedSegment(0, 32, 128, [
          ['pv0', 16],
          ['pv1', 8],
        ]),
      ]),
      lvSection('pool', [
        'start_extent = 0\nextent_count = 4\ntype = "thin-pool"\nmetadata = "pool_tmeta"\npool = ' +
          '"pool_tdata"\ntransaction_id = 0\nchunk_size = 128\ndiscards = "passdown"\nzero_new_blocks = 1',
      ]),
      lvSection('thin1', [
        'start_extent = 0\nextent_count = 8\ntype = "thin"\nthin_pool = "pool"\ntransaction_id = 0\ndevice_id = 1',
      ]),
      lvSection('pool_tmeta', [linearSegment(0, 1, 'pv0', 40)], false),
      lvSection('pool_tdata', [linearSegment(0, 4, 'pv0', 41)], false),
    ].join('');
    layout = makeLvmDisks(disks, 'vg0', lvs);
    tree = makeTree(join(tmp, 'src'));
    const root = join(tmp, 'root.img');
    mkExt(root, 'ext4', tree.root, 24 * MiB);
    writeIntoLv(disks, layout, root, [
      { extents: 16, areas: [{ pv: 0, pe: 0 }] },
      { extents: 8, areas: [{ pv: 1, pe: 0 }] },
    ]);
    const data = join(tmp, 'data.img');
    xfs = makeXfsImage(data, 32 * MiB);
    writeIntoLv(disks, layout, data, [
      {
        extents: 32,
        stripeBytes: 64 * 1024,
        areas: [
          { pv: 0, pe: 16 },
          { pv: 1, pe: 8 },
        ],
      },
    ]);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test(
    'a VG over two disks: linear and striped LVs read back; thin pools and thin LVs are refused by segment type',
    T,
    async () => {
      const { readers, close } = await openAll(disks.map((d) => d.path));
      try {
        const vgs = await scanVolumeGroups(readers);
        assert.deepEqual(vgs.warnings, []);
        const list = vgs.list();
        assert.deepEqual(
          list.map((l) => [l.name, l.sizeBytes, l.segmentTypes.join('+'), l.disks.join(','), l.problem === undefined]),
          [
            ['vg0/root', 24 * MiB, 'linear+linear', '0,1', true],
            ['vg0/data', 32 * MiB, 'striped', '0,1', true],
            ['vg0/pool', 4 * MiB, 'thin-pool', '0,1', false],
            ['vg0/thin1', 8 * MiB, 'thin', '0,1', false],
          ],
        );
        for (const name of ['vg0/pool', 'vg0/thin1']) {
          assert.throws(
            () => vgs.open(name),
            (e: unknown) => expectCoded(e).code === 'FS_UNSUPPORTED' && /segment type thin/.test((e as Error).message),
          );
        }
        const ext = await openFilesystem(vgs.open('vg0/root'));
        assert.equal(ext.kind, 'ext4');
        const got = await readTree(ext);
        for (const rel of tree.files) assert.ok(got.get(rel)!.data!.equals(readFileSync(join(tree.root, rel))), rel);
        const x = await openFilesystem(vgs.open('vg0/data'));
        assert.equal(x.kind, 'xfs');
        const gx = await readTree(x);
        for (const [rel, data] of xfs.files) assert.ok(gx.get(rel)!.data!.equals(data), rel);
        assert.throws(
          () => vgs.open('vg0/nope'),
          (e: unknown) => expectCoded(e).code === 'NOT_FOUND',
        );
      } finally {
        await close();
      }
    },
  );

  test('a VG missing one of its disks: LVs on the missing PV say so, the others still read', T, async () => {
    const img = join(tmp, 'solo.raw');
    copyFileSync(disks[0]!.path, img);
    const { readers, close } = await openAll([img]);
    try {
      const vgs = await scanVolumeGroups(readers);
      const root = vgs.list().find((l) => l.name === 'vg0/root')!;
      assert.match(root.problem!, /pv1 .* none of the disks/);
      assert.throws(
        () => vgs.open('vg0/root'),
        (e: unknown) => expectCoded(e).code === 'FS_CORRUPT',
      );
    } finally {
      await close();
    }
  });

  test('a snapshot (its COW store) is refused naming the segment type', T, async () => {
    const d0 = join(tmp, 'snap0.raw');
    const d1 = join(tmp, 'snap1.raw');
    copyFileSync(disks[0]!.path, d0);
    copyFileSync(disks[1]!.path, d1);
    rewriteMetadata(d0, 0, (t) =>
      t
        .replace(/seqno = (\d+)/, (_, n) => `seqno = ${Number(n) + 1}`)
        .replace(
          'logical_volumes {',
          `logical_volumes {\n${lvSection('snap', [linearSegment(0, 2, 'pv0', 50)])}` +
            lvSection(
              'snapshot0',
              [
                'start_extent = 0\nextent_count = 24\ntype = "snapshot"\n' +
                  'chunk_size = 8\norigin = "root"\ncow_store = "snap"',
              ],
              false,
            ),
        ),
    );
    const { readers, close } = await openAll([d0, d1]);
    try {
      const vgs = await scanVolumeGroups(readers);
      const snap = vgs.list().find((l) => l.name === 'vg0/snap')!;
      assert.match(snap.problem!, /snapshot of root \(segment type snapshot/);
      assert.ok(
        vgs.list().find((l) => l.name === 'vg0/root' && !l.problem),
        'the origin still reads',
      );
    } finally {
      await close();
    }
  });

  test(
    'hostile metadata: deep nesting, huge numbers, PV areas past the disk, bad checksums: coded errors',
    T,
    async () => {
      const cases: [string, (t: string) => string | Buffer, RegExp][] = [
        [
          'deep',
          (t) => t.replace('logical_volumes {', 'logical_volumes {\n' + 'a {'.repeat(5000) + '}'.repeat(5000)),
          /nested deeper/,
        ],
        [
          'deep-array',
          (t) => t.replace('flags = []', 'flags = ' + '['.repeat(5000) + ']'.repeat(5000)),
          /nested deeper/,
        ],
        ['huge', (t) => t.replace(/extent_size = \d+/, 'extent_size = 99999999999999999999999999999'), /too large/],
        ['outside', (t) => t.replace(/("pv0",\s*)16/, '$19000000'), /past the/],
        ['unterminated', (t) => t.replace(/"vg0"|"lvm2"/, '"lvm2'), /unterminated|expected|not closed/],
      ];
      for (const [name, edit, expect] of cases) {
        const d0 = join(tmp, `h-${name}.raw`);
        copyFileSync(disks[0]!.path, d0);
        rewriteMetadata(d0, 0, edit);
        const { readers, close } = await openAll([d0, disks[1]!.path]);
        try {
          // the other PV's (intact) copy has the same seqno: the damaged copy is reported, the VG still found
          const vgs = await scanVolumeGroups(readers);
          const said = [...vgs.warnings, ...vgs.list().map((l) => l.problem ?? '')].join('\n');
          assert.match(said, expect, name);
          if (name !== 'outside')
            assert.ok(
              vgs.list().find((l) => l.name === 'vg0/root' && !l.problem),
              `${name}: the intact copy on the other PV is used`,
            );
        } finally {
          await close();
        }
      }
      // a corrupted label checksum: the PV is skipped with a warning
      const d0 = join(tmp, 'h-label.raw');
      copyFileSync(disks[0]!.path, d0);
      const b = readFileSync(d0);
      b[512 + 100] ^= 0xff;
      writeFileSync(d0, b);
      const { readers, close } = await openAll([d0, disks[1]!.path]);
      try {
        const vgs = await scanVolumeGroups(readers);
        assert.match(vgs.warnings.join('\n'), /label in sector 1 has a bad checksum/);
      } finally {
        await close();
      }
    },
  );

  test(
    'fuzz: seeded mutations of the label, metadata header and text never crash, hang or throw uncoded',
    T,
    async () => {
      const orig = readFileSync(disks[0]!.path).subarray(0, 2 * MiB);
      const textAt = 4096 + Number(orig.readBigUInt64LE(4096 + 40));
      const text = orig.subarray(textAt, textAt + Number(orig.readBigUInt64LE(4096 + 48))).toString('utf8');
      assert.match(text, /logical_volumes/);
      const other = await FileReader.open(disks[1]!.path);
      let seed = 0x5eed;
      const rnd = (n: number) => {
        seed = (seed * 1103515245 + 12345) >>> 0;
        return seed % n;
      };
      let coded = 0;
      let ok = 0;
      for (let i = 0; i < 200; i++) {
        const img = Buffer.from(orig);
        if (i % 2 === 0) {
          // structural: flip bytes of the label sector or metadata header (checksums then mostly refuse)
          for (let k = 0; k < 1 + rnd(4); k++) img[[512, 4096][rnd(2)]! + rnd(512)] ^= 1 + rnd(255);
        } else {
          // semantic: mutate the text and fix every checksum, so the parser and the mapping see it
          const t = Buffer.from(text);
          for (let k = 0; k < 1 + rnd(6); k++) {
            const at = rnd(t.length);
            const pick = rnd(4);
            if (pick === 0) t[at] = '{}[]="0123456789,#\n'.charCodeAt(rnd(19));
            else if (pick === 1) t[at] = rnd(256);
            else if (pick === 2) t.write('99999999999', at);
            else t.write('0', at);
          }
          const h = img.subarray(4096, 4096 + 512);
          t.copy(img, 4096 + Number(h.readBigUInt64LE(40)));
          h.writeUInt32LE(lvmCrc(t), 56);
          h.writeUInt32LE(lvmCrc(h.subarray(4)), 0);
        }
        const reader: BlockReader = {
          sizeBytes: 64 * MiB,
          read: async (o, l) => (o + l <= img.length ? Buffer.from(img.subarray(o, o + l)) : Buffer.alloc(l)),
        };
        try {
          const vgs = await scanVolumeGroups([reader, other]);
          for (const lv of vgs.list()) {
            try {
              const r = vgs.open(lv.name);
              await r.read(0, Math.min(r.sizeBytes, 65536));
              ok++;
            } catch (e) {
              expectCoded(e);
              coded++;
            }
          }
        } catch (e) {
          expectCoded(e);
          coded++;
        }
      }
      await other.close();
      assert.ok(ok > 20 && coded > 20, `${ok} LVs opened, ${coded} coded refusals`);
    },
  );

  test('the config-text parser: values, arrays, sections, comments, escapes; bounded', () => {
    const c = parseConfig('a = 1\nb = "x\\"y" # c\nl = [1, "two", [3]]\ns {\n t = -4\n}\n');
    assert.deepEqual(JSON.parse(JSON.stringify(c)), { a: 1, b: 'x"y', l: [1, 'two', [3]], s: { t: -4 } });
    assert.throws(
      () => parseConfig('a = 123456789012345678901234'),
      (e: unknown) => expectCoded(e).code === 'FS_CORRUPT',
    );
    assert.throws(
      () => parseConfig('x {'),
      (e: unknown) => expectCoded(e).code === 'FS_CORRUPT',
    );
    assert.throws(
      () => parseConfig('}'),
      (e: unknown) => expectCoded(e).code === 'FS_CORRUPT',
    );
    assert.throws(
      () => parseConfig('a = ' + '['.repeat(100000)),
      (e: unknown) => expectCoded(e).code === 'FS_CORRUPT',
    );
    const proto = parseConfig('__proto__ { polluted = 1 }');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.ok(Object.hasOwn(proto, '__proto__')); // kept as an own key, not turned into a prototype
  });
});
