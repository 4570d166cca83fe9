import { GC_SCOPE, IdSet, IdSetBuilder, type LeaseEntry, type Repository } from '../repository/index.js';
import { CofferError, TaskWindow, chunkIdOf, type BlobName, type Op, type RestorePointId } from '../shared/index.js';
import { GC_SWEEP_OPERATION } from './gc-guard.js';

export interface PruneRequest extends Op {
  onWarning?: (message: string) => void;
  onProgress?: (p: { phase: string; done: number }) => void;
  /**
   * temporary files of crashed puts older than this are removed (default 60 s; never newer than the oldest live writer)
   */
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

/**
 * Garbage collection without an exclusive repository lock (DESIGN.md §Garbage collection, ADR 0006). Backups, repairs,
 * restores and verifies run meanwhile. In short:
 *  1. take the `gc` lease (one prune at a time), note the live writers;
 *  2. mark: the ids referenced by every committed restore point (a compact sorted id set, bounded memory);
 *  3. condemn: stream the listing of chunks/ and indexes/; unreferenced objects older than the oldest live writer
 *     form a new condemned generation, written to gc/condemned/;
 *  4. sweep: switch the lease to `gc-sweep` (writers that use a condemned object wait while it is up), list the writers
 *     again; a generation is swept only if every live writer has seen it (lease `gcSeen`), otherwise deferred to a
 *     later run; read the rescues, mark again the points committed since step 2, and delete what is in the generation,
 *     still unreferenced and not rescued; then delete the generation;
 *  5. housekeeping: verification records and holds of deleted points, rescues of finished writers, stale leases,
 *     temporary files of crashed puts.
 * IMMUTABLE on delete means "kept: locked", never a failure.
 */
export async function prune(repo: Repository, req: PruneRequest = {}): Promise<PruneReport> {
  const now = req.now ?? Date.now;
  const started = now();
  const op: Op = { signal: req.signal };
  const gc = repo.gc;
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
    const writers0 = await liveWriters(repo, report);
    const oldestWriter = Math.min(started, ...writers0.map((w) => w.info?.acquiredAt ?? 0));
    const generations = await gc.listCondemned(op);
    // what earlier (deferred) generations already condemn is not condemned again
    let already = { chunks: IdSet.empty, indexes: IdSet.empty };
    for (const g of generations) {
      try {
        const s = await gc.readSets('condemned', g, op);
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
    for (const [entries, referenced, out, condemnedBefore] of [
      [repo.chunks.entries(op), marked.chunks, newChunks, already.chunks],
      [repo.indexEntries(op), marked.indexes, newIndexes, already.indexes],
    ] as const) {
      for await (const b of entries) {
        if (++listed % 10_000 === 0) req.onProgress?.({ phase: 'listing', done: listed });
        const id = Buffer.from(b.id, 'hex');
        if (referenced.has(id) || b.modifiedAt.getTime() >= oldestWriter || condemnedBefore.has(id)) continue;
        out.add(id);
      }
    }
    const condemned = { chunks: newChunks.build(), indexes: newIndexes.build() };
    report.chunksCondemned = condemned.chunks.size;
    report.indexesCondemned = condemned.indexes.size;
    if (condemned.chunks.size + condemned.indexes.size > 0)
      generations.push(await gc.writeCondemned(condemned, now(), op));

    // 4. sweep
    lease.check();
    await lease.update({ operation: GC_SWEEP_OPERATION });
    const writers1 = await liveWriters(repo, report);
    report.liveWriters = writers1.length;
    const sweepable: BlobName[] = [];
    for (const g of generations) {
      const blocker = writers1.find((w) => !w.info?.gcSeen?.includes(g));
      if (blocker) {
        report.deferred.push(g);
        report.deferredReason ??= `${
          blocker.info
            ? `${blocker.info.operation} on ${blocker.info.host} ` +
              `(pid ${blocker.info.pid}) since ${new Date(blocker.info.acquiredAt).toISOString()}`
            : `an unreadable lease ${blocker.name}`
        } has not seen it; the next prune deletes it`;
      } else sweepable.push(g);
    }
    if (sweepable.length > 0) {
      let rescuedChunks = IdSet.empty;
      let rescuedIndexes = IdSet.empty;
      for (const r of await gc.listRescues(op)) {
        try {
          const s = await gc.readSets('rescue', r.name, op);
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
          sets = await gc.readSets('condemned', g, op);
        } catch (e) {
          if (!(e instanceof CofferError) || e.code !== 'CORRUPT') throw e;
          req.onWarning?.(
            `${g} is unreadable (${e.message}); removing it, its objects are condemned again by the next prune`,
          );
          await gc.delete(g, op);
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
              await window.run(async () => {
                let sizeBytes: number | undefined;
                try {
                  sizeBytes =
                    kind === 'chunk'
                      ? await repo.chunks.delete(chunkIdOf(id), op)
                      : await repo.deleteIndex(id.toString('hex'), op);
                } catch (e) {
                  if (e instanceof CofferError && e.code === 'IMMUTABLE') {
                    report.locked++;
                    return;
                  }
                  throw e;
                }
                if (sizeBytes === undefined) return;
                report.bytesDeleted += sizeBytes;
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
        await gc.delete(g, op);
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
    const leaseHolders = new Set(
      (await gc.readLeases()).map(
        (l) => l.info?.holder ?? l.name.slice(l.name.lastIndexOf('/') + 1, l.name.lastIndexOf('-')),
      ),
    );
    for (const r of await gc.listRescues(op)) {
      if (!leaseHolders.has(r.holder)) {
        await gc.delete(r.name, op);
        report.orphansRemoved++;
      }
    }
    if (gc.keepsTempFiles) {
      const writers = await liveWriters(repo, report);
      const ageMs = req.tempAgeMs ?? 60_000;
      const cutoff = Math.min(now() - ageMs, ...writers.map((w) => (w.info?.acquiredAt ?? 0) - ageMs));
      report.tempFilesRemoved = (await gc.sweepTemp(now() - cutoff, now())) ?? 0;
    }
  } finally {
    await lease.release();
  }
  report.durationMs = now() - started;
  return report;
}

/** Live leases of every scope but the GC's own; stale ones are removed (their holders are dead). */
async function liveWriters(repo: Repository, report: PruneReport): Promise<LeaseEntry[]> {
  const out: LeaseEntry[] = [];
  for (const l of await repo.gc.readLeases()) {
    if (l.scope === GC_SCOPE) continue;
    if (l.stale) {
      await repo.gc.removeLease(l.name).catch(() => undefined);
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
async function mark(
  repo: Repository,
  skip: Set<string>,
  known: Marked | undefined,
  op: Op,
  req: PruneRequest,
): Promise<Marked> {
  let n = 0;
  async function* notSkipped(): AsyncIterable<RestorePointId> {
    for await (const id of repo.pointIds(op)) if (!skip.has(id)) yield id;
  }
  const r = await repo.referencedIds(notSkipped(), op, {
    onPointError: (id, e) => {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') return; // forgotten meanwhile
      throw new CofferError(
        'CORRUPT',
        `prune stopped before deleting anything: restore point ${id} is unreadable (${(e as Error).message})`,
        {
          hint: 'run `coffer verify`; repair or remove the damaged restore point first',
        },
      );
    },
    onPoint: () => {
      if (++n % 100 === 0) req.onProgress?.({ phase: 'marking', done: n });
    },
    onIndexError: (m, d, e) => {
      if (e instanceof CofferError && e.code === 'CORRUPT' && e.details.missing === true) {
        // the index is gone: the point cannot be restored, and which chunks it used is unknowable
        req.onWarning?.(`restore point ${m.id}: index ${d.indexId} is missing; the point is broken (run verify)`);
        return;
      }
      throw new CofferError(
        'CORRUPT',
        `prune stopped before deleting anything: index ${d.indexId} of restore point ${m.id} is unreadable ` +
          `(${(e as Error).message})`,
        {
          hint: 'run `coffer verify`; repair or remove the damaged restore point first',
        },
      );
    },
  });
  const points = new Set<string>([...skip, ...r.points]);
  return {
    points,
    chunks: known ? known.chunks.union(r.chunks) : r.chunks,
    indexes: known ? known.indexes.union(r.indexes) : r.indexes,
  };
}

/** Verification records and holds of points that no longer exist, and old verification records (GcRecords). */
async function removeOrphans(repo: Repository, op: Op): Promise<number> {
  const points = new Set<string>();
  for await (const id of repo.pointIds(op)) points.add(id);
  return repo.gc.removeOrphanRecords(points, op);
}
