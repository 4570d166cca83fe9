import { FIXED_INDEX_HEADER_BYTES, type FixedIndex, type Manifest } from '../format/index.js';
import { CofferError, type Op, type RestorePointId } from '../shared/index.js';
import { IdSet, IdSetBuilder } from './id-set.js';

type ManifestDisk = Manifest['disks'][number];

/** Restore points to walk: ids (a list, or `repo.pointIds()`), or manifests already loaded. */
export type WalkSource = Iterable<string | Manifest> | AsyncIterable<string>;

/**
 * Handlers of the referenced-ids walk. An error handler that returns skips the point (or the disk); one that throws
 * stops the walk. Without a handler the error is thrown. Cancellation always stops the walk, handlers unasked.
 */
export interface PointWalk {
  onPointError?(pointId: string, e: unknown): void;
  onPoint?(m: Manifest): void;
  onIndexError?(m: Manifest, disk: ManifestDisk, e: unknown): void;
  onIndex?(m: Manifest, disk: ManifestDisk, index: FixedIndex): void | Promise<void>;
}

interface PointReader {
  loadManifest(id: string, op?: Op): Promise<Manifest>;
  loadIndex(id: string, op?: Op): Promise<FixedIndex>;
}

export function isCancel(e: unknown): boolean {
  return e instanceof CofferError ? e.code === 'CANCELLED' : (e as Error)?.name === 'AbortError';
}

/** Each point with each of its disk indexes, in the order given (DESIGN.md §Repository: the referenced-ids walk). */
export async function walkPoints(repo: PointReader, points: WalkSource, walk: PointWalk, op?: Op): Promise<void> {
  for await (const p of points) {
    op?.signal?.throwIfAborted();
    let m: Manifest;
    if (typeof p === 'string') {
      try {
        m = await repo.loadManifest(p, op);
      } catch (e) {
        if (isCancel(e) || !walk.onPointError) throw e;
        walk.onPointError(p, e);
        continue;
      }
    } else m = p;
    walk.onPoint?.(m);
    for (const d of m.disks) {
      let index: FixedIndex;
      try {
        index = await repo.loadIndex(d.indexId, op);
      } catch (e) {
        if (isCancel(e) || !walk.onIndexError) throw e;
        walk.onIndexError(m, d, e);
        continue;
      }
      await walk.onIndex?.(m, d, index);
    }
  }
}

/** What a set of restore points references: the points read, their chunks and their indexes (compact id sets). */
export interface ReferencedIds {
  points: Set<RestorePointId>;
  chunks: IdSet;
  indexes: IdSet;
}

/** The chunk and index ids of these points, in bounded memory (IdSetBuilder); zero chunks are not ids. */
export async function referencedIds(
  repo: PointReader,
  points: WalkSource,
  walk: Omit<PointWalk, 'onIndex'>,
  op?: Op,
): Promise<ReferencedIds> {
  const chunks = new IdSetBuilder();
  const indexIds: Buffer[] = [];
  const read = new Set<RestorePointId>();
  await walkPoints(
    repo,
    points,
    {
      ...walk,
      onPoint: (m) => {
        read.add(m.id as RestorePointId);
        walk.onPoint?.(m);
      },
      onIndex: (_m, d, index) => {
        indexIds.push(Buffer.from(d.indexId, 'hex'));
        chunks.addConcatenated(index.bytes.subarray(FIXED_INDEX_HEADER_BYTES));
      },
    },
    op,
  );
  return { points: read, chunks: chunks.build(), indexes: IdSet.fromConcatenated(Buffer.concat(indexIds)) };
}
