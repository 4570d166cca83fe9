import type { FsNode } from '../fs/index.js';
import type { Repository } from '../repository/index.js';
import { CofferError, type Op } from '../shared/index.js';
import type { CodecPool } from './codec-pool.js';
import { denseContent, openGuest, resolve, splitPath, unsafeName, type GuestLocation } from './file-restore.js';

/**
 * A directory of a guest filesystem as a tar stream (POSIX pax: ustar headers, a pax 'x' record for names, link
 * targets or sizes that ustar cannot hold). Regular files, directories and symlinks (target text as stored, never
 * followed); other types and entries with unsafe names are skipped and counted. Bounded: the data sent is at most the
 * partition's size (files sharing blocks in a hostile filesystem) and at most `maxEntries` entries are walked.
 */

const BLOCK = 512;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

function octal(buf: Buffer, off: number, len: number, value: number): boolean {
  const s = Math.max(0, Math.floor(value)).toString(8);
  if (s.length > len - 1) {
    buf.write('0'.repeat(len - 1), off, 'latin1');
    return false;
  }
  buf.write(s.padStart(len - 1, '0') + '\0', off, 'latin1');
  return true;
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return Buffer.from(`${len}${body}`, 'utf8');
}

function header(
  name: string,
  o: {
    type: '0' | '5' | '2' | 'x';
    size: number;
    mode: number;
    uid: number;
    gid: number;
    mtimeMs?: number | undefined;
    linkname?: string;
  },
): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  octal(h, 100, 8, o.mode & 0o7777);
  octal(h, 108, 8, o.uid);
  octal(h, 116, 8, o.gid);
  octal(h, 124, 12, o.size);
  octal(h, 136, 12, (o.mtimeMs ?? 0) / 1000);
  h.write(o.type, 156, 1, 'latin1');
  if (o.linkname) h.write(o.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

const fitsUstar = (s: string, max: number) => /^[\x20-\x7e]*$/.test(s) && s.length <= max;

/** The header blocks of one entry: a pax record first where ustar fields cannot hold the name, target, size or ids. */
export function tarEntryHeader(name: string, o: Parameters<typeof header>[1]): Buffer {
  const pax: Buffer[] = [];
  if (!fitsUstar(name, 99)) pax.push(paxRecord('path', name));
  if (o.linkname !== undefined && !fitsUstar(o.linkname, 99)) pax.push(paxRecord('linkpath', o.linkname));
  if (o.size > 0o77777777777) pax.push(paxRecord('size', String(o.size)));
  if (o.uid > 0o7777777) pax.push(paxRecord('uid', String(o.uid)));
  if (o.gid > 0o7777777) pax.push(paxRecord('gid', String(o.gid)));
  const main = header(fitsUstar(name, 99) ? name : 'PaxHeader-name'.slice(0, 99), {
    ...o,
    ...(o.linkname !== undefined ? { linkname: fitsUstar(o.linkname, 99) ? o.linkname : '' } : {}),
    size: o.size > 0o77777777777 ? 0 : o.size,
    uid: o.uid > 0o7777777 ? 0 : o.uid,
    gid: o.gid > 0o7777777 ? 0 : o.gid,
  });
  if (pax.length === 0) return main;
  const body = Buffer.concat(pax);
  return Buffer.concat([
    header('PaxHeader', { type: 'x', size: body.length, mode: 0o644, uid: 0, gid: 0, mtimeMs: o.mtimeMs }),
    pad(body),
    main,
  ]);
}

function pad(b: Buffer): Buffer {
  const rest = b.length % BLOCK;
  return rest === 0 ? b : Buffer.concat([b, Buffer.alloc(BLOCK - rest)]);
}

export interface GuestArchive {
  filesystem: string;
  partition: number | string;
  /** the archived directory's name (the tar's top-level directory) */
  name: string;
  /** the tar stream; counts are final once it is read to the end */
  content(): AsyncGenerator<Buffer, void, undefined>;
  stats: { files: number; dirs: number; symlinks: number; skipped: number; bytes: number };
  close(): Promise<void>;
}

const MAX_DEPTH = 2048;

/** Opens PATH (a directory, or a single file) of a guest filesystem for streaming as tar. */
export async function openGuestArchive(
  repo: Repository,
  pool: CodecPool,
  loc: GuestLocation & { path: string; maxEntries?: number },
  op: Op = {},
): Promise<GuestArchive> {
  const g = await openGuest(repo, pool, loc, op);
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= g.close());
  try {
    const parts = splitPath(loc.path);
    const path = '/' + parts.join('/');
    const top = await resolve(g.fs, path, op);
    if (top.error) throw top.error;
    if (top.type !== 'dir' && top.type !== 'file')
      throw new CofferError('USAGE', `${path} is a ${top.type}: archive a directory or a regular file`);
    const name = parts.at(-1) ?? 'root';
    const fs = g.fs;
    const limit = g.partition.sizeBytes;
    const maxEntries = loc.maxEntries ?? 1_000_000;
    const stats = { files: 0, dirs: 0, symlinks: 0, skipped: 0, bytes: 0 };
    let entries = 0;
    const visited = new Set<string>();
    async function* file(node: FsNode, tarName: string): AsyncGenerator<Buffer> {
      if (node.sizeBytes > limit - stats.bytes)
        throw new CofferError(
          'FS_CORRUPT',
          `${tarName}: the files archived would hold more data than the partition (${limit} bytes)`,
        );
      yield tarEntryHeader(tarName, {
        type: '0',
        size: node.sizeBytes,
        mode: node.mode,
        uid: node.uid,
        gid: node.gid,
        mtimeMs: node.mtimeMs,
      });
      yield* denseContent(fs, node, tarName, op);
      const rest = node.sizeBytes % BLOCK;
      if (rest) yield ZERO_BLOCK.subarray(0, BLOCK - rest);
      stats.bytes += node.sizeBytes;
      stats.files++;
    }
    async function* walk(node: FsNode, tarName: string, depth: number): AsyncGenerator<Buffer> {
      op.signal?.throwIfAborted();
      if (++entries > maxEntries)
        throw new CofferError('FS_UNSUPPORTED', `more than ${maxEntries} entries: archive a smaller directory`);
      if (node.error) {
        stats.skipped++;
        return;
      }
      if (node.type === 'file') yield* file(node, tarName);
      else if (node.type === 'symlink') {
        const target = await fs.readlink(node, op);
        yield tarEntryHeader(tarName, {
          type: '2',
          size: 0,
          mode: node.mode,
          uid: node.uid,
          gid: node.gid,
          mtimeMs: node.mtimeMs,
          linkname: target,
        });
        stats.symlinks++;
      } else if (node.type === 'dir') {
        if (depth > MAX_DEPTH || visited.has(node.id))
          throw new CofferError('FS_CORRUPT', `${tarName}: directories nested too deep or in a cycle`);
        visited.add(node.id);
        yield tarEntryHeader(tarName + '/', {
          type: '5',
          size: 0,
          mode: node.mode,
          uid: node.uid,
          gid: node.gid,
          mtimeMs: node.mtimeMs,
        });
        stats.dirs++;
        for (const c of await fs.list(node, op)) {
          if (unsafeName(c.name)) {
            stats.skipped++;
            continue;
          }
          yield* walk(c, `${tarName}/${c.name}`, depth + 1);
        }
      } else stats.skipped++;
    }
    async function* content(): AsyncGenerator<Buffer, void, undefined> {
      yield* walk(top, name, 0);
      yield Buffer.alloc(BLOCK * 2); // end of archive
    }
    return { filesystem: fs.kind, partition: g.partition.number, name, content, stats, close };
  } catch (e) {
    await close();
    throw e;
  }
}
