import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import {
  linkSync,
  rmSync,
  chmodSync,
  chownSync,
  closeSync,
  ftruncateSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readFileSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { FsNode, GuestFs } from '../index.js';

/**
 * Test support (not used by Coffer itself): guest disk images made with the real tools (e2fsprogs, dosfstools, mtools,
 * sfdisk), and a reader that walks a whole GuestFs. Used by the unit tests beside the readers and by test/files-*.
 */

/** Deterministic incompressible bytes (SHA-256 in counter mode). */
export function prng(seed: string, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let o = 0, ctr = 0; o < length; o += 32)
    createHash('sha256')
      .update(`${seed}:${ctr++}`)
      .digest()
      .copy(out, o, 0, Math.min(32, length - o));
  return out;
}

export function sh(cmd: string, args: string[], input?: string, env: Record<string, string> = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, input, env: { ...process.env, ...env } });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export const MiB = 1024 * 1024;
export const T_MTIME = Date.UTC(2021, 2, 4, 5, 6, 7);
export const T_ATIME = Date.UTC(2022, 0, 1, 0, 0, 1);
export const LONG_NAME = 'a-very-long-file-name-'.padEnd(200, 'x') + '.txt';
export const UNICODE_NAME = 'Ünïcödé naïve café ☕.txt';
export const SLOW_LINK = '../' + 'target-of-a-slow-symlink/'.repeat(4) + 'end';
export const DEEP_LEVELS = 40;
export const MANY_FILES = 600;

export interface Tree {
  root: string;
  /** relative paths of regular files */
  files: string[];
}

/**
 * A source tree with what file-level restore must get right: modes incl. setuid, owners, fixed mtimes/atimes, fast and
 * slow symlinks, a symlink pointing out (../../etc/passwd), a sparse file, a 3 MiB file, a deep directory, a directory
 * with many files (htree on ext4), long and non-ASCII names, an empty file and directory.
 */
/** `owners` (as root only): chowns two entries to 1234:5678 and 1001:1002. */
export function makeTree(root: string, opts: { owners?: boolean } = {}): Tree {
  const files: string[] = [];
  const file = (rel: string, data: Buffer | string, mode = 0o644) => {
    const p = join(root, rel);
    writeFileSync(p, data);
    chmodSync(p, mode);
    utimesSync(p, new Date(T_ATIME), new Date(T_MTIME));
    files.push(rel);
  };
  mkdirSync(join(root, 'etc/app'), { recursive: true });
  mkdirSync(join(root, 'many'), { recursive: true });
  mkdirSync(join(root, 'empty-dir'), { recursive: true });
  file('etc/app/config.ini', '[main]\nkey = value\n', 0o600);
  file('etc/app/run.sh', '#!/bin/sh\necho hi\n', 0o755);
  file('setuid-bin', 'not really a binary\n', 0o4755);
  file('empty-file', '');
  file('big.bin', prng('big', 3 * MiB + 123));
  file(LONG_NAME, 'long name\n');
  file(UNICODE_NAME, 'unicode\n');
  // sparse: a hole at the start, data in the middle, a hole at the end
  const sp = join(root, 'sparse.img');
  const fd = openSync(sp, 'w');
  writeSync(fd, prng('sparse', 8192), 0, 8192, 5 * MiB);
  ftruncateSync(fd, 12 * MiB);
  closeSync(fd);
  utimesSync(sp, new Date(T_ATIME), new Date(T_MTIME));
  files.push('sparse.img');
  let deep = 'deep';
  for (let i = 1; i < DEEP_LEVELS; i++) deep += `/level${i}`;
  mkdirSync(join(root, deep), { recursive: true });
  file(`${deep}/bottom.txt`, 'the bottom\n');
  for (let i = 0; i < MANY_FILES; i++) file(`many/file-number-${String(i).padStart(4, '0')}.txt`, `file ${i}\n`);
  symlinkSync('../setuid-bin', join(root, 'etc/fast-link'));
  symlinkSync(SLOW_LINK, join(root, 'slow-link'));
  symlinkSync('../../etc/passwd', join(root, 'escape-link'));
  sh('mkfifo', [join(root, 'etc/a-fifo')]);
  linkSync(join(root, 'etc/app/run.sh'), join(root, 'hardlink.sh'));
  files.push('hardlink.sh');
  lutimesSync(join(root, 'escape-link'), new Date(T_ATIME), new Date(T_MTIME));
  if (opts.owners && process.getuid?.() === 0) {
    chownSync(join(root, 'etc/app/config.ini'), 1234, 5678);
    chownSync(join(root, 'etc/app'), 1001, 1002);
  }
  chmodSync(join(root, 'etc/app'), 0o750);
  utimesSync(join(root, 'etc/app'), new Date(T_ATIME), new Date(T_MTIME));
  return { root, files };
}

/** A tree for FAT (no symlinks, no owners): long and non-ASCII names, a 3 MiB file, a deep directory, many files. */
export function makeFatTree(root: string): Tree {
  const files: string[] = [];
  const file = (rel: string, data: Buffer | string) => {
    writeFileSync(join(root, rel), data);
    utimesSync(join(root, rel), new Date(T_ATIME), new Date(T_MTIME));
    files.push(rel);
  };
  mkdirSync(join(root, 'Program Files/Some App'), { recursive: true });
  mkdirSync(join(root, 'many'), { recursive: true });
  file('Program Files/Some App/settings.json', '{"a":1}\n');
  file('README.TXT', 'short 8.3 name\n');
  file('big.bin', prng('fatbig', 3 * MiB + 77));
  file(LONG_NAME, 'long name\n');
  file(UNICODE_NAME, 'unicode\n');
  file('empty', '');
  let deep = 'deep';
  for (let i = 1; i < 12; i++) deep += `/level${i}`;
  mkdirSync(join(root, deep), { recursive: true });
  file(`${deep}/bottom.txt`, 'the bottom\n');
  for (let i = 0; i < 300; i++) file(`many/file-number-${String(i).padStart(4, '0')}.txt`, `file ${i}\n`);
  return { root, files };
}

/** mke2fs -d into `img` at byte `offset` (the image must exist when offset > 0). */
export function mkExt(
  img: string,
  type: 'ext2' | 'ext3' | 'ext4',
  src: string,
  sizeBytes: number,
  offset = 0,
  extra: string[] = [],
): void {
  sh('mke2fs', [
    '-q',
    '-F',
    '-t',
    type,
    ...extra,
    '-d',
    src,
    ...(offset ? ['-E', `offset=${offset}`] : []),
    img,
    `${Math.floor(sizeBytes / 1024)}k`,
  ]);
}

/** mkfs.fat + mcopy of `src`'s contents into `img` at byte `offset`. */
export function mkFat(img: string, bits: 12 | 16 | 32, src: string | undefined, sizeBytes: number, offset = 0): void {
  if (offset === 0) rmSync(img, { force: true });
  sh('mkfs.fat', [
    '-F',
    String(bits),
    ...(bits === 16 && sizeBytes <= 16 * MiB ? ['-s', '1'] : []),
    ...(offset ? ['--offset', String(offset / 512)] : ['-C']),
    img,
    String(Math.floor(sizeBytes / 1024)),
  ]);
  // FAT stores local wall-clock times: mtools writes them in TZ=UTC so that they read back as the UTC times we set
  if (src)
    sh(
      'mcopy',
      ['-s', '-p', '-m', '-i', `${img}@@${offset}`, ...listDir(src).map((n) => join(src, n)), '::/'],
      undefined,
      { TZ: 'UTC' },
    );
}

function listDir(d: string): string[] {
  return sh('ls', ['-A', d]).split('\n').filter(Boolean);
}

/** An empty raw disk of `sizeBytes` with an MBR or GPT laid out by sfdisk's script format. */
export function partitionDisk(img: string, sizeBytes: number, script: string): void {
  writeFileSync(img, '');
  const fd = openSync(img, 'r+');
  ftruncateSync(fd, sizeBytes);
  closeSync(fd);
  sh('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', img], script);
}

/** Partition start and size in bytes as sfdisk reports them. */
export function partitionsOf(img: string): { start: number; size: number }[] {
  const j = JSON.parse(sh('sfdisk', ['--json', img])) as {
    partitiontable: { partitions: { start: number; size: number }[]; sectorsize?: number };
  };
  return j.partitiontable.partitions.map((p) => ({ start: p.start * 512, size: p.size * 512 }));
}

/** Overwrites bytes of a file. */
export function patch(path: string, offset: number, bytes: Buffer | number[]): void {
  const fd = openSync(path, 'r+');
  const b = Buffer.from(bytes as Buffer);
  writeSync(fd, b, 0, b.length, offset);
  closeSync(fd);
}

/** Offsets of every occurrence of `needle` in the file. */
export function findAll(path: string, needle: Buffer | string): number[] {
  const data = readFileSync(path);
  const n = typeof needle === 'string' ? Buffer.from(needle) : needle;
  const out: number[] = [];
  for (let i = data.indexOf(n); i >= 0; i = data.indexOf(n, i + 1)) out.push(i);
  return out;
}

/** Reads everything under `dir`: path -> node, content (files) and link text (symlinks). */
export async function readTree(
  fs: GuestFs,
  dir?: FsNode,
  prefix = '',
): Promise<Map<string, { node: FsNode; data?: Buffer; link?: string; dataBytes?: number }>> {
  const out = new Map<string, { node: FsNode; data?: Buffer; link?: string; dataBytes?: number }>();
  for (const n of await fs.list(dir ?? (await fs.root()))) {
    const p = prefix + n.name;
    if (n.type === 'file' && n.sizeBytes > 256 * MiB) {
      let dataBytes = 0; // (hostile sizes: count, do not keep)
      for await (const piece of fs.read(n)) dataBytes += piece.data.length;
      out.set(p, { node: n, dataBytes });
    } else if (n.type === 'file') {
      const data = Buffer.alloc(n.sizeBytes);
      let dataBytes = 0;
      for await (const piece of fs.read(n)) {
        assert.ok(piece.offset + piece.data.length <= n.sizeBytes, `${p}: piece past the end`);
        piece.data.copy(data, piece.offset);
        dataBytes += piece.data.length;
      }
      out.set(p, { node: n, data, dataBytes });
    } else if (n.type === 'symlink') out.set(p, { node: n, link: await fs.readlink(n) });
    else out.set(p, { node: n });
    if (n.type === 'dir') for (const [k, v] of await readTree(fs, n, p + '/')) out.set(k, v);
  }
  return out;
}

/** An ext4 (1 KiB blocks) whose 400 KB file `big` was written by debugfs into the holes of deleted files. */
export function makeFragmentedExt(tmp: string): { img: string; big: string } {
  const dir = join(tmp, `frag-${Math.random().toString(36).slice(2)}`);
  sh('mkdir', ['-p', join(dir, 's')]);
  for (let i = 1; i <= 300; i++) writeFileSync(join(dir, 's', `f${i}`), 'a'.repeat(3072));
  const img = join(dir, 'fr.img');
  mkExt(img, 'ext4', join(dir, 's'), 4 * MiB, 0, ['-b', '1024', '-O', '^metadata_csum']);
  const big = join(dir, 'big');
  sh('dd', ['if=/dev/urandom', `of=${big}`, 'bs=1000', 'count=400', 'status=none']);
  const cmds = [];
  for (let i = 1; i <= 300; i += 2) cmds.push(`rm /f${i}`);
  cmds.push(`write ${big} big`);
  sh('debugfs', ['-w', '-f', '-', img], cmds.join('\n') + '\n');
  const ex = sh('debugfs', ['-R', 'ex /big', img]);
  assert.ok(ex.split('\n').length > 10, `big is not fragmented:\n${ex}`);
  return { img, big };
}
