import assert from 'node:assert/strict';
import {
  closeSync,
  ftruncateSync,
  linkSync,
  mkdirSync,
  openSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { LONG_NAME, MiB, prng, sh, T_ATIME, T_MTIME, UNICODE_NAME, type Tree } from './images.js';

/**
 * Test support (not used by Coffer itself): NTFS images made by the real tools (docs/DESIGN.md §NTFS reader):
 * mkntfs (ntfs-3g) formats, wimlib's wimcapture + wimapply writes a source tree straight onto the image through
 * libntfs-3g (directories, hard links, symlinks as reparse points, sparse files), and ntfscp adds what a Linux tree
 * cannot carry: LZNT1-compressed files (created in the root of a volume made with `mkntfs -C`, whose root directory is
 * compressed, before wimapply), alternate data streams (`ntfscp -N`) and a junction (`ntfscp -i -a 0xC0` writes a
 * mount-point reparse buffer, built below, onto an empty directory).
 */

export const NTFS_MANY = 600;
export const ADS_NAME = 'Zone.Identifier';
export const ADS_DATA = '[ZoneTransfer]\r\nZoneId=3\r\n';
export const JUNCTION_TARGET = 'C:\\Users\\Public';

export interface NtfsTree extends Tree {
  /** files ntfscp wrote compressed: name in the root -> content */
  compressed: Map<string, Buffer>;
}

/** The source tree for wimcapture. */
export function makeNtfsTree(root: string): Tree {
  const files: string[] = [];
  const file = (rel: string, data: Buffer | string) => {
    writeFileSync(join(root, rel), data);
    utimesSync(join(root, rel), new Date(T_ATIME), new Date(T_MTIME));
    files.push(rel);
  };
  mkdirSync(join(root, 'Program Files/Some App'), { recursive: true });
  mkdirSync(join(root, 'many'), { recursive: true });
  mkdirSync(join(root, 'junction'), { recursive: true });
  mkdirSync(join(root, 'empty-dir'), { recursive: true });
  file('Program Files/Some App/settings.json', '{"a":1}\n');
  file('README.TXT', 'short 8.3 name\n');
  file('big.bin', prng('ntfsbig', 6 * MiB + 77));
  file(LONG_NAME, 'long name\n');
  file(UNICODE_NAME, 'unicode\n');
  file('日本語のファイル名.txt', 'japanese\n');
  file('empty', '');
  file('with-stream.txt', 'the unnamed stream\n');
  const sp = join(root, 'sparse.img');
  const fd = openSync(sp, 'w');
  writeSync(fd, prng('sparse', 8192), 0, 8192, 5 * MiB);
  ftruncateSync(fd, 12 * MiB);
  closeSync(fd);
  utimesSync(sp, new Date(T_ATIME), new Date(T_MTIME));
  files.push('sparse.img');
  let deep = 'deep';
  for (let i = 1; i < 12; i++) deep += `/level${i}`;
  mkdirSync(join(root, deep), { recursive: true });
  file(`${deep}/bottom.txt`, 'the bottom\n');
  for (let i = 0; i < NTFS_MANY; i++) file(`many/file-number-${String(i).padStart(4, '0')}.txt`, `file ${i}\n`);
  linkSync(join(root, 'Program Files/Some App/settings.json'), join(root, 'hardlink.json'));
  files.push('hardlink.json');
  symlinkSync('Program Files/Some App/settings.json', join(root, 'rel-link'));
  symlinkSync('deep/level1', join(root, 'dir-link'));
  return { root, files };
}

/** Content for the compressed files: compressible text, incompressible bytes, a run of zeros (both kinds of units). */
export function compressedContent(seed: string): Buffer {
  const text = Buffer.from(
    Array.from({ length: 4000 }, (_, i) => `line ${i} of some text that compresses well\n`).join(''),
  );
  return Buffer.concat([text, prng(seed, 150_000), Buffer.alloc(200_000), text.subarray(0, 33_333)]);
}

/**
 * A mount-point (junction) reparse buffer for `target` (MS-FSCC 2.1.2.5): substitute name \??\target, print name
 * target.
 */
export function junctionBuffer(target: string): Buffer {
  const sub = Buffer.from(`\\??\\${target}`, 'utf16le');
  const print = Buffer.from(target, 'utf16le');
  const names = Buffer.concat([sub, Buffer.alloc(2), print, Buffer.alloc(2)]);
  const hdr = Buffer.alloc(8);
  hdr.writeUInt16LE(0, 0);
  hdr.writeUInt16LE(sub.length, 2);
  hdr.writeUInt16LE(sub.length + 2, 4);
  hdr.writeUInt16LE(print.length, 6);
  const body = Buffer.concat([hdr, names]);
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0xa0000003, 0);
  head.writeUInt16LE(body.length, 4);
  return Buffer.concat([head, body]);
}

/** The MFT record number of `name` in directory `dir` of the image (ntfsls -i). */
export function ntfsRecordOf(img: string, dir: string, name: string, offset = 0): number {
  const out = sh('ntfsls', ['-i', '-a', ...(dir !== '/' ? ['-p', dir] : []), offsetDev(img, offset)]);
  const line = out.split('\n').find((l) => l.trim().split(/\s+/).slice(1).join(' ') === name);
  assert.ok(line, `${name} not found in ${dir}:\n${out}`);
  return Number(line.trim().split(/\s+/)[0]);
}

/** ntfs-3g tools take a file; an image at an offset is worked on as a separate file and copied back. */
function offsetDev(img: string, offset: number): string {
  assert.equal(offset, 0, 'ntfs-3g tools work on whole images: build at offset 0 and copy in with placeNtfs');
  return img;
}

/**
 * mkntfs + compressed files (ntfscp into the compressed root) + wimapply of `src` + ADS + junction, into `img` (a
 * file of `sizeBytes`, created). Returns the compressed files written.
 */
export function mkNtfs(img: string, src: string, sizeBytes: number, tmp: string): Map<string, Buffer> {
  writeFileSync(img, '');
  const fd = openSync(img, 'r+');
  ftruncateSync(fd, sizeBytes);
  closeSync(fd);
  sh('mkntfs', ['-F', '-Q', '-C', '-s', '512', '-c', '4096', '-L', 'CofferTest', img]);
  const compressed = new Map<string, Buffer>();
  for (const name of ['compressed.txt', 'compressed-2.bin']) {
    const data = compressedContent(name);
    const p = join(tmp, name);
    writeFileSync(p, data);
    sh('ntfscp', [img, p, `/${name}`]);
    compressed.set(name, data);
  }
  const wim = join(tmp, `tree-${Math.random().toString(36).slice(2)}.wim`);
  sh('wimcapture', [src, wim, '--compress=none', '--no-acls']);
  sh('wimapply', [wim, img, '--no-acls']);
  const ads = join(tmp, 'ads');
  writeFileSync(ads, ADS_DATA);
  sh('ntfscp', ['-N', ADS_NAME, img, ads, '/with-stream.txt']);
  writeFileSync(ads, 'second stream');
  sh('ntfscp', ['-N', 'second', img, ads, '/with-stream.txt']);
  // 14 resident streams overflow one 1 KiB record: libntfs-3g moves attributes to extension records ($ATTRIBUTE_LIST)
  for (let i = 1; i <= 14; i++) {
    writeFileSync(ads, manyStreamData(i));
    sh('ntfscp', ['-N', `stream${i}`, img, ads, '/many-streams.txt']);
  }
  const jb = join(tmp, 'junction.bin');
  writeFileSync(jb, junctionBuffer(JUNCTION_TARGET));
  sh('ntfscp', ['-i', '-a', '0xC0', img, jb, String(ntfsRecordOf(img, '/', 'junction'))]);
  return compressed;
}

export function manyStreamData(i: number): Buffer {
  return prng(`stream${i}`, 400);
}

/** Raw access to MFT record `n` of a fresh image (its MFT is one run): byte offset in the volume. */
export function recordOffset(vol: Buffer, n: number): number {
  const cb = vol.readUInt16LE(11) * vol[13]!;
  const off = Number(vol.readBigUInt64LE(48)) * cb + n * 1024;
  assert.equal(vol.subarray(off, off + 4).toString('latin1'), 'FILE');
  assert.equal(vol.readUInt32LE(off + 44), n, 'record number field');
  return off;
}

/** Offset (in the volume) of the first attribute of `type` (and name) in the record at `rec`. */
export function attrOffset(vol: Buffer, rec: number, type: number, name = ''): number {
  let p = rec + vol.readUInt16LE(rec + 20);
  while (vol.readUInt32LE(p) !== 0xffffffff) {
    const nl = vol[p + 9]!;
    const an = vol.subarray(p + vol.readUInt16LE(p + 10), p + vol.readUInt16LE(p + 10) + nl * 2).toString('utf16le');
    if (vol.readUInt32LE(p) === type && an === name) return p;
    p += vol.readUInt32LE(p + 4);
  }
  assert.fail(`no attribute 0x${type.toString(16)} ${name} in the record at ${rec}`);
}

/** Copies a whole-volume image into a disk image at `offset`. */
export function placeNtfs(vol: string, disk: string, offset: number): void {
  sh('dd', [`if=${vol}`, `of=${disk}`, 'bs=1M', `seek=${offset}`, 'oflag=seek_bytes', 'conv=notrunc', 'status=none']);
}
