import type { Repository } from '../../repository/index.js';
import { CofferError, asCofferError } from '../../shared/index.js';
import {
  diffVolumes,
  findInVolume,
  GuestGlob,
  volumesOf,
  type FileChange,
  type FindMatch,
  type VolumeSelection,
} from '../file-search.js';
import { withCodecPool, type UseCaseContext } from './context.js';

export const FIND_DEFAULTS = { maxPoints: 50, entriesPerPoint: 200_000, maxResults: 1000 } as const;

export interface FindFilesRequest extends VolumeSelection {
  /** a guest path or glob (`*`, `?`, `**`, `[...]`) over the full path */
  pattern: string;
  /** only these restore points (ids) */
  points?: string[] | undefined;
  /** only restore points of this VM (name or id); default all */
  vm?: string | undefined;
  /** only restore points taken at or after this time (ISO 8601 or a date) */
  since?: string | undefined;
  /** only the newest N restore points are searched */
  maxPoints?: number | undefined;
  /** entries walked at most in one restore point */
  entriesPerPoint?: number | undefined;
  /** matches returned at most */
  maxResults?: number | undefined;
}

export interface FindFilesResult {
  pattern: string;
  matches: FindMatch[];
  /** the restore points searched, newest first, with the entries walked in each */
  points: { id: string; time: string; vm: string; entriesWalked: number; volumes: number; stopped?: string }[];
  /** restore points that fitted the filters but were not searched (--max-points) */
  pointsSkipped: number;
  /** true when some budget or limit was hit: the answer is not the full one (`notes` say where) */
  partial: boolean;
  notes: string[];
  durationMs: number;
}

function parseSince(since: string | undefined): string | undefined {
  if (since === undefined) return undefined;
  const t = Date.parse(since);
  if (!Number.isFinite(t))
    throw new CofferError(
      'USAGE',
      `--since ${JSON.stringify(since)}: not a date (use ISO 8601, e.g. 2026-03-01 or 2026-03-01T12:00:00Z)`,
    );
  return new Date(t).toISOString();
}

function positive(n: number | undefined, def: number, what: string): number {
  if (n === undefined) return def;
  if (!Number.isSafeInteger(n) || n < 1) throw new CofferError('USAGE', `${what} must be a positive integer`);
  return n;
}

/**
 * Where a path or glob exists across restore points (newest first): the "which backup has the version from before
 * Tuesday" question. Bounded: at most `maxPoints` points, `entriesPerPoint` entries walked in each, `maxResults`
 * matches; each limit hit is said in `notes` and sets `partial`.
 */
export async function findFiles(
  repo: Repository,
  ctx: UseCaseContext,
  req: FindFilesRequest,
): Promise<FindFilesResult> {
  const started = Date.now();
  const glob = new GuestGlob(req.pattern);
  const since = parseSince(req.since);
  const maxPoints = positive(req.maxPoints, FIND_DEFAULTS.maxPoints, '--max-points');
  const entries = positive(req.entriesPerPoint, FIND_DEFAULTS.entriesPerPoint, '--max-entries');
  const maxResults = positive(req.maxResults, FIND_DEFAULTS.maxResults, '--limit');
  const op = { signal: ctx.signal };
  const notes: string[] = [];
  const all = await repo.listPoints(op, (id, e) =>
    notes.push(`restore point ${id} unreadable: [${e.code}] ${e.message}`),
  );
  const candidates = all
    .filter((m) => req.vm === undefined || m.vm.name === req.vm || m.vm.id === req.vm)
    .filter((m) => req.points === undefined || req.points.includes(m.id))
    .filter((m) => since === undefined || Date.parse(m.time) >= Date.parse(since))
    .reverse();
  if (req.vm !== undefined && !all.some((m) => m.vm.name === req.vm || m.vm.id === req.vm))
    throw new CofferError('NOT_FOUND', `no restore points of VM ${JSON.stringify(req.vm)}`);
  const points = candidates.slice(0, maxPoints);
  const result: FindFilesResult = {
    pattern: req.pattern,
    matches: [],
    points: [],
    pointsSkipped: candidates.length - points.length,
    partial: false,
    notes,
    durationMs: 0,
  };
  if (result.pointsSkipped > 0)
    notes.push(`only the newest ${maxPoints} of ${candidates.length} restore points were searched (--max-points)`);
  await withCodecPool(ctx, repo.codecParams, async (pool) => {
    for (const m of points) {
      if (result.matches.length >= maxResults) {
        notes.push(
          `result limit ${maxResults} reached: restore points older than ${result.points.at(-1)?.id ?? '-'} were ` +
            'not searched (--limit)',
        );
        break;
      }
      const rec: FindFilesResult['points'][number] = {
        id: m.id,
        time: m.time,
        vm: m.vm.name,
        entriesWalked: 0,
        volumes: 0,
      };
      result.points.push(rec);
      const volumes = await volumesOf(repo, pool, m.id, req, notes, op);
      rec.volumes = volumes.length;
      for (const v of volumes) {
        const left = entries - rec.entriesWalked;
        if (left <= 0) {
          rec.stopped =
            `search stopped at ${rec.entriesWalked} entries in point ${m.id} (entry budget; disk ${v.disk} ` +
            `partition ${v.partition} not searched)`;
          notes.push(rec.stopped);
          break;
        }
        try {
          const r = await findInVolume(
            repo,
            pool,
            { pointId: m.id, disk: v.disk, partition: v.partition },
            glob,
            { entries: left, results: maxResults - result.matches.length },
            op,
          );
          rec.entriesWalked += r.entriesWalked;
          for (const f of r.matches) {
            const hit: FindMatch = {
              pointId: m.id,
              time: m.time,
              vm: m.vm.name,
              disk: v.disk,
              partition: v.partition,
              path: f.path,
              type: f.type,
              size: f.size,
              mtime: f.mtime,
            };
            if (f.linkTarget !== undefined) hit.linkTarget = f.linkTarget;
            result.matches.push(hit);
          }
          for (const e of r.errors)
            notes.push(`point ${m.id} disk ${v.disk} partition ${v.partition}: ${e.path}: [${e.code}] ${e.message}`);
          if (r.stopped) {
            rec.stopped = r.stopped.replace(
              /^search stopped at \d+ entries/,
              `search stopped at ${rec.entriesWalked} entries`,
            );
            notes.push(rec.stopped);
            break;
          }
          if (result.matches.length >= maxResults) {
            notes.push(`result limit ${maxResults} reached in point ${m.id} (--limit)`);
            break;
          }
        } catch (e) {
          const err = asCofferError(e);
          if (err.code === 'CANCELLED') throw err;
          notes.push(`point ${m.id} disk ${v.disk} partition ${v.partition}: [${err.code}] ${err.message}`);
        }
      }
    }
  });
  result.partial =
    result.pointsSkipped > 0 ||
    result.points.some((p) => p.stopped !== undefined) ||
    result.matches.length >= maxResults ||
    notes.some((n) => n.startsWith('result limit'));
  result.durationMs = Date.now() - started;
  return result;
}

export interface DiffFilesRequest extends VolumeSelection {
  a: string;
  b: string;
  /** the subtree compared; default '/' */
  path?: string | undefined;
  /** compare two different VMs' points */
  force?: boolean | undefined;
  /** read and compare files whose size and mtime are equal */
  content?: boolean | undefined;
  entries?: number | undefined;
  maxResults?: number | undefined;
}

export interface DiffFilesResult {
  a: { id: string; time: string; vm: string };
  b: { id: string; time: string; vm: string };
  path: string;
  volumes: {
    disk: number;
    partition: number | string;
    changes: FileChange[];
    entriesWalked: number;
    contentCompared: number;
    stopped?: string;
  }[];
  counts: { added: number; removed: number; changed: number };
  partial: boolean;
  notes: string[];
  durationMs: number;
}

/** What changed between two restore points of one VM, volume by volume (the same disk and partition in both). */
export async function diffFiles(
  repo: Repository,
  ctx: UseCaseContext,
  req: DiffFilesRequest,
): Promise<DiffFilesResult> {
  const started = Date.now();
  const op = { signal: ctx.signal };
  const [ma, mb] = [await repo.loadManifest(req.a, op), await repo.loadManifest(req.b, op)];
  const sameVm = ma.vm.id !== null && mb.vm.id !== null ? ma.vm.id === mb.vm.id : ma.vm.name === mb.vm.name;
  if (!sameVm && !req.force)
    throw new CofferError(
      'USAGE',
      `restore points ${ma.id} (VM ${ma.vm.name}) and ${mb.id} (VM ${mb.vm.name}) are of different VMs; ` +
        'use --force to compare them anyway',
    );
  const entries = positive(req.entries, FIND_DEFAULTS.entriesPerPoint, '--max-entries');
  const maxResults = positive(req.maxResults, 10_000, '--limit');
  const path = req.path ?? '/';
  const notes: string[] = [];
  const result: DiffFilesResult = {
    a: { id: ma.id, time: ma.time, vm: ma.vm.name },
    b: { id: mb.id, time: mb.time, vm: mb.vm.name },
    path,
    volumes: [],
    counts: { added: 0, removed: 0, changed: 0 },
    partial: false,
    notes,
    durationMs: 0,
  };
  await withCodecPool(ctx, repo.codecParams, async (pool) => {
    const va = await volumesOf(repo, pool, ma.id, req, notes, op);
    const vb = await volumesOf(repo, pool, mb.id, req, notes, op);
    const key = (v: { disk: number; partition: number | string }) => `${v.disk}:${v.partition}`;
    const inB = new Set(vb.map(key));
    for (const v of vb)
      if (!va.some((x) => key(x) === key(v)))
        notes.push(`disk ${v.disk} partition ${v.partition} is only in ${mb.id}: not compared`);
    let walked = 0;
    let found = 0;
    for (const v of va) {
      if (!inB.has(key(v))) {
        notes.push(`disk ${v.disk} partition ${v.partition} is only in ${ma.id}: not compared`);
        continue;
      }
      if (walked >= entries || found >= maxResults) {
        notes.push(
          `diff stopped before disk ${v.disk} partition ${v.partition} ` +
            `(${walked >= entries ? 'entry budget' : 'result limit'})`,
        );
        result.partial = true;
        continue;
      }
      try {
        const r = await diffVolumes(
          repo,
          pool,
          { pointId: ma.id, disk: v.disk, partition: v.partition },
          { pointId: mb.id, disk: v.disk, partition: v.partition },
          path,
          { entries: entries - walked, results: maxResults - found, content: Boolean(req.content) },
          op,
        );
        walked += r.entriesWalked;
        found += r.changes.length;
        const vol: DiffFilesResult['volumes'][number] = {
          disk: v.disk,
          partition: v.partition,
          changes: r.changes,
          entriesWalked: r.entriesWalked,
          contentCompared: r.contentCompared,
        };
        if (r.stopped) {
          vol.stopped = `${r.stopped} on disk ${v.disk} partition ${v.partition}`;
          notes.push(vol.stopped);
          result.partial = true;
        }
        if (found >= maxResults) {
          notes.push(`result limit ${maxResults} reached (--limit)`);
          result.partial = true;
        }
        for (const e of r.errors)
          notes.push(`disk ${v.disk} partition ${v.partition}: ${e.path}: [${e.code}] ${e.message}`);
        for (const c of r.changes) result.counts[c.change]++;
        result.volumes.push(vol);
      } catch (e) {
        const err = asCofferError(e);
        if (err.code === 'CANCELLED' || (req.partition !== undefined && req.disk !== undefined)) throw err;
        notes.push(`disk ${v.disk} partition ${v.partition}: [${err.code}] ${err.message}`);
      }
    }
  });
  result.durationMs = Date.now() - started;
  return result;
}
