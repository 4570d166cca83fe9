import type { Repository } from '../../repository/index.js';
import { CofferError } from '../../shared/index.js';
import { exportDisk, type ExportFormat } from '../export-image.js';
import { restoreDisk, type RestoreResult, type RestoreTarget } from '../restore.js';
import { withCodecPool, type EventSink, type ProgressEvent, type UseCaseContext } from './context.js';

export const DISK_IMAGE_FORMATS = ['raw', 'qcow2', 'vmdk', 'vhdx'] as const;
export type DiskImageFormat = (typeof DISK_IMAGE_FORMATS)[number];

export interface RestoreDiskImageRequest {
  pointId: string;
  disk: number;
  /** a file or block device path, or a stream (stdout, an upload body); qcow2/vmdk/vhdx need a path */
  target: RestoreTarget;
  /** raw (default; sparse to a file) or an image format written by qemu-img */
  format?: DiskImageFormat | undefined;
  /** raw: fsync the restored file before reporting success */
  sync?: boolean | undefined;
  /** raw: re-hash every chunk to its id */
  checkIds?: boolean | undefined;
  onEvent?: EventSink<RestoreDiskImageEvent> | undefined;
}

export type RestoreDiskImageEvent = ProgressEvent;

export type ExportResult = Awaited<ReturnType<typeof exportDisk>>;

/** raw: the restore's result (bytesWritten ...); an image format: the export's (format ...) */
export type RestoreDiskImageResult = RestoreResult | ExportResult;

/**
 * Restores one disk of a restore point as a raw image (file, device, stream) or as qcow2/VMDK/VHDX (DESIGN.md
 * §Restore).
 */
export async function restoreDiskImage(
  repo: Repository,
  ctx: UseCaseContext,
  req: RestoreDiskImageRequest,
): Promise<RestoreDiskImageResult> {
  const format = req.format ?? 'raw';
  if (!DISK_IMAGE_FORMATS.includes(format))
    throw new CofferError('USAGE', `format must be raw, qcow2, vmdk or vhdx, not ${JSON.stringify(format)}`);
  const onProgress = (p: { bytesDone: number; bytesTotal: number }) =>
    req.onEvent?.({ type: 'progress', unit: 'bytes', done: p.bytesDone, total: p.bytesTotal });
  return withCodecPool(ctx, repo.codecParams, async (pool) => {
    if (format !== 'raw') {
      if (req.target.kind !== 'path')
        throw new CofferError('USAGE', `format ${format} needs a file target, not a stream`);
      return exportDisk(repo, pool, {
        pointId: req.pointId,
        disk: req.disk,
        format: format as ExportFormat,
        target: req.target.path,
        force: Boolean(req.target.force),
        signal: ctx.signal,
        onProgress,
      });
    }
    return restoreDisk(repo, pool, {
      pointId: req.pointId,
      disk: req.disk,
      target: req.target,
      signal: ctx.signal,
      sync: Boolean(req.sync),
      checkIds: Boolean(req.checkIds),
      onProgress,
    });
  });
}
