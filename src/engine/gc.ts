import {
  CHUNKS_PREFIX,
  GC_SCOPE,
  HOLDS_PREFIX,
  INDEXES_PREFIX,
  IdSet,
  IdSetBuilder,
  VERIFICATIONS_PREFIX,
  chunkBlob,
  indexBlob,
  listCondemned,
  listRescues,
  readGcSets,
  readLeases,
  writeCondemned,
  type LeaseEntry,
  type Repository,
} from '../repository/index.js';
import type { BlobStore } from '../storage/index.js';
import { FIXED_INDEX_HEADER_BYTES } from '../format/index.js';
import { CofferError, HEX64, TaskWindow, type BlobName, type Op } from '../shared/index.js';
import { GC_SWEEP_OPERATION } from './gc-guard.js';

export interface PruneRequest extends Op {
  onWarning?: (message: string) => void;
  onProgress?: (p: { phase: string; done: number }) => void;
  /** temporary files of crashed puts older than this are removed (default 60 s; never newer than the oldest live writer) */
  tempAgeMs?: number;
  now?: () => number;
}

export interface PruneReport {
  points: number;
  chunksReferenced: number;
  indexesReferenced: number;
  chunksDeleted: number;
  indexesDeleted: number;
  bytesDeleted: number;
  /** unreferenced objects written into a new condemned generation by this run (deleted by this or a later run) */
  chunksCondemned: number;
  indexesCondemned: number;
  /** condemned objects a running writer rescued (kept) */
  rescued: number;
  /** delete rejected IMMUTABLE: kept, locked */
  locked: number;
  /** condemned generations not swept because a running writer has not seen them */
  deferred: string[];
  deferredReason?: string;
  liveWriters: number;
  tempFilesRemoved: number;
  staleLeasesRemoved: number;
  orphansRemoved: number;
  durationMs: number;
}

/** A store that can remove temporary files left by crashed puts (LocalBlobStore). */
type TempSweeping = BlobStore & { sweepTemp?: (maxAgeMs: number, now?: number) => Promise<number> };

/**
 * Garbage collection without an exclusive repository lock (DESIGN.md §Garbage collection, ADR 0006). Backups, repairs,
 * restores and verifies run meanwhile. In short:
 *  1. take the `gc` lease (one prune at a time), note the live writers;
 *  2. mark: the ids referenced by every committed restore point (a compact sorted id set, bounded memory);
 *  3. condemn: stream the listing of chunks/ and indexes/; unreferenced objects older than the oldest live writer
 *     form a new condemned generation, written to gc/condemned/;
 *  4. sweep: switch the lease to `gc-sweep` (writers that use a condemned object wait while it is up), list the writers
 *     again; a generation is swept only if every live writer has seen it (lease `gcSeen`), otherwise deferred to a later
 *     run; read the rescues, mark again the points committed since step 2, and delete what is in the generation, still
 *     unreferenced and not rescued; then delete the generation;
 *  5. housekeeping: verification records and holds of deleted points, rescues of finished writers, stale leases,
 *     temporary files of crashed puts.
 * IMMUTABLE on delete means "kept: locked", never a failure.
 */
export async function prune(repo: Repository, req: PruneRequest = {}): Promise<PruneReport> {
  const now = req.now ?? Date.now;
  const started = now();
  const op: Op = { signal: req.signal };
  const store = repo.store;
  const report: PruneReport = {
    points: 0,
    chunksReferenced: 0,
    indexesReferenced: 0,
    chunksDeleted: 0,
    indexesDeleted: 0,
    bytesDeleted: 0,
    chunksCondemned: 0,
    indexesCondemned: 0,
    rescued: 0,
    locked: 0,
    deferred: [],
    liveWriters: 0,
    tempFilesRemoved: 0,
    staleLeasesRemoved: 0,
    orphansRemoved: 0,
    durationMs: 0,
  };
  const lease = await repo.acquireLease(GC_SCOPE, 'gc-mark');
  try {
    // 1. writers running now; stale leases go
    const writers0 = await liveWriters(store, report);
    const oldestWriter = Math.min(started, ...writers0.map((w) => w.info?.acquiredAt ?? 0));
    const generations = await listCondemned(store, op);
    // what earlier (deferred) generations already condemn is not condemned again
    let already = { chunks: IdSet.empty, indexes: IdSet.empty };
    for (const g of generations) {
      try {
        const s = await readGcSets(store, 'condemned', g, op);
        already = { chunks: already.chunks.union(s.chunks), indexes: already.indexes.union(s.indexes) };
      } catch (e) {
        if (!(e instanceof CofferError) || (e.code !== 'CORRUPT' && e.code !== 'NOT_FOUND')) throw e;
      }
    }

    // 2. mark
    const marked = await mark(repo, new Set(), undefined, op, req);
    report.points = marked.points.size;

    // 3. condemn: unreferenced and older than every live writer (newer ones are probably a running backup's)
    const newChunks = new IdSetBuilder(65_536);
    const newIndexes = new IdSetBuilder(4096);
    let listed = 0;
    for (const [prefix, referenced, out, condemnedBefore] of [
      [CHUNKS_PREFIX, marked.chunks, newChunks, already.chunks],
      [INDEXES_PREFIX, marked.indexes, newIndexes, already.indexes],
    ] as const) {
      for await (const b of store.list(prefix, op)) {
        if (++listed % 10_000 === 0) req.onProgress?.({ phase: 'listing', done: listed });
        const hex = b.name.slice(b.name.lastIndexOf('/') + 1);
        if (!HEX64.test(hex) || b.name !== `${prefix}${hex.slice(0, 2)}/${hex}`) continue;
        const id = Buffer.from(hex, 'hex');
        if (referenced.has(id) || b.modifiedAt.getTime() >= oldestWriter || condemnedBefore.has(id)) continue;
        out.add(id);
      }
    }
    const condemned = { chunks: newChunks.build(), indexes: newIndexes.build() };
    report.chunksCondemned = condemned.chunks.size;
    report.indexesCondemned = condemned.indexes.size;
    if (condemned.chunks.size + condemned.indexes.size > 0) generations.push(await writeCondemned(store, condemned, now(), op));

    // 4. sweep
    lease.check();
    await lease.update({ operation: GC_SWEEP_OPERATION });
    const writers1 = await liveWriters(store, report);
    report.liveWriters = writers1.length;
    const sweepable: BlobName[] = [];
    for (const g of generations) {
      const blocker = writers1.find((w) => !w.info?.gcSeen?.includes(g));
      if (blocker) {
        report.deferred.push(g);
        report.deferredReason ??= `${blocker.info ? `${blocker.info.operation} on ${blocker.info.host} (pid ${blocker.info.pid}) since ${new Date(blocker.info.acquiredAt).toISOString()}` : `an unreadable lease ${blocker.name}`} has not seen it; the next prune deletes it`;
      } else sweepable.push(g);
    }
    if (sweepable.length > 0) {
      let rescuedChunks = IdSet.empty;
      let rescuedIndexes = IdSet.empty;
      for (const r of await listRescues(store, op)) {
        try {
          const s = await readGcSets(store, 'rescue', r.name, op);
          rescuedChunks = rescuedChunks.union(s.chunks);
          rescuedIndexes = rescuedIndexes.union(s.indexes);
        } catch (e) {
          if (e instanceof CofferError && e.code === 'NOT_FOUND') continue; // its writer finished
          throw e;
        }
      }
      // points committed since the first mark (by writers that finished meanwhile) count too
      const again = await mark(repo, marked.points, marked, op, req);
      for (const g of sweepable) {
        let sets;
        try {
          sets = await readGcSets(store, 'condemned', g, op);
        } catch (e) {
          if (!(e instanceof CofferError) || e.code !== 'CORRUPT') throw e;
          req.onWarning?.(`${g} is unreadable (${e.message}); removing it, its objects are condemned again by the next prune`);
          await store.delete(g, op);
          continue;
        }
        // deletes 16 at a time (one at a time, a million deletions wait a million round trips)
        const window = new TaskWindow(16);
        try {
          for (const [kind, ids, referenced, rescued] of [
            ['chunk', sets.chunks, again.chunks, rescuedChunks],
            ['index', sets.indexes, again.indexes, rescuedIndexes],
          ] as const) {
            for (let i = 0; i < ids.size; i++) {
              const id = ids.at(i);
              if (referenced.has(id)) continue;
              if (rescued.has(id)) {
                report.rescued++;
                continue;
              }
              if (i % 256 === 0) {
                lease.check();
                op.signal?.throwIfAborted();
                req.onProgress?.({ phase: 'deleting', done: report.chunksDeleted + report.indexesDeleted });
              }
              const name = kind === 'chunk' ? chunkBlob(id.toString('hex')) : indexBlob(id.toString('hex'));
              await window.run(async () => {
                const st = await store.stat(name, op);
                if (!st) return;
                try {
                  await store.delete(name, op);
                } catch (e) {
                  if (e instanceof CofferError && e.code === 'IMMUTABLE') {
                    report.locked++;
                    return;
                  }
                  throw e;
                }
                report.bytesDeleted += st.sizeBytes;
                if (kind === 'chunk') report.chunksDeleted++;
                else report.indexesDeleted++;
              });
            }
          }
          await window.drain();
        } catch (e) {
          await window.settle();
          throw e;
        }
        await store.delete(g, op);
      }
      report.chunksReferenced = again.chunks.size;
      report.indexesReferenced = again.indexes.size;
    } else {
      report.chunksReferenced = marked.chunks.size;
      report.indexesReferenced = marked.indexes.size;
    }
    await lease.update({ operation: 'gc-housekeeping' });

    // 5. housekeeping
    report.orphansRemoved = await removeOrphans(repo, op);
    const leaseHolders = new Set((await readLeases(store)).map((l) => l.info?.holder ?? l.name.slice(l.name.lastIndexOf('/') + 1, l.name.lastIndexOf('-'))));
    for (const r of await listRescues(store, op)) {
      if (!leaseHolders.has(r.holder)) {
        await store.delete(r.name, op);
        report.orphansRemoved++;
      }
    }
    const sweeper = store as TempSweeping;
    if (typeof sweeper.sweepTemp === 'function') {
      const writers = await liveWriters(store, report);
      const ageMs = req.tempAgeMs ?? 60_000;
      const cutoff = Math.min(now() - ageMs, ...writers.map((w) => (w.info?.acquiredAt ?? 0) - ageMs));
      report.tempFilesRemoved = await sweeper.sweepTemp(now() - cutoff, now());
    }
  } finally {
    await lease.release();
  }
  report.durationMs = now() - started;
  return report;
}

/** Live leases of every scope but the GC's own; stale ones are removed (their holders are dead). */
async function liveWriters(store: BlobStore, report: PruneReport): Promise<LeaseEntry[]> {
  const out: LeaseEntry[] = [];
  for (const l of await readLeases(store)) {
    if (l.scope === GC_SCOPE) continue;
    if (l.stale) {
      await store.delete(l.name).catch(() => undefined);
      report.staleLeasesRemoved++;
      continue;
    }
    out.push(l);
  }
  return out;
}

interface Marked {
  points: Set<string>;
  chunks: IdSet;
  indexes: IdSet;
}

/**
 * The ids referenced by committed restore points, in bounded memory (IdSetBuilder). With `known`, only points not in
 * `skip` are read and their ids added to `known`'s sets. A manifest or index that cannot be read for any reason other
 * than "deleted meanwhile" stops the prune before anything is deleted: its chunks would look unreferenced.
 */
async function mark(repo: Repository, skip: Set<string>, known: Marked | undefined, op: Op, req: PruneRequest): Promise<Marked> {
  const chunks = new IdSetBuilder();
  const indexIds: Buffer[] = [];
  const points = new Set(skip);
  let n = 0;
  for await (const id of repo.pointIds(op)) {
    if (skip.has(id)) continue;
    let manifest;
    try {
      manifest = await repo.loadManifest(id, op);
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') continue; // forgotten meanwhile
      throw new CofferError('CORRUPT', `prune stopped before deleting anything: restore point ${id} is unreadable (${(e as Error).message})`, {
        hint: 'run `coffer verify`; repair or remove the damaged restore point first',
      });
    }
    points.add(id);
    for (const d of manifest.disks) {
      let index;
      try {
        index = await repo.loadIndex(d.indexId, op);
      } catch (e) {
        if (e instanceof CofferError && e.code === 'CORRUPT' && e.details.missing === true) {
          // the index is gone: the point cannot be restored, and which chunks it used is unknowable
          req.onWarning?.(`restore point ${id}: index ${d.indexId} is missing; the point is broken (run verify)`);
          continue;
        }
        if (e instanceof CofferError && e.code === 'CANCELLED') throw e;
        throw new CofferError('CORRUPT', `prune stopped before deleting anything: index ${d.indexId} of restore point ${id} is unreadable (${(e as Error).message})`, {
          hint: 'run `coffer verify`; repair or remove the damaged restore point first',
        });
      }
      indexIds.push(Buffer.from(d.indexId, 'hex'));
      chunks.addConcatenated(index.bytes.subarray(FIXED_INDEX_HEADER_BYTES));
    }
    if (++n % 100 === 0) req.onProgress?.({ phase: 'marking', done: n });
  }
  const c = chunks.build();
  const i = IdSet.fromConcatenated(Buffer.concat(indexIds));
  return { points, chunks: known ? known.chunks.union(c) : c, indexes: known ? known.indexes.union(i) : i };
}

/**
 * Verification records and holds of restore points that no longer exist, and verification records beyond the newest
 * three of each point (each verify run adds one per point; only the newest outcome is ever consulted).
 */
async function removeOrphans(repo: Repository, op: Op): Promise<number> {
  const points = new Set<string>();
  for await (const id of repo.pointIds(op)) points.add(id);
  let removed = 0;
  const records = new Map<string, string[]>();
  for (const prefix of [VERIFICATIONS_PREFIX, HOLDS_PREFIX]) {
    for await (const b of repo.store.list(prefix, op)) {
      const pointId = b.name.slice(prefix.length).split('/')[0]!;
      if (!/^[0-9a-f]{32}$/.test(pointId)) continue;
      if (!points.has(pointId)) {
        await repo.store.delete(b.name, op);
        removed++;
      } else if (prefix === VERIFICATIONS_PREFIX) {
        const list = records.get(pointId) ?? [];
        list.push(b.name);
        records.set(pointId, list);
      }
    }
  }
  for (const names of records.values()) {
    if (names.length <= KEEP_VERIFICATIONS) continue;
    // names end in <15-digit ms>-<outcome>: sorting by name sorts by time
    for (const name of names.sort().slice(0, names.length - KEEP_VERIFICATIONS)) {
      await repo.store.delete(name as BlobName, op);
      removed++;
    }
  }
  return removed;
}

const KEEP_VERIFICATIONS = 3;
