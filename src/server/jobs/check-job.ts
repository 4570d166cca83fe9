import type { JobInput } from '../../jobs/index.js';
import type { CheckParams, ExecProgress, JobContext, JobKindHandler } from './types.js';

/**
 * A recoverability check of one restore point (fsck over NBD, FORMAT.md §8.1), or its file-level ransomware
 * indicators (`files`, §8.2): a src/jobs `check` description; queued by a policy's `check` after backups, and for a
 * suspicious point by its backup. The catalog is refreshed also when the check failed (CHECK_FAILED), so the point
 * shows it.
 */
export class CheckJob implements JobKindHandler {
  readonly kind = 'check';

  async describe({ job }: JobContext): Promise<JobInput> {
    const p = job.params as CheckParams;
    return {
      kind: 'check',
      repository: job.repository,
      pointId: p.pointId,
      files: p.files === true,
      ...(p.timeoutMinutes ? { timeoutMs: p.timeoutMinutes * 60_000 } : {}),
      ...(p.boot && p.files !== true
        ? { boot: { marker: p.boot.marker, timeoutMs: p.boot.timeoutSeconds * 1000 } }
        : {}),
      record: true,
    };
  }

  onProgress(ctx: JobContext, e: ExecProgress): void {
    if (e.total > 0) ctx.progress(e.done, e.total, e.phase);
  }

  async succeeded(ctx: JobContext, result: unknown): Promise<unknown> {
    await ctx.refreshCatalog();
    return result;
  }

  async failed(ctx: JobContext): Promise<void> {
    await ctx.refreshCatalog();
  }
}
