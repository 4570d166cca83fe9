import { hostname } from 'node:os';
import {
  ENVELOPE_OVERHEAD_BYTES,
  FIXED_INDEX_HEADER_BYTES,
  FixedIndex,
  ZERO_CHUNK_ID,
  type Manifest,
  type DiskSignals,
  type ManifestDisk,
  type PointSignals,
} from '../format/index.js';
import { IdSet, type Repository } from '../repository/index.js';
import type { BlockSource } from '../sources/index.js';
import { CofferError, TaskWindow, chunkIdOf, type Op } from '../shared/index.js';
import type { CodecPool } from './codec-pool.js';
import { TOOL_VERSION } from './version.js';
import { chunksInFlight } from './in-flight.js';
import { PLAN_FROM_PARENT, PLAN_READ, PLAN_SKIP_ZERO, planDisk, type DiskPlan } from './disk-plan.js';
import { GcGuard } from './gc-guard.js';
import { knownDamagedChunks } from './damaged.js';
import { ChangeSignals, scoreSignals, type SignalThresholds } from './signals/index.js';

export interface BackupProgress {
  disk: number;
  diskCount: number;
  bytesDone: number;
  bytesTotal: number;
  bytesStored: number;
}

export interface BackupRequest extends Op {
  vm: string;
  vmId?: string | null;
  sources: BlockSource[];
  tags?: string[];
  onProgress?: (p: BackupProgress) => void;
  onWarning?: (message: string) => void;
  /** Read every chunk even when change tracking is used, and report chunks that changed without being marked. */
  verifyCbt?: boolean;
  /** How the disks were captured (default: no snapshot, not quiesced). */
  consistency?: { snapshot: boolean; quiesced: boolean };
  /** The VM's configuration, stored in the manifest as `vmConfig` (FORMAT.md §6.1). */
  vmConfig?: Record<string, unknown>;
  /** Anomaly-score thresholds of the VM's policy (default DEFAULT_SIGNAL_THRESHOLDS; DESIGN.md §Ransomware signals). */
  signalThresholds?: SignalThresholds;
  /**
   * One tag (also in `tags`) that marks the point of one job run (the server's `coffer-job:` tag). When a point of
   * this VM carries it already, an earlier attempt of the same job committed it and its process was lost before it
   * reported: that point is returned (`adopted`) and nothing is read or written, so a retried job never makes a
   * second restore point (DESIGN.md §Proxies, lost jobs).
   */
  adoptTag?: string;
}

export interface DiskStats {
  index: number;
  sizeBytes: number;
  mode: 'full' | 'incremental';
  changeToken: string | null;
  /** Why change tracking was not used although the source offered it. */
  fallbackReason?: string;
  changedBytes: number;
  /** --verify-cbt: extents (chunk-aligned) whose content changed without change tracking reporting them. */
  cbtDrift?: { offset: number; length: number }[];
  bytesRead: number;
  bytesStored: number;
  chunksNew: number;
  chunksReused: number;
  zeroChunks: number;
  /** chunks a failed verification named as damaged, found damaged and written again from this backup's data */
  chunksHealed: number;
}

export interface BackupResult {
  id: string;
  vm: string;
  mode: 'full' | 'incremental';
  parent: string | null;
  time: string;
  /** Change token of disk 0 (each disk's is in disks[]). */
  changeToken: string | null;
  bytesRead: number;
  bytesStored: number;
  chunksNew: number;
  chunksReused: number;
  zeroChunks: number;
  chunksHealed: number;
  /** chunks and indexes garbage collection had condemned that this backup rescued (DESIGN.md §Garbage collection) */
  gcRescued: number;
  durationMs: number;
  disks: DiskStats[];
  /** ransomware signals and anomaly score of the new point (FORMAT.md §6.2) */
  signals?: PointSignals;
  /**
   * set when no new point was made: the point carrying the request's adoptTag was committed by an earlier attempt of
   * the same job (its stats are that attempt's; the per-disk read and store counts were not recorded)
   */
  adopted?: true;
}

/** Ids stored during this run, remembered to skip a second seal of a repeated chunk (bounded). */
const RECENT_IDS_MAX = 65_536;

/**
 * Backs up the disks of one VM into one restore point (DESIGN.md §Backup):
 * read -> zero check + keyed hash (workers) -> dedup lookup -> compress + encrypt (workers) -> put, with a bounded
 * window; then the fixed indexes; then the manifest, which is the commit point. Holds the VM's lease throughout.
 */
export async function backup(repo: Repository, pool: CodecPool, req: BackupRequest): Promise<BackupResult> {
  if (req.sources.length === 0) throw new CofferError('USAGE', 'a backup needs at least one source disk');
  const started = Date.now();
  const time = new Date(started).toISOString();
  const op: Op = { signal: req.signal };
  const lease = await repo.acquireLease(repo.vmScope(req.vm), `backup of VM ${req.vm}`);
  let guard: GcGuard | undefined;
  try {
    // after the lease, before any dedup decision: the GC protocol (DESIGN.md §Garbage collection). The damage
    // records and the VM's points are read meanwhile (round trips to a distant store; nothing in them depends on the
    // guard, which every dedup decision below consults).
    const guardP = GcGuard.open(repo, lease, op);
    const readP = Promise.all([knownDamagedChunks(repo, op), vmPoints(repo, req.vm, op, req.onWarning)]);
    readP.catch(() => undefined); // (the guard's failure is reported first)
    guard = await guardP;
    const [damaged, history] = await readP;
    const done = req.adoptTag !== undefined ? history.findLast((p) => p.tags.includes(req.adoptTag!)) : undefined;
    if (done) {
      req.onWarning?.(
        `restore point ${done.id} of VM ${req.vm} (${req.adoptTag}) was committed by an earlier attempt of this job ` +
          `that was lost before it reported; it is the result, no second point is made`,
      );
      return adoptedResult(done);
    }
    const parent = history.at(-1);
    const diskStats: DiskStats[] = [];
    const manifestDisks: ManifestDisk[] = [];
    const signals: DiskSignals[] = [];
    for (const [i, source] of req.sources.entries()) {
      const { index: parentIndex, problem } = await loadParentIndex(repo, parent, i, guard, op);
      if (problem && parent && !source.changeTracking)
        req.onWarning?.(`disk ${i}: ${problem}; every chunk is checked against the store`);
      const parentToken = parent?.disks[i]?.changeToken ?? null;
      const {
        index,
        stats,
        signals: diskSignals,
      } = await backupDisk(repo, pool, source, i, parentIndex, problem, parentToken, req, op, guard, damaged);
      lease.check();
      const indexHex = repo.indexId(index.bytes);
      if (guard.isCondemnedIndex(indexHex)) await guard.rescue('index', Buffer.from(indexHex, 'hex'), op);
      const indexId = await repo.putIndex(index, op);
      diskStats.push(stats);
      signals.push(diskSignals);
      manifestDisks.push({
        index: i,
        sizeBytes: source.sizeBytes,
        chunkSizeBytes: index.chunkSizeBytes,
        indexId,
        chunkCount: index.entryCount,
        zeroChunks: stats.zeroChunks,
        source: source.uri,
        changeToken: stats.changeToken,
        readMode: stats.mode,
        changedBytes: stats.changedBytes,
        ...(stats.cbtDrift
          ? { cbtDriftChunks: stats.cbtDrift.reduce((a, e) => a + e.length / index.chunkSizeBytes, 0) }
          : {}),
      });
    }
    const sum = (k: 'bytesRead' | 'bytesStored' | 'chunksNew' | 'chunksReused' | 'zeroChunks' | 'chunksHealed') =>
      diskStats.reduce((a, d) => a + d[k], 0);
    const durationMs = Date.now() - started;
    const manifest: Manifest = {
      formatVersion: 1,
      id: repo.newPointId(),
      vm: { name: req.vm, id: req.vmId ?? null },
      time,
      endTime: new Date().toISOString(),
      parent: parent?.id ?? null,
      mode: diskStats.every((d) => d.mode === 'incremental') ? 'incremental' : 'full',
      host: hostname(),
      tool: `coffer ${TOOL_VERSION}`,
      tags: req.tags ?? [],
      consistency: req.consistency ?? { snapshot: false, quiesced: false },
      disks: manifestDisks,
      stats: {
        bytesRead: sum('bytesRead'),
        bytesStored: sum('bytesStored'),
        chunksNew: sum('chunksNew'),
        chunksReused: sum('chunksReused'),
        durationMs,
      },
      ...(req.vmConfig ? { vmConfig: req.vmConfig } : {}),
      signals: scoreSignals(
        signals,
        req.sources.map((s) => s.sizeBytes),
        history,
        req.signalThresholds,
      ),
    };
    op.signal?.throwIfAborted();
    lease.check();
    await repo.commitManifest(manifest, op);
    return {
      id: manifest.id,
      vm: req.vm,
      mode: manifest.mode,
      parent: manifest.parent,
      time,
      changeToken: diskStats[0]?.changeToken ?? null,
      ...manifest.stats,
      zeroChunks: sum('zeroChunks'),
      chunksHealed: sum('chunksHealed'),
      gcRescued: guard.rescuedCount,
      disks: diskStats,
      ...(manifest.signals ? { signals: manifest.signals } : {}),
    };
  } finally {
    await guard?.close();
    await lease.release();
  }
}

/** The result of the backup that committed `m` (an earlier attempt of the same job), as far as the manifest says. */
function adoptedResult(m: Manifest): BackupResult {
  return {
    id: m.id,
    vm: m.vm.name,
    mode: m.mode,
    parent: m.parent,
    time: m.time,
    changeToken: m.disks[0]?.changeToken ?? null,
    ...m.stats,
    zeroChunks: m.disks.reduce((a, d) => a + d.zeroChunks, 0),
    chunksHealed: 0,
    gcRescued: 0,
    disks: m.disks.map((d) => ({
      index: d.index,
      sizeBytes: d.sizeBytes,
      mode: d.readMode ?? m.mode,
      changeToken: d.changeToken,
      changedBytes: d.changedBytes ?? 0,
      bytesRead: 0,
      bytesStored: 0,
      chunksNew: 0,
      chunksReused: 0,
      zeroChunks: d.zeroChunks,
      chunksHealed: 0,
    })),
    ...(m.signals ? { signals: m.signals } : {}),
    adopted: true,
  };
}

/** The VM's restore points, oldest first: the newest is the parent, the others the history signals compare with. */
async function vmPoints(repo: Repository, vm: string, op: Op, warn?: (m: string) => void): Promise<Manifest[]> {
  const points = await repo.listPoints(op, (id, e) => warn?.(`skipping unreadable restore point ${id}: ${e.message}`));
  return points.filter((p) => p.vm.name === vm);
}

async function loadParentIndex(
  repo: Repository,
  parent: Manifest | undefined,
  disk: number,
  guard: GcGuard,
  op: Op,
): Promise<{ index?: FixedIndex; problem?: string }> {
  if (!parent) return { problem: 'no previous restore point of this VM' };
  const d = parent.disks[disk];
  if (!d) return { problem: `the previous restore point ${parent.id} has no disk ${disk}` };
  if (d.chunkSizeBytes !== repo.chunkSizeBytes)
    return { problem: 'the previous restore point uses another chunk size' };
  const verified = await repo.lastVerification(parent.id, op);
  if (verified && !verified.ok) {
    // Neither its change-tracking base nor its chunk ids are trusted: every chunk is read and checked against the
    // store, so chunks it lost are stored again (healed) by this backup.
    return { problem: `the previous restore point ${parent.id} failed verification at ${verified.time}` };
  }
  try {
    const index = await repo.loadIndex(d.indexId, op);
    if (guard.condemnedCount > 0) {
      // the parent was forgotten and garbage collection condemned its chunks: none of its ids are taken on trust
      for (let i = 0; i < index.entryCount; i++) {
        if (!index.isZero(i) && guard.isCondemnedChunk(index.id(i)))
          return { problem: `chunks of the previous restore point ${parent.id} are condemned by garbage collection` };
      }
    }
    return { index };
  } catch (e) {
    if (e instanceof CofferError && e.code === 'CANCELLED') throw e;
    return {
      problem:
        `the index of disk ${disk} of the previous restore point ${parent.id} is unusable ` +
        `(${(e as Error).message})`,
    };
  }
}

async function backupDisk(
  repo: Repository,
  pool: CodecPool,
  source: BlockSource,
  diskIndex: number,
  parentIndex: FixedIndex | undefined,
  parentProblem: string | undefined,
  parentToken: string | null,
  req: BackupRequest,
  op: Op,
  guard: GcGuard,
  damaged: IdSet,
): Promise<{ index: FixedIndex; stats: DiskStats; signals: DiskSignals }> {
  const index = FixedIndex.create(repo.chunkSizeBytes, source.sizeBytes);
  const signals = new ChangeSignals(diskIndex, index.entryCount);
  const plan = await planDisk(source, index, parentIndex, parentProblem, {
    verifyCbt: Boolean(req.verifyCbt),
    parentToken,
    signal: op.signal,
  });
  if (plan.fallbackReason)
    req.onWarning?.(`disk ${diskIndex}: change tracking not used, reading the whole disk: ${plan.fallbackReason}`);
  await pool.setKnown(
    parentIndex ? IdSet.fromConcatenated(parentIndex.bytes.subarray(FIXED_INDEX_HEADER_BYTES)) : IdSet.empty,
  );
  // a large read starts the codec workers now, not after 8 MiB of inline work (after setKnown: the workers get the
  // parent's ids with their start, and nothing waits for them to load)
  let toRead = 0;
  for (let i = 0; i < index.entryCount; i++) if (plan.actions[i] === PLAN_READ) toRead += index.chunkLength(i);
  pool.expect(toRead);
  const recent = new Set<string>();
  const free: Buffer[] = [];
  // Sealed blobs are recycled too: a buffer the size of the largest sealed chunk goes to the codec with each chunk
  // and comes back once the blob is stored (or was not needed), so no chunk allocates (and faults in) a fresh one.
  const sealedFree: Buffer[] = [];
  const sealedMax = repo.chunkSizeBytes + ENVELOPE_OVERHEAD_BYTES;
  const chunks = repo.chunksVia(pool);
  const speculative = new SpeculationControl();
  let readChain: Promise<unknown> = Promise.resolve();
  const stats: DiskStats = {
    index: diskIndex,
    sizeBytes: source.sizeBytes,
    mode: plan.mode,
    changeToken: source.changeTracking?.token ?? null,
    ...(plan.fallbackReason ? { fallbackReason: plan.fallbackReason } : {}),
    changedBytes: plan.changedBytes,
    bytesRead: 0,
    bytesStored: 0,
    chunksNew: 0,
    chunksReused: 0,
    zeroChunks: 0,
    chunksHealed: 0,
  };
  const drift: number[] = [];
  let bytesDone = 0;
  const progress = (len: number) => {
    bytesDone += len;
    req.onProgress?.({
      disk: diskIndex,
      diskCount: req.sources.length,
      bytesDone,
      bytesTotal: source.sizeBytes,
      bytesStored: stats.bytesStored,
    });
  };
  const window = new TaskWindow(chunksInFlight(repo.chunkSizeBytes, pool.size, chunks.putsFirst));
  const cs = repo.chunkSizeBytes;
  try {
    for (let i = 0; i < index.entryCount; i++) {
      op.signal?.throwIfAborted();
      const action = plan.actions[i];
      if (action === PLAN_SKIP_ZERO) {
        stats.zeroChunks++;
        if (parentIndex && !parentIndex.isZero(i)) signals.changed(i, index.chunkLength(i), 0);
        progress(index.chunkLength(i));
        continue;
      }
      if (action === PLAN_FROM_PARENT) {
        const id = parentIndex!.id(i);
        index.set(i, id);
        if (parentIndex!.isZero(i)) stats.zeroChunks++;
        else stats.chunksReused++;
        progress(index.chunkLength(i));
        continue;
      }
      await window.run(async () => {
        const len = index.chunkLength(i);
        const raw = len === cs ? (free.pop() ?? Buffer.allocUnsafeSlow(cs)) : Buffer.allocUnsafeSlow(len);
        // Reads are issued one at a time, in disk order: parallel reads of one file defeat kernel readahead (measured)
        const read = readChain.then(() => {
          // (never reported: drain throws the first error)
          if (window.failed) throw new CofferError('CANCELLED', 'an earlier chunk failed');
          return readChunk(source, plan, i * cs, len, raw, op);
        });
        readChain = read.catch(() => undefined);
        const bytes = await read; // (not `stats.bytesRead += await read`: that reads the sum before awaiting)
        stats.bytesRead += bytes;
        const seal = speculative.enabled;
        const r = await pool.process(
          raw,
          seal,
          seal ? (sealedFree.pop() ?? Buffer.allocUnsafeSlow(sealedMax)) : undefined,
        );
        if (r.spare) sealedFree.push(r.spare);
        let failed = false; // a put that failed might still be reading the sealed buffer: it is not reused then
        let data: Buffer | undefined = r.data;
        const recycle = () => {
          if (data && data.length === cs && free.length < window.limit) free.push(data);
          data = undefined;
        };
        /** the chunk store hands the buffer back once sealed (a worker codec transfers it away and back) */
        const release = (plain: Buffer) => {
          data = plain;
          recycle();
        };
        // ransomware signals (no extra read or compression): changed against the parent, sealed size when new
        const changed = !parentIndex?.id(i).equals(r.id ?? ZERO_CHUNK_ID);
        let storedBytes = r.id ? r.sealed?.length : 0;
        try {
          if (plan.changed && !plan.changed[i] && changed && parentIndex) drift.push(i);
          if (!r.id) {
            stats.zeroChunks++;
            return progress(len);
          }
          index.set(i, r.id);
          const id = chunkIdOf(r.id);
          const hex: string = id;
          // a condemned chunk: rescue it before looking at the store (the GC protocol)
          const condemned = guard.isCondemnedChunk(r.id);
          if (condemned) await guard.rescue('chunk', r.id, op);
          if (damaged.size > 0 && !recent.has(hex) && damaged.has(r.id)) {
            // a failed verification named it: if the stored blob is still bad, replace it with this data
            recent.add(hex);
            const healed = await chunks.replace(id, { plain: data!, sealed: r.sealed, release }, op);
            if (healed.outcome === 'fine') {
              stats.chunksReused++;
              return progress(len);
            }
            storedBytes = healed.sizeBytes;
            stats.chunksNew++;
            stats.chunksHealed++;
            stats.bytesStored += healed.sizeBytes;
            return progress(len);
          }
          if (!condemned && (r.known || recent.has(hex))) {
            stats.chunksReused++;
            return progress(len);
          }
          // Object storage, chunk sealed already (most unknown chunks are new): put-if-absent answers "exists" by
          // itself, one request instead of a HEAD and a PUT. Otherwise look first (no seal, no upload if present).
          const putFirst = r.sealed !== undefined && chunks.putsFirst;
          if (!putFirst) {
            const exists = await chunks.has(id, op);
            speculative.record(exists);
            if (exists) {
              stats.chunksReused++;
              return progress(len);
            }
          }
          if (recent.size >= RECENT_IDS_MAX) recent.clear();
          recent.add(hex);
          const put = await chunks.put(id, { plain: data!, sealed: r.sealed, release }, op);
          if (putFirst) speculative.record(put.stored === 'exists');
          if (put.stored === 'created') {
            storedBytes = put.sizeBytes;
            stats.chunksNew++;
            stats.bytesStored += put.sizeBytes;
          } else {
            stats.chunksReused++;
          }
          progress(len);
        } catch (e) {
          failed = true;
          throw e;
        } finally {
          if (changed) signals.changed(i, len, storedBytes);
          recycle();
          const sealed = r.sealed && Buffer.from(r.sealed.buffer, 0, r.sealed.buffer.byteLength);
          if (!failed && sealed && sealed.length >= sealedMax && sealedFree.length < window.limit)
            sealedFree.push(sealed);
        }
      });
    }
    await window.drain();
  } catch (e) {
    await window.settle();
    throw e;
  }
  if (plan.changed && req.verifyCbt) {
    stats.cbtDrift = chunkRuns(
      drift.sort((a, b) => a - b),
      cs,
      source.sizeBytes,
    );
    if (drift.length > 0) {
      req.onWarning?.(
        `disk ${diskIndex}: change tracking missed ${drift.length} changed chunk(s) (${stats.cbtDrift
          .map((e) => `${e.offset}+${e.length}`)
          .slice(0, 5)
          .join(', ')}${stats.cbtDrift.length > 5 ? ', ...' : ''}); this restore point holds the data actually read`,
      );
    }
  }
  return { index, stats, signals: signals.result(parentIndex !== undefined) };
}

/**
 * Reads one chunk into `raw`. With an allocation map only the allocated parts cross the wire; the rest is zeros.
 * Returns the bytes actually read.
 */
async function readChunk(
  source: BlockSource,
  plan: DiskPlan,
  offset: number,
  len: number,
  raw: Buffer,
  op: Op,
): Promise<number> {
  if (!plan.dataRanges) {
    await source.read(offset, len, raw, op);
    return len;
  }
  const parts = [...plan.dataRanges.within(offset, offset + len)];
  const covered = parts.reduce((a, p) => a + p.length, 0);
  if (covered === len) {
    await source.read(offset, len, raw, op);
    return len;
  }
  raw.fill(0, 0, len);
  await Promise.all(
    parts.map((p) =>
      source.read(p.offset, p.length, raw.subarray(p.offset - offset, p.offset - offset + p.length), op),
    ),
  );
  return covered;
}

/**
 * Whether workers should seal a chunk right after hashing it, before we know if the store has it (one round trip
 * instead of two). Worth it while most unknown chunks are new (a first full backup); switched off while most turn
 * out stored already (a clone of a backed-up VM), so we do not compress what we then throw away.
 */
class SpeculationControl {
  private readonly recent: boolean[] = [];
  enabled = true;

  record(existed: boolean): void {
    this.recent.push(existed);
    if (this.recent.length > 32) this.recent.shift();
    const hits = this.recent.filter(Boolean).length;
    this.enabled = hits * 2 < this.recent.length;
  }
}

function chunkRuns(chunks: number[], cs: number, size: number): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  for (const c of chunks) {
    const offset = c * cs;
    const length = Math.min(cs, size - offset);
    const last = out[out.length - 1];
    if (last && last.offset + last.length === offset) last.length += length;
    else out.push({ offset, length });
  }
  return out;
}
