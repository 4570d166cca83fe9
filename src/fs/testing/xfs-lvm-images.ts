import { spawnSync } from 'node:child_process';
import {
  closeSync,
  ftruncateSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { prng, sh, MiB } from './images.js';

/**
 * Test support (not used by Coffer itself): XFS images made by mkfs.xfs and populated through a real loop mount (as
 * root), and LVM2 physical volumes made by pvcreate/vgcreate on loop devices whose logical volumes are written by
 * vgcfgrestore (no device-mapper here), with filesystem images written into the LVs' extents.
 */

/** mkfs.xfs refuses filesystems under 300 MB unless it runs under fstests; these variables say so. */
const XFS_ENV = { TEST_DIR: '1', TEST_DEV: '1', QA_CHECK_FS: '1' };
export const LVM_ENV = { LVM_SUPPRESS_FD_WARNINGS: '1' };

export const BIG_TIME_MS = Date.UTC(2100, 0, 2, 3, 4, 5); // past 2038: needs the bigtime feature
export const XFS_UNICODE = 'Ünïcödé naïve café ☕ 日本語.txt';
export const LONG_TARGET = '../' + 'a-remote-symlink-target-longer-than-the-inode/'.repeat(14) + 'end';

export interface XfsExpect {
  files: Map<string, Buffer>;
  links: Map<string, string>;
  dirs: Map<string, number>;
}

/** Loop-mounts an image (or a region of it), runs `fn` on the mount point, unmounts. */
export function withMount(img: string, fn: (dir: string) => void, offset = 0): void {
  const dir = `${img}.mnt`;
  mkdirSync(dir, { recursive: true });
  sh('mount', ['-o', `loop${offset ? `,offset=${offset}` : ''}`, img, dir]);
  try {
    fn(dir);
  } finally {
    sh('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

export function mkXfs(img: string, sizeBytes: number, extra: string[] = []): void {
  rmSync(img, { force: true });
  writeFileSync(img, '');
  const fd = openSync(img, 'r+');
  ftruncateSync(fd, sizeBytes);
  closeSync(fd);
  sh('mkfs.xfs', ['-q', '-f', ...extra, img], undefined, XFS_ENV);
}

/**
 * Every XFS directory format and file layout: short-form (5 entries), block (60), leaf (400), node (3000), btree
 * (`btreeEntries`, tens of thousands of long names), a file of 400 extents with holes (a bmap btree), a preallocated
 * (unwritten) range, a 3 MiB file, inline and remote symlinks, unicode names, a timestamp past 2038.
 */
export function populateXfs(dir: string, opts: { btreeEntries?: number; nodeEntries?: number } = {}): XfsExpect {
  const ex: XfsExpect = { files: new Map(), links: new Map(), dirs: new Map() };
  const file = (rel: string, data: Buffer) => {
    writeFileSync(join(dir, rel), data);
    ex.files.set(rel, data);
  };
  const many = (name: string, n: number, long: boolean) => {
    mkdirSync(join(dir, name));
    for (let i = 0; i < n; i++)
      file(
        `${name}/${long ? 'a-rather-long-file-name-to-fill-directory-blocks-' : 'f'}${i}`,
        long ? Buffer.alloc(0) : Buffer.from(`${name} ${i}\n`),
      );
    ex.dirs.set(name, n);
  };
  many('shortform', 5, false);
  many('block', 60, false);
  many('leaf', 400, false);
  many('node', opts.nodeEntries ?? 3000, true); // > ~500 entries overflow one leaf block: node form
  if (opts.btreeEntries) many('btree', opts.btreeEntries, true);
  file('big.bin', prng('xfs-big', 3 * MiB + 321));
  file(XFS_UNICODE, Buffer.from('unicode\n'));
  // 400 separate 4 KiB pieces with holes between them: more extents than the inode holds, so a bmap btree
  const frag = Buffer.alloc(800 * 8192);
  const fd = openSync(join(dir, 'fragmented.bin'), 'w');
  for (let i = 0; i < 400; i++) {
    const piece = prng(`frag${i}`, 4096);
    piece.copy(frag, i * 16384);
    writeSync(fd, piece, 0, 4096, i * 16384);
  }
  ftruncateSync(fd, frag.length);
  closeSync(fd);
  ex.files.set('fragmented.bin', frag);
  // sparse: data at 5 MiB of a 12 MiB file
  const sp = Buffer.alloc(12 * MiB);
  const data = prng('xfs-sparse', 8192);
  data.copy(sp, 5 * MiB);
  const sfd = openSync(join(dir, 'sparse.img'), 'w');
  writeSync(sfd, data, 0, data.length, 5 * MiB);
  ftruncateSync(sfd, sp.length);
  closeSync(sfd);
  ex.files.set('sparse.img', sp);
  // preallocated but never written (unwritten extents read as zeros), then 4 KiB written in the middle
  const pre = Buffer.alloc(2 * MiB);
  const mid = prng('prealloc', 4096);
  mid.copy(pre, MiB);
  writeFileSync(join(dir, 'prealloc.bin'), '');
  sh('xfs_io', ['-c', `falloc 0 ${2 * MiB}`, join(dir, 'prealloc.bin')]);
  const pfd = openSync(join(dir, 'prealloc.bin'), 'r+');
  writeSync(pfd, mid, 0, mid.length, MiB);
  closeSync(pfd);
  ex.files.set('prealloc.bin', pre);
  symlinkSync('shortform/f1', join(dir, 'inline-link'));
  ex.links.set('inline-link', 'shortform/f1');
  symlinkSync(LONG_TARGET, join(dir, 'remote-link'));
  ex.links.set('remote-link', LONG_TARGET);
  file('future.txt', Buffer.from('from 2100\n'));
  utimesSync(join(dir, 'future.txt'), new Date(BIG_TIME_MS), new Date(BIG_TIME_MS));
  lutimesSync(join(dir, 'inline-link'), new Date(BIG_TIME_MS), new Date(BIG_TIME_MS));
  return ex;
}

/** An XFS image populated with populateXfs. */
export function makeXfsImage(
  img: string,
  sizeBytes: number,
  opts: { btreeEntries?: number; nodeEntries?: number; mkfs?: string[] } = {},
): XfsExpect {
  mkXfs(img, sizeBytes, opts.mkfs);
  let ex: XfsExpect | undefined;
  withMount(img, (d) => {
    ex = populateXfs(d, opts);
  });
  return ex!;
}

/** xfs_db's view of an inode field (cross-check). */
export function xfsDb(img: string, ...cmds: string[]): string {
  return sh('xfs_db', ['-r', ...cmds.flatMap((c) => ['-c', c]), img]);
}

// ---------------------------------------------------------------------------------------------------- LVM2

export interface LvmDisk {
  path: string;
  sizeBytes: number;
  /** the PV is in an MBR partition starting here (bytes); 0 = the whole disk is the PV */
  partitionStart: number;
  /** the PV's size (default: to the disk's end) */
  pvBytes?: number;
  /** sfdisk script for the disk (default: one partition of type 8e at partitionStart) */
  table?: string;
}

export interface LvmLayout {
  /** byte offset of the PV inside each disk image */
  pvOffsets: number[];
  peStartBytes: number;
  extentBytes: number;
}

function losetup(args: string[]): string {
  return sh('losetup', args).trim();
}

/**
 * pvcreate on each disk (whole disk, or its first MBR partition), vgcreate `vg` over them with `extentMiB` extents,
 * then `lvText` (the body of a logical_volumes section, in LVM's text format) written with vgcfgrestore --force.
 */
export function makeLvmDisks(disks: LvmDisk[], vg: string, lvText: string, extentMiB = 1): LvmLayout {
  for (const d of disks) {
    writeFileSync(d.path, '');
    const fd = openSync(d.path, 'r+');
    ftruncateSync(fd, d.sizeBytes);
    closeSync(fd);
    if (d.partitionStart)
      sh(
        'sfdisk',
        ['-q', '--no-reread', '--no-tell-kernel', d.path],
        d.table ?? `label: dos\nstart=${d.partitionStart / 512}, type=8e\n`,
      );
  }
  const loops: string[] = [];
  try {
    for (const d of disks)
      loops.push(
        losetup([
          '-f',
          '--show',
          ...(d.partitionStart
            ? ['-o', String(d.partitionStart), '--sizelimit', String(d.pvBytes ?? d.sizeBytes - d.partitionStart)]
            : []),
          d.path,
        ]),
      );
    sh('pvcreate', ['-qy', ...loops], undefined, LVM_ENV);
    sh('vgcreate', ['-q', '-s', `${extentMiB}M`, vg, ...loops], undefined, LVM_ENV);
    const backup = `${disks[0]!.path}.vg.txt`;
    sh('vgcfgbackup', ['-q', '-f', backup, vg], undefined, LVM_ENV);
    let text = readFileSync(backup, 'utf8');
    const peStart = Number(/pe_start = (\d+)/.exec(text)![1]);
    const end = text.lastIndexOf('\n}');
    text = text.slice(0, end) + `\nlogical_volumes {\n${lvText}\n}\n` + text.slice(end + 1);
    writeFileSync(backup, text);
    sh('vgcfgrestore', ['-q', '--force', '-f', backup, vg], undefined, LVM_ENV);
    spawnSync('vgchange', ['-an', vg], { env: { ...process.env, ...LVM_ENV } });
    return { pvOffsets: disks.map((d) => d.partitionStart), peStartBytes: peStart * 512, extentBytes: extentMiB * MiB };
  } finally {
    for (const l of loops) spawnSync('losetup', ['-d', l]);
  }
}

/** LVM's text for one LV: segments as `[type-specific lines]`; visible unless said. */
export function lvSection(name: string, segments: string[], visible = true): string {
  const id = () => {
    const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    let x = '';
    for (let i = 0; i < 32; i++) x += a[(name.charCodeAt(i % name.length) * 7 + i * 13) % a.length];
    return [
      x.slice(0, 6),
      x.slice(6, 10),
      x.slice(10, 14),
      x.slice(14, 18),
      x.slice(18, 22),
      x.slice(22, 26),
      x.slice(26),
    ].join('-');
  };
  const segs = segments.map((s, i) => `segment${i + 1} {\n${s}\n}\n`).join('');
  return `${name} {\nid = "${id()}"\nstatus = ${
    visible ? '["READ", "WRITE", "VISIBLE"]' : '["READ", "WRITE"]'
  }\nflags = []\ncreation_time = 1700000000\ncreation_host = "test"\nsegment_count = ${segments.length}\n${segs}}\n`;
}

export const linearSegment = (start: number, count: number, pv: string, pe: number) =>
  `start_extent = ${start}\nextent_count = ${count}\ntype = "striped"\nstripe_count = 1\nstripes = ["${pv}", ${pe}]`;
export const stripedSegment = (start: number, count: number, stripeSectors: number, areas: [string, number][]) =>
  `start_extent = ${start}\nextent_count = ${count}\ntype = "striped"\nstripe_count = ${areas.length}\nstripe_size ` +
  `= ${stripeSectors}\nstripes = [${areas.map(([p, e]) => `"${p}", ${e}`).join(', ')}]`;

/**
 * Writes `image` into an LV made of `pieces` (in LV order; each a run of extents on a PV, or a striped set): the
 * mapping computed here from the layout, independently of the reader under test.
 */
export function writeIntoLv(
  disks: LvmDisk[],
  layout: LvmLayout,
  image: string,
  segments: { extents: number; stripeBytes?: number; areas: { pv: number; pe: number }[] }[],
): void {
  const data = readFileSync(image);
  const fds = disks.map((d) => openSync(d.path, 'r+'));
  try {
    let lvOff = 0;
    for (const seg of segments) {
      const segBytes = seg.extents * layout.extentBytes;
      const n = seg.areas.length;
      const unit = n === 1 ? segBytes : seg.stripeBytes!;
      for (let o = 0; o < segBytes && lvOff + o < data.length; o += unit) {
        const chunk = o / unit;
        const a = seg.areas[chunk % n]!;
        const areaOff = Math.floor(chunk / n) * unit;
        const at = layout.pvOffsets[a.pv]! + layout.peStartBytes + a.pe * layout.extentBytes + areaOff;
        const piece = data.subarray(lvOff + o, Math.min(lvOff + o + unit, data.length));
        writeSync(fds[a.pv]!, piece, 0, piece.length, at);
      }
      lvOff += segBytes;
    }
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}

/** Copies an image file into a disk image at `offset`. */
export function writeAt(disk: string, offset: number, image: string): void {
  const fd = openSync(disk, 'r+');
  try {
    const data = readFileSync(image);
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}
