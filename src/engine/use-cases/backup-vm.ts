import type { Repository } from '../../repository/index.js';
import { CofferError } from '../../shared/index.js';
import { backup, type BackupResult } from '../backup.js';
import type { SignalThresholds } from '../signals/index.js';
import { withCodecPool, type EventSink, type UseCaseContext, type WarningEvent } from './context.js';
import type { CaptureReport, VmSource, VmSourceOpener } from './vm-source.js';

export interface BackupVmRequest {
  /** the repository, or its opening in progress (it then opens in parallel with the source unless afterRepository) */
  repository: Repository | Promise<Repository>;
  source: VmSourceOpener;
  /** restore points are grouped and deduplicated by this name (default: the source's VM name) */
  vm?: string | undefined;
  tags?: string[] | undefined;
  /** with change tracking: read every chunk anyway and report changes it missed */
  verifyCbt?: boolean | undefined;
  /** anomaly-score thresholds of the VM's policy (the hook for per-policy overrides; default: the built-in ones) */
  signalThresholds?: SignalThresholds | undefined;
  /** the tag of this job run: a point that carries it already is the result (engine backup's adoptTag) */
  adoptTag?: string | undefined;
  onEvent?: EventSink<BackupVmEvent> | undefined;
}

export type BackupVmEvent =
  /** the source is open: what will be read */
  | { type: 'started'; vm: string; disks: number; bytesTotal: number }
  /** bytes of all disks read so far, and bytes stored (new, compressed) */
  | { type: 'progress'; unit: 'bytes'; done: number; total: number; bytesStored: number }
  | WarningEvent
  /** the capture was finished (disks closed, snapshot removed or not) */
  | { type: 'captured'; capture: CaptureReport };

export interface BackupVmResult {
  result: BackupResult;
  /** set when the source reports on its capture (vSphere: the snapshot) */
  capture?: CaptureReport | undefined;
}

/**
 * Backs up one VM from any source into one restore point: opens the source (and the repository, in parallel when
 * allowed), runs the engine's backup with a codec pool, sums the progress of the disks, and finishes the capture
 * (closes the disks, removes the snapshot) whatever happens (DESIGN.md §Backup, §vSphere).
 */
export async function backupVm(ctx: UseCaseContext, req: BackupVmRequest): Promise<BackupVmResult> {
  const op = { signal: ctx.signal };
  const emit = req.onEvent ?? (() => undefined);
  const { repo, source } = await openBoth(req, op);
  let capture: CaptureReport | undefined;
  let result: BackupResult;
  try {
    const vm = req.vm ?? source.vmName;
    if (!vm) throw new CofferError('USAGE', 'a backup needs a VM name');
    const total = source.disks.reduce((a, s) => a + s.sizeBytes, 0);
    const done = source.disks.map(() => 0);
    emit({ type: 'started', vm, disks: source.disks.length, bytesTotal: total });
    result = await withCodecPool(ctx, repo.codecParams, (pool) =>
      backup(verifiedBeforeCommit(repo, source, emit), pool, {
        vm,
        ...(source.vmId !== undefined ? { vmId: source.vmId } : {}),
        sources: [...source.disks],
        tags: req.tags ?? [],
        verifyCbt: Boolean(req.verifyCbt),
        ...(req.signalThresholds ? { signalThresholds: req.signalThresholds } : {}),
        ...(req.adoptTag !== undefined ? { adoptTag: req.adoptTag } : {}),
        ...(source.consistency ? { consistency: source.consistency } : {}),
        ...(source.vmConfig ? { vmConfig: source.vmConfig } : {}),
        signal: ctx.signal,
        onWarning: (message) => emit({ type: 'warning', message }),
        onProgress: (p) => {
          done[p.disk] = p.bytesDone;
          emit({
            type: 'progress',
            unit: 'bytes',
            done: done.reduce((a, b) => a + b, 0),
            total,
            bytesStored: p.bytesStored,
          });
        },
      }),
    );
    const signals = result.signals;
    if (signals?.suspicious)
      emit({
        type: 'warning',
        message:
          `restore point ${result.id} is SUSPICIOUS (anomaly score ${signals.score} of 100, threshold ` +
          `${signals.threshold}): ${signals.reasons.join('; ')}`,
      });
  } finally {
    capture = await source.finish();
    if (capture) emit({ type: 'captured', capture });
  }
  return { result, ...(capture ? { capture } : {}) };
}

/**
 * The repository as the engine's backup sees it: committing the manifest first asks the source whether its capture
 * still holds (a vSphere snapshot removed mid-read fails the backup here, before any restore point exists).
 */
function verifiedBeforeCommit(repo: Repository, source: VmSource, emit: EventSink<BackupVmEvent>): Repository {
  const verify = source.verifyCapture?.bind(source);
  if (!verify) return repo;
  return new Proxy(repo, {
    get(target, prop) {
      if (prop === 'commitManifest') {
        return async (...args: Parameters<Repository['commitManifest']>) => {
          const op = args[1] ?? {};
          for (const message of await verify(op)) emit({ type: 'warning', message });
          return target.commitManifest(...args);
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function openBoth(
  req: BackupVmRequest,
  op: { signal?: AbortSignal | undefined },
): Promise<{ repo: Repository; source: VmSource }> {
  if (req.source.afterRepository) {
    const repo = await req.repository;
    return { repo, source: await req.source.open(op) };
  }
  const sourceP = Promise.resolve().then(() => req.source.open(op)); // a synchronous throw becomes a rejection too
  const repoP = Promise.resolve(req.repository);
  try {
    const [repo, source] = await Promise.all([repoP, sourceP]);
    return { repo, source };
  } catch (e) {
    // whichever failed first is thrown; a source that did open is finished, a late repository failure observed
    repoP.catch(() => undefined);
    await sourceP.then(
      (s) => s.finish(),
      () => undefined,
    );
    throw e;
  }
}
