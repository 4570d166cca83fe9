import type { Repository } from '../../repository/index.js';
import { extractGuestFiles, type ExtractResult } from '../file-restore.js';
import { withCodecPool, type EventSink, type UseCaseContext } from './context.js';

export interface RestoreFilesRequest {
  pointId: string;
  disk: number;
  /** as `files ls --partitions` numbers them, or an LVM2 logical volume as "VG/LV"; default the only one */
  partition?: number | string | undefined;
  /** paths inside the guest filesystem, copied recursively */
  paths: string[];
  /** local directory (created if missing) */
  target: string;
  force?: boolean | undefined;
  /** also write NTFS alternate data streams as `name:stream` files */
  streams?: boolean | undefined;
  onEvent?: EventSink<RestoreFilesEvent> | undefined;
}

export type RestoreFilesEvent = { type: 'progress'; unit: 'items'; done: number; total: number; bytes: number };

/**
 * File-level restore: copies files and directories out of a guest filesystem of a restore point
 * (DESIGN.md §File-level restore).
 */
export async function restoreFiles(
  repo: Repository,
  ctx: UseCaseContext,
  req: RestoreFilesRequest,
): Promise<{ id: string; disk: number; durationMs: number } & ExtractResult> {
  const started = Date.now();
  const r = await withCodecPool(ctx, repo.codecParams, (pool) =>
    extractGuestFiles(repo, pool, {
      pointId: req.pointId,
      disk: req.disk,
      partition: req.partition,
      paths: req.paths,
      target: req.target,
      force: Boolean(req.force),
      streams: Boolean(req.streams),
      signal: ctx.signal,
      ...(req.onEvent
        ? {
            onProgress: (p: { files: number; bytes: number }) =>
              req.onEvent!({ type: 'progress', unit: 'items', done: p.files, total: 0, bytes: p.bytes }),
          }
        : {}),
    }),
  );
  return { id: req.pointId, disk: req.disk, ...r, durationMs: Date.now() - started };
}
