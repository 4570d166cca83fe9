import { join } from 'node:path';
import type { JobInput } from '../../jobs/index.js';
import { CofferError } from '../../shared/index.js';
import type { CheckParams, ExecProgress, JobContext, JobKindHandler } from './types.js';

/**
 * A recoverability check of one restore point (fsck over NBD, FORMAT.md §8.1), or its file-level ransomware
 * indicators (`files`, §8.2): a src/jobs `check` description; queued by a policy's `check` after backups, and for a
 * suspicious point by its backup. The catalog is refreshed also when the check failed (CHECK_FAILED), so the point
 * shows it.
 */
export class CheckJob implements JobKindHandler {
  readonly kind = 'check';

  /** `bootScriptsDir`: the server's directory of boot scripts (config); none: a job naming a script fails */
  constructor(private readonly opts: { bootScriptsDir?: string | undefined } = {}) {}

  async describe({ job }: JobContext): Promise<JobInput> {
    const p = job.params as CheckParams;
    return {
      kind: 'check',
      repository: job.repository,
      pointId: p.pointId,
      files: p.files === true,
      ...(p.timeoutMinutes ? { timeoutMs: p.timeoutMinutes * 60_000 } : {}),
      ...(p.boot && p.files !== true ? { boot: this.bootInput(p.boot) } : {}),
      record: true,
    };
  }

  /**
   * The src/jobs boot arguments. The optional parts (agent, forwards, script) are only present when asked for: a
   * description without them is what a proxy of the previous version understands.
   */
  private bootInput(b: NonNullable<CheckParams['boot']>) {
    if (b.script !== undefined && !this.opts.bootScriptsDir)
      throw new CofferError(
        'USAGE',
        `the check names boot script ${b.script}, and this server has no bootScriptsDir (config) to run it from`,
      );
    return {
      marker: b.marker,
      timeoutMs: b.timeoutSeconds * 1000,
      ...(b.agent ? { agent: true } : {}),
      ...(b.forward?.length ? { forwards: b.forward } : {}),
      ...(b.script !== undefined
        ? {
            script: join(this.opts.bootScriptsDir!, b.script),
            ...(b.scriptTimeoutSeconds ? { scriptTimeoutMs: b.scriptTimeoutSeconds * 1000 } : {}),
          }
        : {}),
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
