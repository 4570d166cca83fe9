import type { FsNode, GuestFs } from '../fs/index.js';
import type { Repository } from '../repository/index.js';
import { CofferError, asCofferError, cooperative, type ErrorCode, type Op } from '../shared/index.js';
import type { CodecPool } from './codec-pool.js';
import {
  info,
  listGuestPartitions,
  openGuest,
  resolve,
  splitPath,
  type FileInfo,
  type GuestLocation,
} from './file-restore.js';

/**
 * Finding files across restore points and comparing two of them (docs/DESIGN.md §File-level restore, "Find and
 * compare"). Guest filesystems are walked through src/fs like `files ls` does, without following symlinks, bounded by
 * an entry budget: a walk that stops says where it stopped, it is never silently partial.
 */

// ---- glob

type Segment = { kind: 'literal'; text: string } | { kind: 'any' } | { kind: 're'; re: RegExp };

/**
 * A glob over the full guest path: `*` (any run inside one name), `?` (one character), `**` (any number of whole
 * names, as a whole component), `[abc]`, `[a-z]`, `[!x]`/`[^x]`; `\` escapes. A pattern without these is a plain path
 * and matches exactly. Matching is per path component, so a walk descends only into directories that can hold a match.
 */
export class GuestGlob {
  readonly segments: Segment[];
  readonly pattern: string;
  constructor(pattern: string) {
    if (pattern.length === 0 || pattern.length > 4096)
      throw new CofferError('USAGE', 'a search pattern is 1 to 4096 characters');
    if (pattern.includes('\0')) throw new CofferError('USAGE', 'a search pattern may not contain NUL');
    this.pattern = pattern;
    const parts = pattern.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..'))
      throw new CofferError('USAGE', `a search pattern may not contain '..': ${JSON.stringify(pattern)}`);
    if (parts.length > 256) throw new CofferError('USAGE', 'a search pattern has at most 256 components');
    this.segments = parts.map((p) => (p === '**' ? { kind: 'any' } : compileComponent(p)));
  }

  /** The leading literal components: the directory a walk starts from. */
  literalPrefix(): string[] {
    const out: string[] = [];
    for (const s of this.segments) {
      if (s.kind !== 'literal') break;
      out.push(s.text);
    }
    return out;
  }

  /** True when the pattern is a plain path. */
  get isLiteral(): boolean {
    return this.segments.every((s) => s.kind === 'literal');
  }

  /** The start state (before any component): the set of pattern positions reached. */
  start(): number[] {
    return this.closure([0]);
  }

  /** The states after consuming one more path component. */
  step(states: number[], name: string): number[] {
    const next = new Set<number>();
    for (const i of states) {
      const s = this.segments[i];
      if (!s) continue;
      if (s.kind === 'any') next.add(i);
      else if (s.kind === 'literal' ? s.text === name : s.re.test(name)) next.add(i + 1);
    }
    return this.closure([...next]);
  }

  accepts(states: number[]): boolean {
    return states.includes(this.segments.length);
  }

  /** Whether anything below a directory in these states can match. */
  canDescend(states: number[]): boolean {
    return states.some((i) => i < this.segments.length);
  }

  matches(path: string): boolean {
    let st = this.start();
    for (const name of splitPath(path)) st = this.step(st, name);
    return this.accepts(st);
  }

  private closure(states: number[]): number[] {
    const out = new Set(states);
    for (const i of states) {
      let j = i;
      while (this.segments[j]?.kind === 'any') out.add(++j);
    }
    return [...out].sort((a, b) => a - b);
  }
}

function compileComponent(p: string): Segment {
  let re = '';
  let literal = '';
  let isLiteral = true;
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '\\' && i + 1 < p.length) {
      literal += p[i + 1];
      re += escapeRe(p[++i]!);
    } else if (c === '*') {
      isLiteral = false;
      re += '.*';
      while (p[i + 1] === '*') i++; // '**' inside a name is '*'
    } else if (c === '?') {
      isLiteral = false;
      re += '.';
    } else if (c === '[') {
      const end = classEnd(p, i);
      if (end < 0) {
        literal += c;
        re += '\\[';
        continue;
      }
      isLiteral = false;
      let body = p.slice(i + 1, end);
      let neg = false;
      if (body[0] === '!' || body[0] === '^') {
        neg = true;
        body = body.slice(1);
      }
      body = body.replace(/[\\[^]/g, '\\$&').replace(/^\]/, '\\]');
      re += '[' + (neg ? '^' : '') + body + ']';
      i = end;
    } else {
      literal += c;
      re += escapeRe(c);
    }
  }
  if (isLiteral) return { kind: 'literal', text: literal };
  try {
    return { kind: 're', re: new RegExp('^' + re + '$', 'su') };
  } catch {
    throw new CofferError('USAGE', `bad character class in search pattern component ${JSON.stringify(p)}`);
  }
}

/**
 * Index of the `]` closing a class opened at `start` (a `]` right after `[`, `[!` or `[^` is part of the class),
 * or -1.
 */
function classEnd(p: string, start: number): number {
  let i = start + 1;
  if (p[i] === '!' || p[i] === '^') i++;
  if (p[i] === ']') i++;
  for (; i < p.length; i++) if (p[i] === ']') return i;
  return -1;
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

// ---- bounded walking

/** Counts entries listed by a walk; `exhausted` once `max` were walked (the walk stops there). */
export class EntryBudget {
  walked = 0;
  constructor(readonly max: number) {}
  get exhausted(): boolean {
    return this.walked >= this.max;
  }
}

const MAX_DEPTH = 2048;

function childPath(dir: string, name: string): string {
  return (dir === '/' ? '' : dir) + '/' + name;
}

/** A volume of a restore point that a search or diff reads: one partition (or LV) of one disk. */
export interface SearchVolume {
  disk: number;
  partition: number | string;
  filesystem: string;
}

export interface VolumeSelection {
  /** one disk; default every disk of the point */
  disk?: number | undefined;
  /** one partition (or LVM2 "VG/LV"); default every partition or logical volume holding a readable filesystem */
  partition?: number | string | undefined;
}

const READABLE = new Set(['ext', 'fat', 'ntfs', 'xfs']);

/** The volumes of a point to search: those named, or every readable one; problems go to `notes`. */
export async function volumesOf(
  repo: Repository,
  pool: CodecPool,
  pointId: string,
  sel: VolumeSelection,
  notes: string[],
  op: Op,
): Promise<SearchVolume[]> {
  const manifest = await repo.loadManifest(pointId, op);
  const disks = sel.disk !== undefined ? [sel.disk] : manifest.disks.map((_, i) => i);
  if (sel.disk !== undefined && !manifest.disks[sel.disk])
    throw new CofferError('NOT_FOUND', `restore point ${pointId} has no disk ${sel.disk}`);
  const out: SearchVolume[] = [];
  for (const disk of disks) {
    if (sel.partition !== undefined) {
      out.push({ disk, partition: sel.partition, filesystem: '?' });
      continue;
    }
    try {
      const t = await listGuestPartitions(repo, pool, { pointId, disk }, op);
      for (const p of t.partitions)
        if (p.filesystem && READABLE.has(p.filesystem) && !p.problem && !p.unsupported && !p.container)
          out.push({ disk, partition: p.number, filesystem: p.filesystem });
    } catch (e) {
      const err = asCofferError(e);
      if (err.code === 'CANCELLED') throw err;
      notes.push(`point ${pointId} disk ${disk}: partitions unreadable: [${err.code}] ${err.message}`);
    }
  }
  return out;
}

// ---- find

export interface FindMatch {
  pointId: string;
  time: string;
  vm: string;
  disk: number;
  partition: number | string;
  path: string;
  type: FsNode['type'];
  size: number;
  mtime: string | null;
  linkTarget?: string;
}

export interface FindLimits {
  /** entries walked at most per volume of a point */
  entriesPerPoint: number;
  /** matches returned at most */
  maxResults: number;
}

export interface FindInVolumeResult {
  matches: FileInfo[];
  entriesWalked: number;
  /** why the walk stopped early (the budget) */
  stopped?: string;
  /** directories that could not be listed */
  errors: { path: string; code: ErrorCode; message: string }[];
}

/** Walks one volume for the glob: the literal prefix is resolved directly, then only directories that can match. */
export async function findInVolume(
  repo: Repository,
  pool: CodecPool,
  loc: GuestLocation,
  glob: GuestGlob,
  limits: { entries: number; results: number },
  op: Op,
): Promise<FindInVolumeResult> {
  const g = await openGuest(repo, pool, loc, op);
  const budget = new EntryBudget(limits.entries);
  const result: FindInVolumeResult = { matches: [], entriesWalked: 0, errors: [] };
  try {
    const prefix = glob.literalPrefix();
    const startPath = '/' + prefix.join('/');
    let start: FsNode;
    try {
      start = await resolve(g.fs, startPath, op);
    } catch (e) {
      const err = asCofferError(e);
      if (err.code === 'NOT_FOUND' || err.code === 'USAGE') return result; // the literal part is not there: no match
      throw err;
    }
    let states = glob.start();
    for (const name of prefix) states = glob.step(states, name);
    if (glob.accepts(states)) result.matches.push(await info(g.fs, start, startPath, op));
    const visited = new Set<string>();
    const tick = cooperative(); // a long walk does not hold the event loop (the server answers meanwhile)
    const walk = async (node: FsNode, path: string, st: number[], depth: number): Promise<void> => {
      if (node.type !== 'dir' || !glob.canDescend(st) || result.stopped || result.matches.length >= limits.results)
        return;
      op.signal?.throwIfAborted();
      if (depth > MAX_DEPTH || visited.has(node.id)) {
        result.errors.push({
          path,
          code: 'FS_CORRUPT',
          message:
            depth > MAX_DEPTH ? `directories nested deeper than ${MAX_DEPTH}` : 'directory already visited (a cycle)',
        });
        return;
      }
      visited.add(node.id);
      let children: FsNode[];
      try {
        children = await g.fs.list(node, op);
      } catch (e) {
        const err = asCofferError(e);
        if (err.code === 'CANCELLED') throw err;
        result.errors.push({ path, code: err.code, message: err.message });
        return;
      }
      for (const c of children) {
        if (budget.exhausted) {
          result.stopped =
            `search stopped at ${budget.walked} entries in point ${loc.pointId} disk ${loc.disk} ` +
            `partition ${loc.partition} (entry budget; in ${path})`;
          return;
        }
        budget.walked++;
        await tick();
        const p = childPath(path, c.name);
        const next = glob.step(st, c.name);
        if (next.length === 0) continue;
        if (glob.accepts(next)) {
          if (result.matches.length >= limits.results) return;
          result.matches.push(await info(g.fs, c, p, op));
        }
        await walk(c, p, next, depth + 1);
        if (result.stopped) return;
      }
    };
    await walk(start, startPath, states, prefix.length);
  } finally {
    result.entriesWalked = budget.walked;
    await g.close();
  }
  return result;
}

// ---- diff

export type ChangeKind = 'added' | 'removed' | 'changed';

export interface FileChange {
  change: ChangeKind;
  path: string;
  /** changed: which of type, size, mtime, mode, target (symlinks), content */
  fields?: string[];
  type: FsNode['type'];
  /** size in A (removed, changed) */
  sizeA?: number;
  /** size in B (added, changed) */
  sizeB?: number;
  mtimeA?: string | null;
  mtimeB?: string | null;
}

export interface DiffVolumeResult {
  changes: FileChange[];
  entriesWalked: number;
  stopped?: string;
  errors: { path: string; code: ErrorCode; message: string }[];
  /** files whose content was compared (--content) */
  contentCompared: number;
}

async function readAll(fs: GuestFs, node: FsNode, limit: number, op: Op): Promise<Buffer> {
  const out = Buffer.alloc(Math.min(node.sizeBytes, limit));
  for await (const piece of fs.read(node, op)) {
    if (piece.offset < 0 || piece.offset + piece.data.length > out.length)
      throw new CofferError('FS_CORRUPT', 'a piece of content lies outside the file');
    piece.data.copy(out, piece.offset);
  }
  return out;
}

/** Compares two files' content piece by piece (1 MiB windows would need random access: read both whole, bounded). */
async function sameContent(a: GuestFs, na: FsNode, b: GuestFs, nb: FsNode, op: Op): Promise<boolean> {
  const limit = 256 * 1024 * 1024;
  if (na.sizeBytes > limit)
    throw new CofferError('FS_UNSUPPORTED', `content comparison is limited to files of ${limit} bytes`);
  const [x, y] = await Promise.all([readAll(a, na, limit, op), readAll(b, nb, limit, op)]);
  return x.equals(y);
}

/**
 * What changed from volume A to volume B under `path`: added, removed, changed (type, size, mtime, mode, symlink
 * target; the content only when sizes and mtimes are equal and `content` is set). An added or removed directory is
 * one change (its contents are not listed); a directory's size and mtime are not compared (they follow its entries).
 */
export async function diffVolumes(
  repo: Repository,
  pool: CodecPool,
  a: GuestLocation,
  b: GuestLocation,
  path: string,
  o: { entries: number; results: number; content: boolean; ctime?: boolean },
  op: Op,
): Promise<DiffVolumeResult> {
  const ga = await openGuest(repo, pool, a, op);
  const result: DiffVolumeResult = { changes: [], entriesWalked: 0, errors: [], contentCompared: 0 };
  const budget = new EntryBudget(o.entries);
  try {
    const gb = await openGuest(repo, pool, b, op);
    try {
      const start = '/' + splitPath(path).join('/');
      const na = await resolve(ga.fs, start, op).catch(notFound);
      const nb = await resolve(gb.fs, start, op).catch(notFound);
      if (!na && !nb) throw new CofferError('NOT_FOUND', `${start} exists in neither restore point`);
      const visited = new Set<string>();
      const full = () => result.changes.length >= o.results;
      const tick = cooperative(); // a long walk does not hold the event loop (the server answers meanwhile)
      const compare = async (x: FsNode | undefined, y: FsNode | undefined, p: string, depth: number): Promise<void> => {
        op.signal?.throwIfAborted();
        if (full()) return;
        if (!y) {
          result.changes.push({
            change: 'removed',
            path: p,
            type: x!.type,
            sizeA: x!.sizeBytes,
            mtimeA: iso(x!.mtimeMs),
          });
          return;
        }
        if (!x) {
          result.changes.push({ change: 'added', path: p, type: y.type, sizeB: y.sizeBytes, mtimeB: iso(y.mtimeMs) });
          return;
        }
        const fields: string[] = [];
        if (x.type !== y.type) fields.push('type');
        else {
          if (x.type !== 'dir') {
            if (x.sizeBytes !== y.sizeBytes) fields.push('size');
            if (x.mtimeMs !== y.mtimeMs) fields.push('mtime');
            // a rewrite that kept size and mtime (`touch -r`) still moved the ctime, which userspace cannot set
            if (o.ctime && x.ctimeMs !== undefined && y.ctimeMs !== undefined && x.ctimeMs !== y.ctimeMs)
              fields.push('ctime');
          }
          if (x.mode !== y.mode) fields.push('mode');
          if (x.type === 'symlink') {
            const [tx, ty] = await Promise.all([
              ga.fs.readlink(x, op).catch(() => undefined),
              gb.fs.readlink(y, op).catch(() => undefined),
            ]);
            if (tx !== ty) fields.push('target');
          }
          if (o.content && x.type === 'file' && fields.length === 0 && !x.error && !y.error) {
            try {
              result.contentCompared++;
              if (!(await sameContent(ga.fs, x, gb.fs, y, op))) fields.push('content');
            } catch (e) {
              const err = asCofferError(e);
              if (err.code === 'CANCELLED') throw err;
              result.errors.push({ path: p, code: err.code, message: `content not compared: ${err.message}` });
            }
          }
        }
        if (fields.length > 0)
          result.changes.push({
            change: 'changed',
            path: p,
            fields,
            type: y.type,
            sizeA: x.sizeBytes,
            sizeB: y.sizeBytes,
            mtimeA: iso(x.mtimeMs),
            mtimeB: iso(y.mtimeMs),
          });
        if (x.type !== 'dir' || y.type !== 'dir') return;
        if (depth > MAX_DEPTH || visited.has(`a${x.id}`) || visited.has(`b${y.id}`)) {
          result.errors.push({
            path: p,
            code: 'FS_CORRUPT',
            message:
              depth > MAX_DEPTH ? `directories nested deeper than ${MAX_DEPTH}` : 'directory already visited (a cycle)',
          });
          return;
        }
        visited.add(`a${x.id}`).add(`b${y.id}`);
        let ca: FsNode[];
        let cb: FsNode[];
        try {
          [ca, cb] = await Promise.all([ga.fs.list(x, op), gb.fs.list(y, op)]);
        } catch (e) {
          const err = asCofferError(e);
          if (err.code === 'CANCELLED') throw err;
          result.errors.push({ path: p, code: err.code, message: err.message });
          return;
        }
        const mb = new Map(cb.map((c) => [c.name, c]));
        const names = [...new Set([...ca.map((c) => c.name), ...cb.map((c) => c.name)])].sort();
        const ma = new Map(ca.map((c) => [c.name, c]));
        for (const name of names) {
          if (budget.walked + 1 > budget.max) {
            result.stopped = `diff stopped at ${budget.walked} entries (entry budget; in ${p})`;
            return;
          }
          budget.walked++;
          await tick();
          await compare(ma.get(name), mb.get(name), childPath(p, name), depth + 1);
          if (result.stopped || full()) return;
        }
      };
      await compare(na, nb, start, 0);
    } finally {
      await gb.close();
    }
  } finally {
    result.entriesWalked = budget.walked;
    await ga.close();
  }
  return result;
}

function notFound(e: unknown): undefined {
  const err = asCofferError(e);
  if (err.code === 'NOT_FOUND') return undefined;
  throw err;
}

function iso(ms: number | undefined): string | null {
  if (ms === undefined || !Number.isFinite(ms)) return null;
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}
