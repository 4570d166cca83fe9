import { IdSet, isCancel, type Repository } from '../repository/index.js';
import { CofferError, TaskWindow, chunkIdOf, type Op } from '../shared/index.js';
import type { CodecPool } from './codec-pool.js';

export interface VerifyRequest extends Op {
  /** Decrypt, decompress and re-hash this share of the referenced chunks (0..1; 1 = --read-data). */
  readDataFraction?: number;
  onProgress?: (p: { phase: string; done: number; total: number }) => void;
  /** Record the outcome per restore point in the repository (FORMAT.md §8); default true. */
  record?: boolean;
}

export interface VerifyProblem {
  kind: 'point' | 'index' | 'chunk-missing' | 'chunk-corrupt';
  id: string;
  message: string;
  /** Restore points affected (for chunks and indexes: the first few). */
  points?: string[];
}

export interface VerifyReport {
  ok: boolean;
  points: number;
  disks: number;
  chunksStored: number;
  chunksReferenced: number;
  chunksRead: number;
  chunksUnreferenced: number;
  problems: VerifyProblem[];
  /** Restore points found damaged (a missing or corrupt manifest, index or chunk). */
  failedPoints: string[];
  /** Share of the referenced chunks whose data was read (0: presence only, 1: --read-data). */
  readDataFraction: number;
  /** Whether the outcome was recorded per restore point (FORMAT.md §8). */
  recorded: boolean;
  durationMs: number;
}

const MAX_PROBLEMS = 10_000;

/**
 * Checks the repository (DESIGN.md §Verify): every manifest opens, every index opens and matches its checksum,
 * every referenced chunk is present; with readData also that each chunk decrypts, decompresses and hashes to its id.
 * Memory: one compact sorted set of stored chunk ids (32 bytes a chunk) and a bitmap; never a map of objects.
 */
export async function verify(repo: Repository, pool: CodecPool, req: VerifyRequest = {}): Promise<VerifyReport> {
  const started = Date.now();
  const op: Op = { signal: req.signal };
  const problems: VerifyProblem[] = [];
  const report = (p: VerifyProblem) => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };

  // 1. What is stored.
  const stored = await repo.chunks.listIds(op, (done) => req.onProgress?.({ phase: 'listing chunks', done, total: 0 }));
  const referenced = new Uint8Array(stored.size);
  const firstPoint = new Map<number, string>();

  // 2. What is referenced, and is it there.
  const ids: string[] = [];
  for await (const id of repo.pointIds(op)) ids.push(id);
  let disks = 0;
  const missing = new Map<string, string[]>();
  const failed = new Map<string, VerifyProblem[]>();
  const fail = (pointId: string, p: VerifyProblem) => {
    const list = failed.get(pointId) ?? [];
    if (list.length < 100) list.push(p);
    failed.set(pointId, list);
  };
  const gone = new Set<string>();
  const indexesOf = new Map<string, string[]>(); // point -> index ids, for the second pass over corrupt chunks
  let n = 0;
  async function* withProgress(): AsyncIterable<string> {
    for (const id of ids) {
      req.onProgress?.({ phase: 'checking restore points', done: n++, total: ids.length });
      yield id;
    }
  }
  const indexProblem = (id: string, indexId: string, e: unknown) => {
    const p: VerifyProblem = { kind: 'index', id: indexId, message: (e as Error).message, points: [id] };
    report(p);
    fail(id, p);
  };
  await repo.walkPoints(
    withProgress(),
    {
      onPointError: (id, e) => {
        if (e instanceof CofferError && e.code === 'NOT_FOUND') {
          gone.add(id); // forgotten while we ran: not a problem
          return;
        }
        const p: VerifyProblem = { kind: 'point', id, message: (e as Error).message };
        report(p);
        fail(id, p);
      },
      onPoint: (manifest) => {
        indexesOf.set(
          manifest.id,
          manifest.disks.map((d) => d.indexId),
        );
        disks += manifest.disks.length;
      },
      onIndexError: (m, d, e) => indexProblem(m.id, d.indexId, e),
      onIndex: (m, d, index) => {
        const id = m.id;
        if (index.diskSizeBytes !== d.sizeBytes) {
          return indexProblem(
            id,
            d.indexId,
            new CofferError(
              'CORRUPT',
              `index ${d.indexId} describes ${index.diskSizeBytes} bytes, the manifest ${d.sizeBytes}`,
            ),
          );
        }
        for (let i = 0; i < index.entryCount; i++) {
          if (index.isZero(i)) continue;
          const pos = stored.indexOf(index.id(i));
          if (pos >= 0) {
            if (!referenced[pos]) firstPoint.set(pos, id);
            referenced[pos] = 1;
            continue;
          }
          const hex = index.id(i).toString('hex');
          fail(id, { kind: 'chunk-missing', id: hex, message: `chunk ${hex} is missing` });
          const pts = missing.get(hex) ?? [];
          if (pts.length < 5 && !pts.includes(id)) pts.push(id);
          missing.set(hex, pts);
          if (missing.size > MAX_PROBLEMS) break;
        }
      },
    },
    op,
  );
  for (const [hex, pts] of missing)
    report({ kind: 'chunk-missing', id: hex, message: `chunk ${hex} is missing`, points: pts });

  // 3. Read the data.
  let refCount = 0;
  for (const r of referenced) refCount += r;
  const fraction = req.readDataFraction ?? 0;
  const chunks = repo.chunksVia(pool);
  let chunksRead = 0;
  if (fraction > 0) {
    const window = new TaskWindow(Math.max(2, pool.size * 3));
    let seen = 0;
    try {
      for (let pos = 0; pos < stored.size; pos++) {
        if (!referenced[pos]) continue;
        seen++;
        if (fraction < 1 && !sampled(stored.at(pos), fraction)) continue;
        op.signal?.throwIfAborted();
        const hex = chunkIdOf(stored.at(pos));
        await window.run(async () => {
          try {
            await chunks.get(hex, { checkId: true }, op);
          } catch (e) {
            if (isCancel(e) || !(e instanceof CofferError) || (e.code !== 'CORRUPT' && e.code !== 'NOT_FOUND')) throw e;
            report({ kind: 'chunk-corrupt', id: hex, message: e.message, points: [firstPoint.get(pos) ?? '?'] });
          }
          chunksRead++;
          req.onProgress?.({ phase: 'reading data', done: seen, total: refCount });
        });
      }
      await window.drain();
    } catch (e) {
      await window.settle();
      throw e;
    }
  }

  // 4. Which restore points use a corrupt chunk (a second pass over their indexes; only when something was corrupt).
  const corrupt = problems.filter((p) => p.kind === 'chunk-corrupt');
  if (corrupt.length > 0) {
    const bad = IdSet.fromConcatenated(Buffer.concat(corrupt.map((p) => Buffer.from(p.id, 'hex'))));
    for (const [pointId, indexIds] of indexesOf) {
      for (const indexId of indexIds) {
        let index;
        try {
          index = await repo.loadIndex(indexId, op);
        } catch {
          continue; // already reported
        }
        for (let i = 0; i < index.entryCount; i++) {
          if (!index.isZero(i) && bad.has(index.id(i))) {
            const hex = index.id(i).toString('hex');
            fail(pointId, { kind: 'chunk-corrupt', id: hex, message: `chunk ${hex} is corrupt` });
          }
        }
      }
    }
  }

  // 5. Record the outcome per restore point.
  if (req.record !== false) {
    const time = new Date().toISOString();
    for (const pointId of ids) {
      if (gone.has(pointId)) continue;
      op.signal?.throwIfAborted();
      const ps = failed.get(pointId) ?? [];
      await repo.recordVerification(
        pointId,
        {
          pointId,
          time,
          ok: ps.length === 0,
          readDataFraction: fraction,
          problems: ps.map((p) => ({ kind: p.kind, id: p.id, message: p.message })),
        },
        op,
      );
    }
  }

  return {
    ok: problems.length === 0,
    failedPoints: [...failed.keys()].sort(),
    readDataFraction: fraction,
    recorded: req.record !== false,
    points: ids.length - gone.size,
    disks,
    chunksStored: stored.size,
    chunksReferenced: refCount + missing.size,
    chunksRead,
    chunksUnreferenced: stored.size - refCount,
    problems,
    durationMs: Date.now() - started,
  };
}

/** Deterministic sample by id: the same chunks are picked for the same fraction (ids are uniformly random). */
function sampled(id: Buffer, fraction: number): boolean {
  return id.readUInt32BE(0) / 0x1_0000_0000 < fraction;
}
