import type { Repository } from '../../repository/index.js';
import { CofferError } from '../../shared/index.js';
import { copyPoints, type CopiedPoint, type CopyResult } from '../copy.js';
import { withCodecPool, type EventSink, type UseCaseContext } from './context.js';

/**
 * Which restore points of the source to copy: given ids (or unique prefixes), or all / one VM's, optionally only the
 * newest of each VM.
 */
export type CopySelection = { ids: string[] } | { vm?: string | undefined; latest?: boolean | undefined };

export interface CopyRestorePointsRequest {
  from: Repository;
  /** opened over a throttled store when the upload is capped */
  to: Repository;
  select: CopySelection;
  onEvent?: EventSink<CopyRestorePointsEvent> | undefined;
}

export type CopyRestorePointsEvent =
  | { type: 'progress'; unit: 'items'; point: string; done: number; total: number }
  | { type: 'point'; point: CopiedPoint };

/**
 * Selects restore points of the source repository and copies them (only the chunks the target lacks; DESIGN.md §Backup
 * copy).
 */
export async function copyRestorePoints(ctx: UseCaseContext, req: CopyRestorePointsRequest): Promise<CopyResult> {
  const pointIds = await selectPoints(req.from, req.select, ctx.signal);
  if (pointIds.length === 0) throw new CofferError('NOT_FOUND', 'no restore points to copy');
  // copyPoints takes the target's VM leases and follows the GC protocol there; the source is only read
  return withCodecPool(ctx, req.from.codecParams, (srcPool) =>
    withCodecPool(ctx, req.to.codecParams, (dstPool) =>
      copyPoints(req.from, req.to, srcPool, dstPool, {
        pointIds,
        signal: ctx.signal,
        ...(req.onEvent
          ? {
              onProgress: (p) =>
                req.onEvent!({
                  type: 'progress',
                  unit: 'items',
                  point: p.point,
                  done: p.chunksDone,
                  total: p.chunksTotal,
                }),
            }
          : {}),
        onPoint: (point) => req.onEvent?.({ type: 'point', point }),
      }),
    ),
  );
}

async function selectPoints(repo: Repository, sel: CopySelection, signal: AbortSignal | undefined): Promise<string[]> {
  const op = { signal };
  if ('ids' in sel) {
    const ids: string[] = [];
    for (const ref of sel.ids) ids.push(await repo.resolvePoint(ref, op));
    return ids;
  }
  let points = (await repo.listPoints(op)).filter((p) => !sel.vm || p.vm.name === sel.vm);
  if (sel.latest) {
    const newest = new Map<string, (typeof points)[number]>();
    for (const p of points) newest.set(p.vm.name, p); // oldest first: the last one wins
    points = [...newest.values()];
  }
  return points.map((p) => p.id);
}
