import type { FsNode, GuestFs } from '../../fs/index.js';
import type { Repository } from '../../repository/index.js';
import { asCofferError, CofferError, type Op } from '../../shared/index.js';
import type { CodecPool } from '../codec-pool.js';
import { openGuest } from '../file-restore.js';
import { diffVolumes, volumesOf, type FileChange } from '../file-search.js';

/** Bounds of one indicators scan (DESIGN.md §File-level indicators): the work never grows with the guest's size. */
export const INDICATOR_LIMITS = {
  /** directory entries walked per point */
  entries: 200_000,
  /** changes listed */
  changes: 20_000,
  /** files whose content is sampled (both versions) */
  samples: 200,
  /** bytes read from the start of each sampled file */
  sampleBytes: 64 * 1024,
  /** examples kept per indicator */
  examples: 10,
} as const;

/** Thresholds of the verdict: any one reached marks the point `found`. */
export const INDICATOR_THRESHOLDS = {
  /** ransom notes dropped (one is enough: no ordinary change writes a file by these names) */
  notes: 1,
  /** files renamed to one new extension, and at least this share of the renames */
  renames: 10,
  renameShare: 0.5,
  /** sampled files rewritten from low to high entropy, and at least this share of the samples */
  entropyRewrites: 10,
  entropyShare: 0.25,
} as const;

/** A sample at or above this many bits per byte (Shannon, 0..8) looks encrypted; below LOW_ENTROPY it looked plain. */
export const HIGH_ENTROPY = 7.5;
export const LOW_ENTROPY = 7.0;
const MIN_SAMPLE_BYTES = 1024;

/** File names ransomware leaves behind (families' notes; case-insensitive, the name only). */
const RANSOM_NOTE_NAMES: readonly RegExp[] = [
  /^_?readme[_-]?(for[_-]?)?(to[_-]?)?(restore|decrypt|recover)/i,
  /how[_ -]?(to|2)[_ -]?(decrypt|restore|recover|get[_ -]?back|unlock)/i,
  /^(decrypt|restore|recover|unlock)[_ -]?(my[_ -]?|your[_ -]?|all[_ -]?)?(files|data|instructions?)/i,
  /^_readme\.txt$/i,
  /ransom[_ -]?note/i,
  /^!+[_ -]?(read|readme|important)/i,
  /(files|data)[_ -]?(are|were|is)[_ -]?encrypted/i,
  /^#?(decrypt|restore)[_-]?(info|readme)/i,
];

/** File-level indicators of one restore point against an earlier one of the same VM (FORMAT.md §8.2). */
export interface IndicatorRecord {
  pointId: string;
  /** the point compared with (the VM's previous point) */
  againstId: string;
  time: string;
  kind: 'files';
  /** any indicator reached its threshold */
  found: boolean;
  changes: { added: number; removed: number; changed: number };
  ransomNotes: { count: number; examples: string[] };
  /** files renamed (X -> X.ext) to the most frequent new extension, of all renames seen */
  renames: { count: number; total: number; extension: string | null; examples: string[] };
  /**
   * sampled files whose start went from below LOW_ENTROPY to at least HIGH_ENTROPY bits per byte; `mtimeKept`: how
   * many of them kept their size and mtime (only the inode change time moved: the mtime was put back, `touch -r`)
   */
  entropyRewrites: { count: number; sampled: number; examples: string[]; mtimeKept: number };
  /** changed files whose size and mtime are the same but whose ctime moved (ext, XFS, NTFS: rewritten in place?) */
  ctimeOnly: number;
  reasons: string[];
  /** the scan stopped at a bound somewhere (`notes` say where): counts are lower bounds */
  partial: boolean;
  notes: string[];
}

/** Shannon entropy of a byte sample, bits per byte (0..8). */
export function entropyBitsPerByte(data: Uint8Array): number {
  if (data.length === 0) return 0;
  const counts = new Uint32Array(256);
  for (const b of data) counts[b]!++;
  let h = 0;
  for (const c of counts) {
    if (c === 0) continue;
    const p = c / data.length;
    h -= p * Math.log2(p);
  }
  return h;
}

export function isRansomNote(name: string): boolean {
  return RANSOM_NOTE_NAMES.some((re) => re.test(name));
}

const RENAME_EXT = /^\.([A-Za-z0-9_-]{1,24})$/;

/** Renames X -> X.ext within one directory: the new extension of each added path whose base was removed. */
export function findRenames(changes: readonly FileChange[]): { from: string; to: string; extension: string }[] {
  const removed = new Set(changes.filter((c) => c.change === 'removed' && c.type === 'file').map((c) => c.path));
  const out: { from: string; to: string; extension: string }[] = [];
  for (const c of changes) {
    if (c.change !== 'added' || c.type !== 'file') continue;
    const dot = c.path.lastIndexOf('.');
    if (dot <= c.path.lastIndexOf('/') + 1) continue;
    const m = RENAME_EXT.exec(c.path.slice(dot));
    if (m && removed.has(c.path.slice(0, dot))) out.push({ from: c.path.slice(0, dot), to: c.path, extension: m[1]! });
  }
  return out;
}

/** The first bytes of a regular file (at most `limit`), or undefined when it cannot be read. */
async function sample(fs: GuestFs, node: FsNode, limit: number, op: Op): Promise<Buffer | undefined> {
  if (node.type !== 'file' || node.error) return undefined;
  const out = Buffer.alloc(Math.min(node.sizeBytes, limit));
  let filled = 0;
  for await (const piece of fs.read(node, op)) {
    if (piece.offset >= out.length) break;
    const n = Math.min(piece.data.length, out.length - piece.offset);
    piece.data.copy(out, piece.offset, 0, n);
    filled = Math.max(filled, piece.offset + n);
    if (filled >= out.length) break;
  }
  return out.subarray(0, filled);
}

async function lookup(fs: GuestFs, path: string, op: Op): Promise<FsNode | undefined> {
  let node = await fs.root(op);
  for (const name of path.split('/').filter(Boolean)) {
    if (node.type !== 'dir') return undefined;
    const next = (await fs.list(node, op)).find((e) => e.name === name);
    if (!next) return undefined;
    node = next;
  }
  return node;
}

/**
 * Looks for ransomware's traces in the guest files of restore point `pointId` against `againstId` (the VM's previous
 * point): the files diff (engine file-search) of every readable volume present in both, then ransom-note names among
 * the added files, renames to one new extension, and the entropy of the first bytes of up to INDICATOR_LIMITS.samples
 * rewritten files in both versions. Bounded by INDICATOR_LIMITS; reads nothing but those samples and the metadata.
 */
export async function scanFileIndicators(
  repo: Repository,
  pool: CodecPool,
  pointId: string,
  againstId: string,
  op: Op = {},
): Promise<IndicatorRecord> {
  const time = new Date().toISOString();
  const notes: string[] = [];
  const rec: IndicatorRecord = {
    pointId,
    againstId,
    time,
    kind: 'files',
    found: false,
    changes: { added: 0, removed: 0, changed: 0 },
    ransomNotes: { count: 0, examples: [] },
    renames: { count: 0, total: 0, extension: null, examples: [] },
    entropyRewrites: { count: 0, sampled: 0, examples: [], mtimeKept: 0 },
    ctimeOnly: 0,
    reasons: [],
    partial: false,
    notes,
  };
  const vb = await volumesOf(repo, pool, pointId, {}, notes, op);
  const va = await volumesOf(repo, pool, againstId, {}, notes, op);
  const byExt = new Map<string, { from: string; to: string }[]>();
  let walked = 0;
  let listed = 0;
  for (const v of vb) {
    if (!va.some((x) => x.disk === v.disk && x.partition === v.partition)) {
      notes.push(`disk ${v.disk} partition ${v.partition} is not in ${againstId}: not compared`);
      continue;
    }
    const a = { pointId: againstId, disk: v.disk, partition: v.partition };
    const b = { pointId, disk: v.disk, partition: v.partition };
    let changes: FileChange[];
    try {
      const d = await diffVolumes(
        repo,
        pool,
        a,
        b,
        '/',
        {
          entries: Math.max(1, INDICATOR_LIMITS.entries - walked),
          results: Math.max(1, INDICATOR_LIMITS.changes - listed),
          content: false,
          ctime: true,
        },
        op,
      );
      walked += d.entriesWalked;
      listed += d.changes.length;
      changes = d.changes;
      if (d.stopped) {
        rec.partial = true;
        notes.push(`${d.stopped} on disk ${v.disk} partition ${v.partition}`);
      }
      if (listed >= INDICATOR_LIMITS.changes) {
        rec.partial = true;
        notes.push(`change limit ${INDICATOR_LIMITS.changes} reached on disk ${v.disk} partition ${v.partition}`);
      }
      for (const e of d.errors.slice(0, 20))
        notes.push(`disk ${v.disk} partition ${v.partition}: ${e.path}: ${e.message}`);
    } catch (e) {
      const err = asCofferError(e);
      if (err.code === 'CANCELLED') throw err;
      notes.push(`disk ${v.disk} partition ${v.partition}: [${err.code}] ${err.message}`);
      continue;
    }
    const where = (p: string) => (vb.length > 1 ? `disk ${v.disk} partition ${v.partition}: ${p}` : p);
    for (const c of changes) rec.changes[c.change]++;
    // rewritten in place with size and mtime put back: only the ctime (set by the guest's kernel) gives them away
    const ctimeOnly = new Set(
      changes
        .filter((c) => c.change === 'changed' && c.fields?.length === 1 && c.fields[0] === 'ctime')
        .map((c) => c.path),
    );
    rec.ctimeOnly += ctimeOnly.size;
    for (const c of changes) {
      if (c.change !== 'added' || c.type !== 'file') continue;
      if (!isRansomNote(c.path.slice(c.path.lastIndexOf('/') + 1))) continue;
      rec.ransomNotes.count++;
      if (rec.ransomNotes.examples.length < INDICATOR_LIMITS.examples) rec.ransomNotes.examples.push(where(c.path));
    }
    const renames = findRenames(changes);
    rec.renames.total += renames.length;
    for (const r of renames)
      byExt.set(r.extension, [...(byExt.get(r.extension) ?? []), { from: where(r.from), to: where(r.to) }]);
    // content samples: files rewritten in place, and the renamed ones (old name in A, new name in B)
    const pairs: { from: string; to: string }[] = [
      ...renames.map((r) => ({ from: r.from, to: r.to })),
      ...changes.filter((c) => c.change === 'changed' && c.type === 'file').map((c) => ({ from: c.path, to: c.path })),
    ];
    const left = INDICATOR_LIMITS.samples - rec.entropyRewrites.sampled;
    if (pairs.length > left) {
      rec.partial = true;
      notes.push(
        `${pairs.length - Math.max(0, left)} rewritten files not sampled (at most ${INDICATOR_LIMITS.samples})`,
      );
    }
    if (left <= 0) continue;
    const ga = await openGuest(repo, pool, a, op);
    try {
      const gb = await openGuest(repo, pool, b, op);
      try {
        for (const p of spreadPick(pairs, left)) {
          op.signal?.throwIfAborted();
          try {
            const [na, nb] = [await lookup(ga.fs, p.from, op), await lookup(gb.fs, p.to, op)];
            if (!na || !nb) continue;
            const [sa, sb] = [
              await sample(ga.fs, na, INDICATOR_LIMITS.sampleBytes, op),
              await sample(gb.fs, nb, INDICATOR_LIMITS.sampleBytes, op),
            ];
            if (!sa || !sb || sa.length < MIN_SAMPLE_BYTES || sb.length < MIN_SAMPLE_BYTES) continue;
            rec.entropyRewrites.sampled++;
            if (entropyBitsPerByte(sa) < LOW_ENTROPY && entropyBitsPerByte(sb) >= HIGH_ENTROPY) {
              rec.entropyRewrites.count++;
              if (p.from === p.to && ctimeOnly.has(p.to)) rec.entropyRewrites.mtimeKept++;
              if (rec.entropyRewrites.examples.length < INDICATOR_LIMITS.examples)
                rec.entropyRewrites.examples.push(where(p.to));
            }
          } catch (e) {
            const err = asCofferError(e);
            if (err.code === 'CANCELLED') throw err;
            if (notes.length < 200) notes.push(`${where(p.to)}: not sampled: [${err.code}] ${err.message}`);
          }
        }
      } finally {
        await gb.close();
      }
    } finally {
      await ga.close();
    }
  }
  const top = [...byExt.entries()].sort((x, y) => y[1].length - x[1].length)[0];
  if (top) {
    rec.renames.count = top[1].length;
    rec.renames.extension = `.${top[0]}`;
    rec.renames.examples = top[1].slice(0, INDICATOR_LIMITS.examples).map((r) => `${r.from} -> ${r.to}`);
  }
  verdict(rec);
  if (vb.length === 0) notes.push(`no readable filesystem in ${pointId}: no file-level indicators`);
  return rec;
}

/** Up to `n` items spread over the list (every k-th), so a bounded sample sees all of it. */
function spreadPick<T>(items: T[], n: number): T[] {
  if (items.length <= n) return items;
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(items[Math.floor((i * items.length) / n)]!);
  return out;
}

function verdict(rec: IndicatorRecord): void {
  const t = INDICATOR_THRESHOLDS;
  const r = rec.reasons;
  if (rec.ransomNotes.count >= t.notes)
    r.push(`${rec.ransomNotes.count} ransom note(s) dropped, e.g. ${rec.ransomNotes.examples[0]}`);
  if (rec.renames.count >= t.renames && rec.renames.count >= rec.renames.total * t.renameShare)
    r.push(`${rec.renames.count} files renamed to ${rec.renames.extension}, e.g. ${rec.renames.examples[0]}`);
  const e = rec.entropyRewrites;
  if (e.count >= t.entropyRewrites && e.count >= e.sampled * t.entropyShare)
    r.push(
      `${e.count} of ${e.sampled} sampled rewritten files became incompressible (high entropy)` +
        (e.mtimeKept > 0 ? `, ${e.mtimeKept} of them with size and mtime kept (only the ctime moved)` : ''),
    );
  rec.found = r.length > 0;
}

/** Throws NOT_FOUND when the point has no earlier point of its VM to compare with. */
export function noEarlierPoint(pointId: string): never {
  throw new CofferError('NOT_FOUND', `restore point ${pointId} has no earlier point of its VM to compare with`);
}
