import {
  DEFAULT_SIGNAL_THRESHOLDS,
  backupVm,
  checkFileIndicators,
  checkRestorePoint,
  copyRestorePoints,
  forgetPoints,
  openDiskSet,
  planVmRestore,
  pruneRepository,
  restoreDiskImage,
  restoreFiles,
  restoreVm,
  rollbackVm,
  verifyFailure,
  verifyRepository,
  type CodecParams,
  type CodecPool,
  type ProgressEvent,
  type WarningEvent,
  type UseCaseContext,
  type VmRestoreTargetOpener,
  type VmRollback,
  type VmSource,
  type SignalThresholds,
} from '../engine/index.js';
import type { Repository } from '../repository/index.js';
import { CofferError, type Logger, type Op } from '../shared/index.js';
import type { BlockSource } from '../sources/index.js';
import { parseJob, type BackupJob, type RestoreVmJob, type VsphereSourceSpec } from './job.js';

/** What a process must provide to execute jobs; the composition root (bin, server) supplies the real things. */
export interface JobDeps {
  /** a repository named by a job (server: a configured name; CLI/proxy: a location) */
  openRepository(
    ref: string,
    opts: Op & { purpose: 'read' | 'write'; limitUploadBytesPerSecond?: number | undefined },
  ): Promise<Repository>;
  createPool(params: CodecParams): CodecPool;
  /** one disk: image path, file:// or nbd:// */
  openDisk(spec: string, opts: { logger: Logger; signal: AbortSignal; timeoutMs?: number }): Promise<BlockSource>;
  /**
   * a vSphere VM for backup (snapshot taken; finish removes it): src/vsphere's vsphereVmSource; absent: not available
   */
  openVsphereSource?(source: VsphereSourceSpec, opts: { logger: Logger; signal: AbortSignal }): Promise<VmSource>;
  /**
   * the vCenter target of a VM restore (in its validating mode with job.dryRun): src/vsphere's
   * vsphereRestoreTargetOpener; absent: not available
   */
  vmRestoreTarget?(job: RestoreVmJob, opts: { logger: Logger }): VmRestoreTargetOpener | Promise<VmRestoreTargetOpener>;
  /** the quick rollback of job.to (job.quick): src/vsphere's vsphereQuickRollback; absent: not available */
  vmRollback?(job: RestoreVmJob, opts: { logger: Logger }): VmRollback<object> | Promise<VmRollback<object>>;
  /** checks a local path a job writes to (server: inside the restore directories); default: any path */
  confineTarget?(path: string, kind: 'restore-disk' | 'restore-files'): Promise<void>;
}

/** What a running job reports: progress (throttling is the sink's business) and log lines. */
export type JobEvent =
  | { type: 'progress'; unit: 'bytes' | 'items'; done: number; total: number; phase?: string }
  | { type: 'log'; level: 'info' | 'warn'; message: string };

export interface RunJobOptions {
  signal?: AbortSignal;
  onEvent?: (e: JobEvent) => void;
}

/**
 * Executes one job description (validated first) by calling the engine's use case for its kind; resolves to the
 * JSON-serialisable result. Failures are CofferErrors (the caller decides on retries by code).
 */
export async function runJob(input: unknown, deps: JobDeps, opts: RunJobOptions = {}): Promise<unknown> {
  const job = parseJob(input);
  const signal = opts.signal ?? new AbortController().signal;
  const emit = opts.onEvent ?? (() => undefined);
  const log = (level: 'info' | 'warn') => (message: string) => emit({ type: 'log', level, message });
  const logger: Logger = { info: log('info'), warn: log('warn'), debug: () => undefined };
  const ctx: UseCaseContext = { createPool: (p) => deps.createPool(p), signal };
  // every use case's events: progress and warnings are passed on, the others are the use case's own business
  const progress = (e: { type: string }) => {
    if (e.type === 'warning') logger.warn((e as WarningEvent).message);
    else if (e.type === 'progress') {
      const p = e as ProgressEvent;
      emit({ type: 'progress', unit: p.unit, done: p.done, total: p.total, ...(p.phase ? { phase: p.phase } : {}) });
    }
  };
  const open = (ref: string, purpose: 'read' | 'write') => deps.openRepository(ref, { signal, purpose });
  switch (job.kind) {
    case 'backup':
      return runBackup(job, deps, ctx, logger, progress);
    case 'restore-disk': {
      if (job.target === '-') throw new CofferError('USAGE', 'a job restores to a path, not to stdout');
      await deps.confineTarget?.(job.target, 'restore-disk');
      const r = await restoreDiskImage(await open(job.repository, 'read'), ctx, {
        pointId: job.pointId,
        disk: job.disk,
        target: { kind: 'path', path: job.target, force: job.force },
        format: job.format,
        sync: job.sync,
        checkIds: job.checkIds,
        onEvent: progress,
      });
      logger.info(`restored disk ${r.disk} of ${r.id} to ${r.target}`);
      return r;
    }
    case 'restore-vm': {
      if (!deps.vmRestoreTarget)
        throw new CofferError('NOT_AVAILABLE', 'restore to vSphere is not available in this process');
      if (job.quick) {
        if (!job.force) throw new CofferError('USAGE', 'quick: a quick rollback restores over the VM: it needs force');
        if (job.dryRun) throw new CofferError('USAGE', 'quick and dryRun exclude each other');
        if (!deps.vmRollback) throw new CofferError('NOT_AVAILABLE', 'quick rollback is not available in this process');
        const repo = await open(job.repository, 'read');
        const r = await rollbackVm(repo, ctx, {
          pointId: job.pointId,
          rollback: await deps.vmRollback(job, { logger }),
          onEvent: progress,
        });
        logger.info(`rolled ${job.to} back to ${r.id}`);
        return r;
      }
      if (job.proxyVm !== undefined) throw new CofferError('USAGE', 'proxyVm applies to a quick rollback only');
      if (job.dryRun) {
        const r = await planVmRestore(await open(job.repository, 'read'), ctx, {
          pointId: job.pointId,
          target: await deps.vmRestoreTarget(job, { logger }),
        });
        logger.info(`dry run of ${r.id} (${r.sourceVm}): nothing was created`);
        return r;
      }
      const r = await restoreVm(await open(job.repository, 'read'), ctx, {
        pointId: job.pointId,
        target: await deps.vmRestoreTarget(job, { logger }),
        powerOn: job.powerOn,
        checkIds: job.checkIds,
        onEvent: progress,
      });
      logger.info(`restored ${r.id} (${r.sourceVm}) as VM ${r.vm} (${r.moref})`);
      return r;
    }
    case 'verify': {
      const report = await verifyRepository(await open(job.repository, 'write'), ctx, {
        readDataFraction: job.readDataFraction,
        record: job.record,
        onEvent: progress,
      });
      for (const p of report.problems.slice(0, 50)) logger.warn(`${p.kind}: ${p.message}`);
      const failure = verifyFailure(report);
      if (failure) throw failure;
      logger.info(
        `verified ${report.points} restore points, ${report.chunksReferenced} chunks ` +
          `referenced, ${report.chunksRead} read`,
      );
      return report;
    }
    case 'copy': {
      const [from, to] = await Promise.all([
        open(job.from, 'read'),
        deps.openRepository(job.to, {
          signal,
          purpose: 'write',
          limitUploadBytesPerSecond: job.limitUploadBytesPerSecond,
        }),
      ]);
      const r = await copyRestorePoints(ctx, {
        from,
        to,
        select: job.select,
        onEvent: (e) =>
          e.type === 'point' ? logger.info(`${e.point.id} ${e.point.vm}: ${e.point.status}`) : progress(e),
      });
      return r;
    }
    case 'prune':
      return pruneRepository(await open(job.repository, 'write'), ctx, {
        skipIfRunning: job.skipIfRunning,
        onEvent: progress,
      });
    case 'forget':
      return forgetPoints(await open(job.repository, 'write'), ctx, {
        policy: job.policy,
        vm: job.vm,
        dryRun: job.dryRun,
        prune: job.prune,
        onEvent: progress,
      });
    case 'restore-files': {
      await deps.confineTarget?.(job.target, 'restore-files');
      const r = await restoreFiles(await open(job.repository, 'read'), ctx, {
        pointId: job.pointId,
        disk: job.disk,
        partition: job.partition,
        paths: job.paths,
        target: job.target,
        force: job.force,
      });
      for (const w of r.warnings) logger.warn(w);
      if (r.failed.length > 0)
        throw new CofferError('PARTIAL', `${r.failed.length} file(s) could not be restored`, {
          details: { failed: r.failed.length },
        });
      return r;
    }
    case 'check': {
      const repo = await open(job.repository, job.record ? 'write' : 'read');
      if (job.files) {
        const r = await checkFileIndicators(repo, ctx, { pointId: job.pointId, record: job.record });
        if (r.found) logger.warn(`ransomware indicators in ${r.pointId}: ${r.reasons.join('; ')}`);
        else logger.info(`no file-level ransomware indicators in ${r.pointId} (against ${r.againstId})`);
        return r;
      }
      const r = await checkRestorePoint(repo, ctx, {
        pointId: job.pointId,
        timeoutMs: job.timeoutMs,
        record: job.record,
        ...(job.boot ? { boot: job.boot } : {}),
        onEvent: (e) => {
          if (e.type !== 'volume') return;
          const v = e.volume;
          const what = `disk ${v.disk} volume ${v.volume}: ${v.filesystem ?? '-'} (${v.tool ?? '-'})`;
          if (v.ok === false) logger.warn(`${what} FAILED: ${v.note ?? ''}`);
          else logger.info(`${what} ${v.ok ? 'ok' : `not checked: ${v.note ?? ''}`}`);
        },
      });
      if (r.boot)
        logger[r.boot.ok ? 'info' : 'warn'](
          `boot ${r.boot.ok ? `ok after ${Math.round(r.boot.elapsedMs / 1000)} s` : `FAILED: ${r.boot.note ?? ''}`}`,
        );
      if (!r.ok)
        throw new CofferError('CHECK_FAILED', `restore point ${r.pointId} failed its check: ${r.problems.join('; ')}`, {
          details: { check: r },
        });
      return r;
    }
  }
}

async function runBackup(
  job: BackupJob,
  deps: JobDeps,
  ctx: UseCaseContext,
  logger: Logger,
  progress: (e: { type: string }) => void,
): Promise<unknown> {
  const signal = ctx.signal!;
  const src = job.source;
  const source =
    src.type === 'disks'
      ? {
          open: (op: Op) =>
            openDiskSet(
              src.disks.map(
                (spec) => () =>
                  deps.openDisk(spec, { logger, signal, ...(src.timeoutMs ? { timeoutMs: src.timeoutMs } : {}) }),
              ),
              op,
            ),
        }
      : {
          afterRepository: true,
          open: () => {
            if (!deps.openVsphereSource)
              throw new CofferError('NOT_AVAILABLE', 'vSphere backup is not available in this process');
            return deps.openVsphereSource(src, { logger, signal });
          },
        };
  if (src.type === 'disks' && !job.vm) throw new CofferError('USAGE', 'a backup of disks needs a VM name (vm)');
  if (job.adoptTag !== undefined && !job.tags.includes(job.adoptTag))
    throw new CofferError('USAGE', "adoptTag must be one of the job's tags");
  const { result, capture } = await backupVm(ctx, {
    repository: deps.openRepository(job.repository, { signal, purpose: 'write' }),
    source,
    vm: job.vm,
    tags: job.tags,
    verifyCbt: job.verifyCbt,
    ...(job.adoptTag !== undefined ? { adoptTag: job.adoptTag } : {}),
    ...(job.signalThresholds ? { signalThresholds: signalThresholds(job.signalThresholds) } : {}),
    onEvent: (e) => {
      if (e.type === 'started') logger.info(`backing up ${e.disks} disk(s) of VM ${e.vm}, ${e.bytesTotal} bytes`);
      else if (e.type === 'captured') {
        if (!e.capture.cleanedUp)
          logger.warn(`${e.capture.kind}: the capture of the VM was NOT cleaned up (snapshot left behind)`);
      } else progress(e);
    },
  });
  if (result.adopted) logger.info(`restore point ${result.id} (${result.mode}) was made by an earlier attempt`);
  else
    logger.info(
      `restore point ${result.id} (${result.mode}): read ${result.bytesRead} bytes, stored ${result.bytesStored} ` +
        `in ${result.chunksNew} new chunks`,
    );
  return capture ? { ...result, [capture.kind]: capture.details } : result;
}

/** A job's threshold overrides on top of the defaults (absent fields keep theirs). */
function signalThresholds(o: NonNullable<BackupJob['signalThresholds']>): SignalThresholds {
  const t: SignalThresholds = { ...DEFAULT_SIGNAL_THRESHOLDS };
  for (const [k, v] of Object.entries(o)) if (v !== undefined) t[k as keyof SignalThresholds] = v;
  return t;
}
