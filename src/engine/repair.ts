import { IdSet, type ChunkStore, type Repository } from '../repository/index.js';
import type { FixedIndex } from '../format/index.js';
import { CofferError, asChunkId, type Op } from '../shared/index.js';
import type { CodecPool } from './codec-pool.js';
import { knownDamagedChunks } from './damaged.js';
import { GcGuard } from './gc-guard.js';
import { verify } from './verify.js';

export interface RepairRequest extends Op {
  /** find damaged chunks by reading every referenced chunk (verify --read-data); default: presence + known damage */
  readData?: boolean;
  onWarning?: (message: string) => void;
}

export interface RepairReport {
  /** missing or corrupt chunks found in the repository */
  damaged: number;
  repaired: number;
  /** ids not found (with matching content) in the copy repository */
  unrepaired: string[];
  /** chunks named by a failed verification that read fine now (repaired or healed already) */
  alreadyOk: number;
  durationMs: number;
}

interface Position {
  vm: string;
  pointId: string;
  disk: number;
  offset: number;
  length: number;
}

/** The lease scope of repair: one at a time; it is a writer for garbage collection. */
export const REPAIR_SCOPE = 'repair';

/**
 * Re-fetches damaged or missing chunks from a copy repository (DESIGN.md §Repair). The copy may have another master
 * key, so chunk ids differ: for each damaged chunk we know where it sits in our restore points (VM, disk, offset) and
 * read the same bytes from the copy's restore points of that VM (newest first; the copy's chunk size may differ),
 * decrypting with the copy's key. Only plaintext whose keyed hash under OUR id key equals the damaged id is written,
 * sealed with our key. A corrupt blob is replaced by delete-then-put; GC never deletes a referenced chunk, so the
 * replacement cannot race with a sweep (and the guard covers the case of a point forgotten meanwhile).
 */
export async function repair(
  repo: Repository,
  from: Repository,
  pool: CodecPool,
  req: RepairRequest = {},
): Promise<RepairReport> {
  const started = Date.now();
  const op: Op = { signal: req.signal };
  const lease = await repo.acquireLease(REPAIR_SCOPE, 'repair');
  let guard: GcGuard | undefined;
  try {
    guard = await GcGuard.open(repo, lease, op);

    // 1. what is damaged: a verify pass (presence, or every byte), plus what failed verifications named
    const report = await verify(repo, pool, {
      readDataFraction: req.readData ? 1 : 0,
      record: false,
      signal: req.signal,
    });
    const damaged = new Set<string>();
    for (const p of report.problems) if (p.kind === 'chunk-missing' || p.kind === 'chunk-corrupt') damaged.add(p.id);
    let alreadyOk = 0;
    const known = await knownDamagedChunks(repo, op);
    for (let i = 0; i < known.size; i++) {
      const hex = known.at(i).toString('hex');
      if (damaged.has(hex)) continue;
      if (await repo.chunks.readsFine(asChunkId(hex), op)) alreadyOk++;
      else damaged.add(hex);
    }
    if (damaged.size === 0)
      return { damaged: 0, repaired: 0, unrepaired: [], alreadyOk, durationMs: Date.now() - started };

    // 2. where each damaged chunk sits in our restore points
    const wanted = IdSet.fromConcatenated(Buffer.concat([...damaged].map((h) => Buffer.from(h, 'hex'))));
    const positions = new Map<string, Position[]>();
    await repo.walkPoints(
      await repo.listPoints(op, () => undefined),
      {
        onIndexError: () => undefined, // unreadable: nothing to learn from it
        onIndex: (m, d, index) => {
          for (let i = 0; i < index.entryCount; i++) {
            if (index.isZero(i) || !wanted.has(index.id(i))) continue;
            const hex = index.id(i).toString('hex');
            const list = positions.get(hex) ?? [];
            if (list.length < 4)
              list.push({
                vm: m.vm.name,
                pointId: m.id,
                disk: d.index,
                offset: i * index.chunkSizeBytes,
                length: index.chunkLength(i),
              });
            positions.set(hex, list);
          }
        },
      },
      op,
    );

    // 3. find each one's plaintext in the copy, check it against our id, store it
    const theirPoints = (await from.listPoints(op, () => undefined)).reverse();
    const theirIndexes = new Map<string, FixedIndex | null>();
    const loadTheirs = async (indexId: string) => {
      if (!theirIndexes.has(indexId)) theirIndexes.set(indexId, await from.loadIndex(indexId, op).catch(() => null));
      return theirIndexes.get(indexId) ?? null;
    };
    const unrepaired: string[] = [];
    let repaired = 0;
    for (const hex of damaged) {
      op.signal?.throwIfAborted();
      lease.check();
      let plain: Buffer | undefined;
      // the same name in the copy (a copy made with the same keys)
      plain = await tryChunk(from.chunks, hex, op);
      if (plain && repo.chunkIdOf(plain) !== hex) plain = undefined;
      for (const pos of positions.get(hex) ?? []) {
        if (plain) break;
        const candidates = theirPoints
          .filter((p) => p.vm.name === pos.vm)
          .sort((a, b) => Number(b.id === pos.pointId) - Number(a.id === pos.pointId));
        for (const p of candidates) {
          const d = p.disks[pos.disk];
          if (!d || d.sizeBytes < pos.offset + pos.length) continue;
          const index = await loadTheirs(d.indexId);
          if (!index) continue;
          const bytes = await readRange(from.chunks, index, pos.offset, pos.length, op);
          if (bytes && repo.chunkIdOf(bytes) === hex) {
            plain = bytes;
            break;
          }
        }
      }
      if (!plain) {
        unrepaired.push(hex);
        req.onWarning?.(`chunk ${hex}: no copy with matching content in ${from.location}`);
        continue;
      }
      const id = Buffer.from(hex, 'hex');
      if (guard.isCondemnedChunk(id)) await guard.rescue('chunk', id, op);
      // replace: a corrupt blob goes first (put never overwrites); one that reads fine was healed meanwhile by a backup
      await repo.chunks.replace(asChunkId(hex), { plain }, op);
      repaired++;
    }
    return {
      damaged: damaged.size,
      repaired,
      unrepaired: unrepaired.sort(),
      alreadyOk,
      durationMs: Date.now() - started,
    };
  } finally {
    await guard?.close();
    await lease.release();
  }
}

async function tryChunk(chunks: ChunkStore, hex: string, op: Op): Promise<Buffer | undefined> {
  try {
    return (await chunks.get(asChunkId(hex), { checkId: true }, op)).plain;
  } catch (e) {
    if (e instanceof CofferError && (e.code === 'CORRUPT' || e.code === 'NOT_FOUND')) return undefined;
    throw e;
  }
}

/** Plaintext bytes [offset, offset+length) of a disk of the copy; undefined if a chunk there is unreadable. */
async function readRange(
  chunks: ChunkStore,
  index: FixedIndex,
  offset: number,
  length: number,
  op: Op,
): Promise<Buffer | undefined> {
  const out = Buffer.alloc(length);
  const cs = index.chunkSizeBytes;
  for (let c = Math.floor(offset / cs); c * cs < offset + length && c < index.entryCount; c++) {
    if (index.isZero(c)) continue;
    const hex = index.id(c).toString('hex');
    const plain = await tryChunk(chunks, hex, op);
    if (!plain) return undefined;
    const start = Math.max(offset, c * cs);
    const end = Math.min(offset + length, c * cs + plain.length);
    plain.copy(out, start - offset, start - c * cs, end - c * cs);
  }
  return out;
}
