import { constants } from 'node:fs';
import { chmod, chown, lchown, link, lstat, lutimes, mkdir, open, symlink, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import {
  checkRange,
  listPartitions,
  openFilesystem,
  probeFilesystem,
  scanVolumeGroups,
  selectVolume,
  type BlockReader,
  type FsNode,
  type GuestFs,
  type PartitionInfo,
  type VolumeGroups,
} from '../fs/index.js';
import type { Repository } from '../repository/index.js';
import { CofferError, asCofferError, cooperative, yieldToLoop, type ErrorCode, type Op } from '../shared/index.js';
import type { CodecPool } from './codec-pool.js';
import { RestorePointDevice } from './mount.js';

/**
 * File-level restore (docs/DESIGN.md §File-level restore): one disk of a restore point is opened as a block device
 * that decodes only the chunks it touches (the instant-recovery device), its partition table and filesystem are read
 * by src/fs (untrusted input), and files are listed or copied out. A file whose chunks are unreadable fails alone.
 */

export interface GuestLocation {
  pointId: string;
  disk: number;
  /**
   * partition number as listed (0 = whole disk without a table), or an LVM2 logical volume as "VG/LV" (its VG may
   * span several disks of the point); undefined = the only one
   */
  partition?: number | string | undefined;
}

/** A partition, or an LVM2 logical volume (number "VG/LV", scheme "lvm2"), as `files ls` lists them. */
export interface GuestVolumeInfo extends Omit<PartitionInfo, 'number' | 'scheme'> {
  number: number | string;
  scheme: PartitionInfo['scheme'] | 'lvm2';
}

export interface FileInfo {
  name: string;
  path: string;
  type: FsNode['type'];
  size: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: string | null;
  atime: string | null;
  /** metadata change time, where the filesystem has one (NTFS) */
  ctime?: string | null;
  /** file attribute flags (NTFS: readonly, hidden, system, compressed, sparse, reparse-point ...) */
  attributes?: string[];
  /** named data streams (NTFS alternate data streams) */
  streams?: { name: string; size: number }[];
  linkTarget?: string;
  error?: { code: ErrorCode; message: string };
}

export interface FileFailure {
  path: string;
  code: ErrorCode;
  message: string;
  details: Record<string, unknown>;
}

/** A restore point's disk as a BlockReader (bounds-checked). */
class DeviceReader implements BlockReader {
  readonly sizeBytes: number;
  constructor(private readonly dev: RestorePointDevice) {
    this.sizeBytes = dev.sizeBytes;
  }
  async read(offset: number, length: number, op?: Op): Promise<Buffer> {
    checkRange(this.sizeBytes, offset, length);
    return this.dev.read(offset, length, op);
  }
}

async function openDisk(
  repo: Repository,
  pool: CodecPool,
  loc: { pointId: string; disk: number },
  op: Op,
): Promise<{ device: RestorePointDevice; reader: DeviceReader; chunksTotal: number }> {
  const manifest = await repo.loadManifest(loc.pointId, op);
  const disk = manifest.disks[loc.disk];
  if (!disk) throw new CofferError('NOT_FOUND', `restore point ${loc.pointId} has no disk ${loc.disk}`);
  const index = await repo.loadIndex(disk.indexId, op);
  const device = await RestorePointDevice.open(repo, pool, index, { cacheChunks: 32 });
  return { device, reader: new DeviceReader(device), chunksTotal: index.entryCount };
}

/** Every disk of a restore point, for LVM2: a volume group may span several disks of the VM. */
async function openAllDisks(
  repo: Repository,
  pool: CodecPool,
  pointId: string,
  op: Op,
): Promise<{ disks: Awaited<ReturnType<typeof openDisk>>[]; groups: VolumeGroups; close(): Promise<void> }> {
  const manifest = await repo.loadManifest(pointId, op);
  const disks: Awaited<ReturnType<typeof openDisk>>[] = [];
  const close = async () => {
    for (const d of disks) await d.device.close();
  };
  try {
    for (let i = 0; i < manifest.disks.length; i++) disks.push(await openDisk(repo, pool, { pointId, disk: i }, op));
    const groups = await scanVolumeGroups(
      disks.map((d) => d.reader),
      op,
    );
    return { disks, groups, close };
  } catch (e) {
    await close();
    throw e;
  }
}

export async function listGuestPartitions(
  repo: Repository,
  pool: CodecPool,
  loc: GuestLocation,
  op: Op = {},
): Promise<{ scheme: string; sizeBytes: number; partitions: GuestVolumeInfo[]; warnings: string[] }> {
  const { device, reader } = await openDisk(repo, pool, loc, op);
  let partitions: GuestVolumeInfo[];
  let table: { scheme: string };
  try {
    ({ table, partitions } = await listPartitions(reader, op));
  } finally {
    await device.close();
  }
  const warnings: string[] = [];
  if (partitions.some((p) => p.filesystem === 'lvm2')) {
    // the logical volumes of every VG with a PV on this disk, listed like partitions ("VG/LV")
    const all = await openAllDisks(repo, pool, loc.pointId, op);
    try {
      warnings.push(...all.groups.warnings);
      for (const lv of all.groups.list()) {
        if (!lv.disks.includes(loc.disk)) continue;
        const entry: GuestVolumeInfo = {
          number: lv.name,
          scheme: 'lvm2',
          startBytes: 0,
          sizeBytes: lv.sizeBytes,
          type: `lvm2 ${[...new Set(lv.segmentTypes)].join('+')}`,
          name: lv.name,
          filesystem: undefined,
        };
        if (lv.problem) entry.problem = lv.problem;
        else entry.filesystem = await probeFilesystem(all.groups.open(lv.name), op).catch(() => undefined);
        partitions.push(entry);
      }
    } finally {
      await all.close();
    }
  }
  return { scheme: table.scheme, sizeBytes: reader.sizeBytes, partitions, warnings };
}

export interface OpenGuest {
  fs: GuestFs;
  partition: { number: number | string; sizeBytes: number };
  /** chunks fetched from the repository so far */
  chunksRead(): number;
  chunksTotal: number;
  close(): Promise<void>;
}

export async function openGuest(repo: Repository, pool: CodecPool, loc: GuestLocation, op: Op): Promise<OpenGuest> {
  if (typeof loc.partition === 'string') return openLogicalVolume(repo, pool, loc, loc.partition, op);
  const { device, reader, chunksTotal } = await openDisk(repo, pool, loc, op);
  try {
    const { partition, volume } = await selectVolume(reader, loc.partition, op);
    const fs = await openFilesystem(volume, op);
    return { fs, partition, chunksRead: () => device.chunksFetched, chunksTotal, close: () => device.close() };
  } catch (e) {
    await device.close();
    throw e;
  }
}

/** A filesystem inside LVM2 logical volume "VG/LV": every disk of the point is opened (a VG may span several). */
async function openLogicalVolume(
  repo: Repository,
  pool: CodecPool,
  loc: GuestLocation,
  name: string,
  op: Op,
): Promise<OpenGuest> {
  if (!/^[^/]+\/[^/]+$/.test(name))
    throw new CofferError(
      'USAGE',
      `--partition ${JSON.stringify(name)}: give a partition number or a logical volume as VG/LV`,
    );
  const all = await openAllDisks(repo, pool, loc.pointId, op);
  try {
    if (!all.disks[loc.disk])
      throw new CofferError('NOT_FOUND', `restore point ${loc.pointId} has no disk ${loc.disk}`);
    const lv = all.groups.list().find((x) => x.name === name);
    if (lv && !lv.disks.includes(loc.disk))
      throw new CofferError(
        'NOT_FOUND',
        `logical volume ${name} has no extents on disk ${loc.disk} (it is on disk ${lv.disks.join(', ')})`,
      );
    const volume = all.groups.open(name);
    const fs = await openFilesystem(volume, op);
    const warnings = fs.warnings ?? [];
    fs.warnings?.unshift(...all.groups.warnings.filter((w) => !warnings.includes(w)));
    return {
      fs,
      partition: { number: name, sizeBytes: volume.sizeBytes },
      chunksRead: () => all.disks.reduce((n, d) => n + d.device.chunksFetched, 0),
      chunksTotal: all.disks.reduce((n, d) => n + d.chunksTotal, 0),
      close: all.close,
    };
  } catch (e) {
    await all.close();
    throw e;
  }
}

/** Splits a guest path; '..' is refused (there is no way up from where a path starts). */
export function splitPath(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..'))
    throw new CofferError('USAGE', `a guest path may not contain '..': ${JSON.stringify(path)}`);
  return parts;
}

/** Follows a path from the root without following symlinks. */
export async function resolve(fs: GuestFs, path: string, op: Op): Promise<FsNode> {
  let node = await fs.root(op);
  const parts = splitPath(path);
  for (const [i, name] of parts.entries()) {
    if (node.type === 'symlink')
      throw new CofferError('USAGE', `/${parts.slice(0, i).join('/')} is a symbolic link: give the path it points to`);
    if (node.type !== 'dir') throw new CofferError('NOT_FOUND', `/${parts.slice(0, i).join('/')} is not a directory`);
    const next = (await fs.list(node, op)).find((e) => e.name === name);
    if (!next)
      throw new CofferError('NOT_FOUND', `/${parts.slice(0, i + 1).join('/')} does not exist in the guest filesystem`);
    node = next;
  }
  return node;
}

function iso(ms: number | undefined): string | null {
  if (ms === undefined || !Number.isFinite(ms)) return null;
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

export async function info(fs: GuestFs, node: FsNode, path: string, op: Op): Promise<FileInfo> {
  const i: FileInfo = {
    name: node.name,
    path,
    type: node.type,
    size: node.sizeBytes,
    mode: node.mode,
    uid: node.uid,
    gid: node.gid,
    nlink: node.nlink,
    mtime: iso(node.mtimeMs),
    atime: iso(node.atimeMs),
  };
  if (node.error) i.error = { code: node.error.code, message: node.error.message };
  if (node.ctimeMs !== undefined) i.ctime = iso(node.ctimeMs);
  if (node.attributes) i.attributes = node.attributes;
  if (node.streams) i.streams = node.streams.map((x) => ({ name: x.name, size: x.sizeBytes }));
  if (node.type === 'symlink') {
    try {
      i.linkTarget = await fs.readlink(node, op);
    } catch (e) {
      const err = asCofferError(e);
      i.error = { code: err.code, message: err.message };
    }
  }
  return i;
}

export interface ListResult {
  filesystem: string;
  partition: number | string;
  path: string;
  warnings: string[];
  /** what the filesystem reader verified (checksums, journal replay) */
  checks?: string[];
  /** chunks fetched from the repository (of `chunksTotal` in the disk): file-level restore reads only what it needs */
  chunksRead: number;
  chunksTotal: number;
  /** the object PATH names */
  entry: FileInfo;
  /** a directory's entries (with a page: that page of them) */
  entries?: FileInfo[];
  /** a directory's number of entries */
  entriesTotal?: number;
}

export interface GuestFile {
  filesystem: string;
  partition: number | string;
  /** the partition's size: no file's data read is larger */
  partitionBytes: number;
  warnings: string[];
  entry: FileInfo;
  /**
   * The file's bytes in order (holes as zeros), exactly `entry.size` of them. The pieces the filesystem gives are
   * checked (ascending, inside the file, together no more data than the partition holds): FS_CORRUPT otherwise.
   */
  content(): AsyncGenerator<Buffer, void, undefined>;
  chunksRead(): number;
  /** releases the disk (idempotent); call it whether or not content() was read to the end */
  close(): Promise<void>;
}

const ZEROS = Buffer.alloc(1024 * 1024);

/**
 * The bytes of a regular file of a guest filesystem, holes as zeros, in order (a download, a tar member). Pieces the
 * reader gives out of order or past the file's size, or more data than `maxData` (the partition's size), are
 * FS_CORRUPT: a hostile filesystem cannot make a stream longer than the file claims.
 */
export async function* denseContent(
  fs: GuestFs,
  node: FsNode,
  name: string,
  op: Op,
  maxData = Number.POSITIVE_INFINITY,
): AsyncGenerator<Buffer, void, undefined> {
  const zeros = function* (n: number) {
    for (let left = n; left > 0; left -= ZEROS.length) yield ZEROS.subarray(0, Math.min(left, ZEROS.length));
  };
  let pos = 0;
  let data = 0;
  for await (const piece of fs.read(node, op)) {
    const end = piece.offset + piece.data.length;
    if (piece.offset < pos || end > node.sizeBytes)
      throw new CofferError(
        'FS_CORRUPT',
        `${name}: a piece of content at ${piece.offset} (+${piece.data.length}) is out of order or past the ` +
          `file's size ${node.sizeBytes}`,
      );
    data += piece.data.length;
    if (data > maxData)
      throw new CofferError('FS_CORRUPT', `${name}: more data than the partition holds (${maxData} bytes)`);
    yield* zeros(piece.offset - pos);
    if (piece.data.length > 0) yield piece.data;
    pos = end;
  }
  yield* zeros(node.sizeBytes - pos);
}

/**
 * Opens one regular file of a guest filesystem for streaming (the server's download). Anything but a regular file is
 * USAGE; a file that claims to be larger than its partition (a huge sparse file, or a hostile size) is refused with
 * FS_UNSUPPORTED before anything is sent, so a download is bounded by the partition.
 */
export async function openGuestFile(
  repo: Repository,
  pool: CodecPool,
  loc: GuestLocation & { path: string },
  op: Op = {},
): Promise<GuestFile> {
  const g = await openGuest(repo, pool, loc, op);
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= g.close());
  try {
    const path = '/' + splitPath(loc.path).join('/');
    const node = await resolve(g.fs, path, op);
    if (node.error) throw node.error;
    if (node.type !== 'file')
      throw new CofferError(
        'USAGE',
        `${path} is ${node.type === 'dir' ? 'a directory' : `a ${node.type}`}, not a regular file: ` +
          'only regular files can be downloaded',
      );
    const limit = g.partition.sizeBytes;
    if (node.sizeBytes > limit) {
      throw new CofferError(
        'FS_UNSUPPORTED',
        `${path} claims ${node.sizeBytes} bytes, more than its partition holds (${limit}): not downloadable ` +
          '(copy a sparse file this large with coffer files get)',
        { details: { size: node.sizeBytes, partitionBytes: limit } },
      );
    }
    const entry = await info(g.fs, node, path, op);
    const fs = g.fs;
    const content = () => denseContent(fs, node, path, op, limit);
    return {
      filesystem: fs.kind,
      partition: g.partition.number,
      partitionBytes: limit,
      warnings: [...(fs.warnings ?? [])],
      entry,
      content,
      chunksRead: () => g.chunksRead(),
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

export interface ListPage {
  /** entries to skip (after sorting by name) */
  offset: number;
  /** entries to return at most */
  limit: number;
}

/**
 * Lists PATH (a directory's entries, or the one object it names). With `page`, the entries are sorted by name (UTF-16
 * code units, stable) and only `page.limit` of them from `page.offset` are described (`entriesTotal` counts all):
 * a restore point never changes, so an offset is a stable cursor.
 */
export async function listGuestFiles(
  repo: Repository,
  pool: CodecPool,
  loc: GuestLocation & { path: string; page?: ListPage },
  op: Op = {},
): Promise<ListResult> {
  const g = await openGuest(repo, pool, loc, op);
  try {
    const path = '/' + splitPath(loc.path).join('/');
    const node = await resolve(g.fs, path, op);
    const result: ListResult = {
      filesystem: g.fs.kind,
      partition: g.partition.number,
      path,
      warnings: [...(g.fs.warnings ?? [])],
      checks: [...(g.fs.checks ?? [])],
      chunksRead: 0,
      chunksTotal: g.chunksTotal,
      entry: await info(g.fs, node, path, op),
    };
    if (node.type === 'dir') {
      let children = await g.fs.list(node, op);
      result.entriesTotal = children.length;
      if (loc.page) {
        await yieldToLoop(); // the sort of a huge directory is one synchronous piece of work: let others run first
        children = children
          .map((c, i) => ({ c, i }))
          .sort((a, b) => (a.c.name < b.c.name ? -1 : a.c.name > b.c.name ? 1 : a.i - b.i))
          .slice(loc.page.offset, loc.page.offset + loc.page.limit)
          .map((x) => x.c);
      }
      result.entries = [];
      const tick = cooperative();
      for (const c of children) {
        await tick();
        result.entries.push(await info(g.fs, c, (path === '/' ? '' : path) + '/' + c.name, op));
      }
    }
    result.chunksRead = g.chunksRead();
    return result;
  } finally {
    await g.close();
  }
}

export interface ExtractOptions extends GuestLocation {
  paths: string[];
  target: string;
  /** replace existing files and symlinks in the target (never follows them; existing directories are merged) */
  force: boolean;
  /** also write each named data stream (NTFS alternate data stream) of a file as `name:stream` beside it */
  streams?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: { files: number; bytes: number }) => void;
}

export interface ExtractResult {
  filesystem: string;
  partition: number | string;
  target: string;
  warnings: string[];
  /** what the filesystem reader verified (checksums, journal replay) */
  checks?: string[];
  files: number;
  dirs: number;
  symlinks: number;
  /** further names of a file already copied in this run, created as hard links */
  hardlinks: number;
  /** named data streams written as `name:stream` files (with `streams`) */
  streams?: number;
  bytes: number;
  chunksRead: number;
  chunksTotal: number;
  skipped: { path: string; type: string; reason: string }[];
  failed: FileFailure[];
}

/** A name from the guest that is safe to create in a directory of ours. */
export function unsafeName(name: string): string | undefined {
  if (name === '' || name === '.' || name === '..') return `the name ${JSON.stringify(name)} is reserved`;
  if (name.includes('/')) return 'the name contains /';
  if (name.includes('\0')) return 'the name contains NUL';
  return undefined;
}

const MAX_DEPTH = 2048;

export async function extractGuestFiles(repo: Repository, pool: CodecPool, o: ExtractOptions): Promise<ExtractResult> {
  const op: Op = { signal: o.signal };
  const g = await openGuest(repo, pool, o, op);
  const asRoot = process.getuid?.() === 0;
  const result: ExtractResult = {
    filesystem: g.fs.kind,
    partition: g.partition.number,
    target: o.target,
    warnings: [...(g.fs.warnings ?? [])],
    checks: [...(g.fs.checks ?? [])],
    files: 0,
    dirs: 0,
    symlinks: 0,
    hardlinks: 0,
    bytes: 0,
    chunksRead: 0,
    chunksTotal: g.chunksTotal,
    skipped: [],
    failed: [],
  };
  const fail = (path: string, e: unknown) => {
    const errno = (e as NodeJS.ErrnoException | undefined)?.code;
    const err =
      e instanceof CofferError
        ? e
        : asCofferError(
            e,
            typeof errno === 'string' ? (errno === 'ENOSPC' ? 'STORAGE_FULL' : 'TARGET_UNWRITABLE') : 'INTERNAL',
          );
    // a full target disk or Ctrl-C ends the whole run; anything else fails this entry only
    if (err.code === 'CANCELLED' || err.code === 'INTERNAL' || err.code === 'STORAGE_FULL') throw err;
    result.failed.push({ path, code: err.code, message: err.message, details: err.details });
  };
  const visitedDirs = new Set<string>();
  /** files with several links: guest identity -> the first path we wrote it to (later links become hard links) */
  const linked = new Map<string, string>();
  // Blocks are not shared between files on ext or FAT, so the distinct files of one volume hold at most its size:
  // more means a hostile filesystem pointing many files at the same blocks. Bounds the work of one run.
  const dataLimit = g.partition.sizeBytes;

  const setMeta = async (dest: string, node: FsNode, kind: 'dir' | 'symlink') => {
    const mode = asRoot ? node.mode : node.mode & 0o1777;
    if (asRoot) await (kind === 'symlink' ? lchown : chown)(dest, node.uid, node.gid);
    if (kind !== 'symlink') await chmod(dest, mode);
    if (node.mtimeMs !== undefined) {
      const m = new Date(node.mtimeMs);
      const a = new Date(node.atimeMs ?? node.mtimeMs);
      await (kind === 'symlink' ? lutimes : utimes)(dest, a, m);
    }
  };

  /** Makes way for a new file or symlink at `dest`: TARGET_EXISTS, or with --force unlink (never a directory). */
  const clear = async (dest: string): Promise<void> => {
    const st = await lstat(dest).catch(() => undefined);
    if (!st) return;
    if (!o.force || st.isDirectory())
      throw new CofferError(
        'TARGET_EXISTS',
        `${dest} exists` +
          (st.isDirectory()
            ? ' (a directory)'
            : st.isSymbolicLink()
              ? ' (a symbolic link, never written through)'
              : '') +
          (o.force ? '' : '; use --force to replace it'),
      );
    await unlink(dest);
  };

  const writeFile = async (node: FsNode, dest: string, stream?: string) => {
    await clear(dest);
    const first = node.nlink > 1 && stream === undefined ? linked.get(node.id) : undefined;
    if (first !== undefined) {
      await link(first, dest);
      result.hardlinks++;
      return;
    }
    const size = stream === undefined ? node.sizeBytes : (node.streams?.find((x) => x.name === stream)?.sizeBytes ?? 0);
    const content = stream === undefined ? g.fs.read(node, op) : g.fs.readStream!(node, stream, op);
    // O_EXCL|O_NOFOLLOW: never through a symlink or over something that appeared meanwhile
    const fh = await open(
      dest,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    ).catch((e) => {
      throw new CofferError(
        (e as NodeJS.ErrnoException).code === 'EEXIST' ? 'TARGET_EXISTS' : 'TARGET_UNWRITABLE',
        `cannot create ${dest}: ${(e as Error).message}`,
      );
    });
    let ok = false;
    try {
      for await (const piece of content) {
        if (result.bytes + piece.data.length > dataLimit)
          throw new CofferError(
            'FS_CORRUPT',
            `the files read hold more data than the partition (${dataLimit} bytes): files share blocks`,
          );
        let done = 0;
        while (done < piece.data.length)
          done += (await fh.write(piece.data, done, piece.data.length - done, piece.offset + done)).bytesWritten;
        result.bytes += piece.data.length;
      }
      await fh.truncate(size); // the tail hole, and the file's exact size
      // metadata through the handle: the object we created, whatever happens to the name meanwhile
      if (asRoot) await fh.chown(node.uid, node.gid);
      await fh.chmod(asRoot ? node.mode : node.mode & 0o1777);
      if (node.mtimeMs !== undefined) await fh.utimes(new Date(node.atimeMs ?? node.mtimeMs), new Date(node.mtimeMs));
      ok = true;
    } finally {
      await fh.close();
      if (!ok) await unlink(dest).catch(() => undefined);
    }
    if (stream !== undefined) {
      result.streams = (result.streams ?? 0) + 1;
      return;
    }
    result.files++;
    if (node.nlink > 1) linked.set(node.id, dest);
    o.onProgress?.({ files: result.files, bytes: result.bytes });
    // `name:stream` files beside the file (never over another guest file: the stream name has no '/')
    if (o.streams && g.fs.readStream) {
      for (const x of node.streams ?? []) {
        const bad = unsafeName(x.name);
        if (bad) throw new CofferError('FS_CORRUPT', `stream ${JSON.stringify(x.name)} refused: ${bad}`);
        await writeFile(node, `${dest}:${x.name}`, x.name);
      }
    }
  };

  const extract = async (node: FsNode, dest: string, guestPath: string, depth: number): Promise<void> => {
    op.signal?.throwIfAborted();
    try {
      if (node.error) throw node.error;
      if (node.type === 'file') await writeFile(node, dest);
      else if (node.type === 'symlink') {
        const text = await g.fs.readlink(node, op);
        if (text === '' || text.includes('\0'))
          throw new CofferError('FS_CORRUPT', 'empty or NUL-containing symlink target');
        await clear(dest);
        await symlink(text, dest); // the target text as stored: never followed, never resolved
        await setMeta(dest, node, 'symlink');
        result.symlinks++;
      } else if (node.type === 'dir') {
        if (depth > MAX_DEPTH) throw new CofferError('FS_CORRUPT', `directories nested deeper than ${MAX_DEPTH}`);
        if (visitedDirs.has(node.id))
          throw new CofferError('FS_CORRUPT', `directory ${guestPath} was already visited (a directory cycle)`, {
            details: { id: node.id },
          });
        visitedDirs.add(node.id);
        await makeDir(dest, o.force);
        result.dirs++;
        const children = await g.fs.list(node, op);
        for (const c of children) {
          const childPath = (guestPath === '/' ? '' : guestPath) + '/' + c.name;
          const bad = unsafeName(c.name);
          if (bad) {
            fail(childPath, new CofferError('FS_CORRUPT', `refused: ${bad}`, { details: { name: c.name } }));
            continue;
          }
          await extract(c, join(dest, c.name), childPath, depth + 1);
        }
        if (dest !== o.target) await setMeta(dest, node, 'dir'); // the target directory itself keeps its own metadata
      } else
        result.skipped.push({
          path: guestPath,
          type: node.type,
          reason: 'device nodes, FIFOs and sockets are not recreated',
        });
    } catch (e) {
      fail(guestPath, e);
    }
  };

  try {
    // every path is resolved before anything is written: a typo in the last one does not leave a half-done target
    const items: { node: FsNode; guestPath: string }[] = [];
    for (const p of o.paths) {
      const guestPath = '/' + splitPath(p).join('/');
      items.push({ node: await resolve(g.fs, guestPath, op), guestPath });
    }
    await prepareTarget(o.target);
    for (const { node, guestPath } of items) {
      // the root's contents go straight into the target; anything else as target/<its name>
      if (guestPath === '/') await extract(node, o.target, guestPath, 0);
      else await extract(node, join(o.target, node.name), guestPath, 0);
    }
  } finally {
    result.chunksRead = g.chunksRead();
    await g.close();
  }
  return result;
}

/** The target directory: created if missing; an existing one must be a real directory (not a symlink). */
async function prepareTarget(target: string): Promise<void> {
  const st = await lstat(target).catch(() => undefined);
  if (st && !st.isDirectory())
    throw new CofferError(
      'TARGET_UNWRITABLE',
      `${target} is not a directory${st.isSymbolicLink() ? ' (a symbolic link)' : ''}`,
    );
  if (!st) {
    await mkdir(target, { recursive: true, mode: 0o700 }).catch((e) => {
      throw new CofferError('TARGET_UNWRITABLE', `cannot create ${target}: ${(e as Error).message}`);
    });
  }
}

/** mkdir that refuses to reuse a symlink (or anything but a real directory) in its place. */
async function makeDir(dest: string, force: boolean): Promise<void> {
  const st = await lstat(dest).catch(() => undefined);
  if (st?.isDirectory()) return;
  if (st) {
    if (!force)
      throw new CofferError(
        'TARGET_EXISTS',
        `${dest} exists and is not a directory` +
          `${st.isSymbolicLink() ? ' (a symbolic link, never followed)' : ''}; use --force to replace it`,
      );
    await unlink(dest);
  }
  await mkdir(dest, { mode: 0o700 }).catch((e) => {
    throw new CofferError(
      (e as NodeJS.ErrnoException).code === 'EEXIST' ? 'TARGET_EXISTS' : 'TARGET_UNWRITABLE',
      `cannot create ${dest}: ${(e as Error).message}`,
    );
  });
}
