import { hostname } from 'node:os';
import { FIXED_INDEX_HEADER_BYTES, FixedIndex, type Manifest, type ManifestDisk } from '../format/index.js';
import { IdSet, type Repository } from '../repository/index.js';
import type { BlockSource } from '../sources/index.js';
import { CofferError, TaskWindow, type Op } from '../shared/index.js';
import type { CodecPool } from './codec-pool.js';
import { TOOL_VERSION } from './version.js';

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
}

export interface DiskStats {
  index: number;
  sizeBytes: number;
  bytesRead: number;
  bytesStored: number;
  chunksNew: number;
  chunksReused: number;
  zeroChunks: number;
}

export interface BackupResult {
  id: string;
  vm: string;
  mode: 'full' | 'incremental';
  parent: string | null;
  time: string;
  bytesRead: number;
  bytesStored: number;
  chunksNew: number;
  chunksReused: number;
  zeroChunks: number;
  durationMs: number;
  disks: DiskStats[];
}

/** How many chunks may be in flight per codec worker (read, hashed, sealed or being written). */
const CHUNKS_IN_FLIGHT_PER_WORKER = 3;
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
  try {
    const parent = await findParent(repo, req.vm, op, req.onWarning);
    const diskStats: DiskStats[] = [];
    const manifestDisks: ManifestDisk[] = [];
    for (const [i, source] of req.sources.entries()) {
      const parentIndex = await loadParentIndex(repo, parent, i, req.onWarning, op);
      const { index, stats } = await backupDisk(repo, pool, source, i, parentIndex, req, op);
      lease.check();
      const indexId = await repo.putIndex(index, op);
      diskStats.push(stats);
      manifestDisks.push({
        index: i,
        sizeBytes: source.sizeBytes,
        chunkSizeBytes: index.chunkSizeBytes,
        indexId,
        chunkCount: index.entryCount,
        zeroChunks: stats.zeroChunks,
        source: source.uri,
        changeToken: null,
      });
    }
    const sum = (k: keyof DiskStats) => diskStats.reduce((a, d) => a + d[k], 0);
    const durationMs = Date.now() - started;
    const manifest: Manifest = {
      formatVersion: 1,
      id: repo.newPointId(),
      vm: { name: req.vm, id: req.vmId ?? null },
      time,
      endTime: new Date().toISOString(),
      parent: parent?.id ?? null,
      mode: 'full',
      host: hostname(),
      tool: `coffer ${TOOL_VERSION}`,
      tags: req.tags ?? [],
      consistency: { snapshot: false, quiesced: false },
      disks: manifestDisks,
      stats: { bytesRead: sum('bytesRead'), bytesStored: sum('bytesStored'), chunksNew: sum('chunksNew'), chunksReused: sum('chunksReused'), durationMs },
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
      ...manifest.stats,
      zeroChunks: sum('zeroChunks'),
      disks: diskStats,
    };
  } finally {
    await lease.release();
  }
}

async function findParent(repo: Repository, vm: string, op: Op, warn?: (m: string) => void): Promise<Manifest | undefined> {
  const points = await repo.listPoints(op, (id, e) => warn?.(`skipping unreadable restore point ${id}: ${e.message}`));
  return points.filter((p) => p.vm.name === vm).at(-1);
}

async function loadParentIndex(repo: Repository, parent: Manifest | undefined, disk: number, warn: ((m: string) => void) | undefined, op: Op): Promise<FixedIndex | undefined> {
  const d = parent?.disks[disk];
  if (!d || d.chunkSizeBytes !== repo.chunkSizeBytes) return undefined;
  try {
    return await repo.loadIndex(d.indexId, op);
  } catch (e) {
    if (e instanceof CofferError && e.code === 'CANCELLED') throw e;
    warn?.(`parent index of disk ${disk} is unusable (${(e as Error).message}); every chunk is checked against the store`);
    return undefined;
  }
}

async function backupDisk(
  repo: Repository,
  pool: CodecPool,
  source: BlockSource,
  diskIndex: number,
  parentIndex: FixedIndex | undefined,
  req: BackupRequest,
  op: Op,
): Promise<{ index: FixedIndex; stats: DiskStats }> {
  const index = FixedIndex.create(repo.chunkSizeBytes, source.sizeBytes);
  const known = parentIndex ? IdSet.fromConcatenated(parentIndex.bytes.subarray(FIXED_INDEX_HEADER_BYTES)) : IdSet.empty;
  const recent = new Set<string>();
  const stats: DiskStats = { index: diskIndex, sizeBytes: source.sizeBytes, bytesRead: 0, bytesStored: 0, chunksNew: 0, chunksReused: 0, zeroChunks: 0 };
  let bytesDone = 0;
  const progress = (len: number) => {
    bytesDone += len;
    req.onProgress?.({ disk: diskIndex, diskCount: req.sources.length, bytesDone, bytesTotal: source.sizeBytes, bytesStored: stats.bytesStored });
  };
  const window = new TaskWindow(Math.max(2, pool.size * CHUNKS_IN_FLIGHT_PER_WORKER));
  const cs = repo.chunkSizeBytes;
  try {
    for (let i = 0; i < index.entryCount; i++) {
      op.signal?.throwIfAborted();
      await window.run(async () => {
        const len = index.chunkLength(i);
        const raw = Buffer.allocUnsafeSlow(len);
        await source.read(i * cs, len, raw, op);
        stats.bytesRead += len;
        const { id, data } = await pool.hash(raw);
        if (!id) {
          stats.zeroChunks++;
          return progress(len);
        }
        index.set(i, id);
        const hex = id.toString('hex');
        if (known.has(id) || recent.has(hex) || (await repo.hasChunk(hex, op))) {
          stats.chunksReused++;
          return progress(len);
        }
        if (recent.size >= RECENT_IDS_MAX) recent.clear();
        recent.add(hex);
        const blob = await pool.seal(data, hex);
        if ((await repo.putChunkBlob(hex, blob, op)) === 'created') {
          stats.chunksNew++;
          stats.bytesStored += blob.length;
        } else {
          stats.chunksReused++;
        }
        progress(len);
      });
    }
    await window.drain();
  } catch (e) {
    await window.settle();
    throw e;
  }
  return { index, stats };
}
