import type { Manifest } from '../../format/index.js';
import type { Repository } from '../../repository/index.js';
import { CofferError, type Op } from '../../shared/index.js';
import { RestorePointDevice } from '../mount.js';
import { withCodecPool, type UseCaseContext } from './context.js';
import type { VmRestoreTargetOpener } from './restore-vm.js';

/*
 * The two other whole-VM restores besides restoreVm (restore-vm.ts), shared by `coffer restore --to vsphere://` and
 * the server's `restore-vm` job (src/jobs): the dry run (the target opened in its validating mode, its plan read,
 * nothing created) and the quick rollback (the restore point's disks as random-access devices handed to the
 * hypervisor's rollback, which writes only what differs).
 */

export interface PlanVmRestoreRequest {
  pointId: string;
  /** an opener in its dry-run mode: the opened target carries `plan` and uploads nothing */
  target: VmRestoreTargetOpener;
}

export interface PlanVmRestoreResult {
  id: string;
  /** the VM name stored in the restore point */
  sourceVm: string;
  dryRun: true;
  /** what the restore would do, as the target describes it (vCenter: VsphereRestorePlan) */
  plan: Record<string, unknown>;
}

/** Validates a whole-VM restore against its target and returns the target's plan; creates nothing. */
export async function planVmRestore(
  repo: Repository,
  ctx: UseCaseContext,
  req: PlanVmRestoreRequest,
): Promise<PlanVmRestoreResult> {
  const op = { signal: ctx.signal };
  const manifest = await repo.loadManifest(req.pointId, op);
  const target = await req.target.open(manifest, op);
  try {
    if (!target.plan) throw new CofferError('INTERNAL', 'the restore target was not opened for a dry run');
    return { id: req.pointId, sourceVm: manifest.vm.name, dryRun: true, plan: { ...target.plan } };
  } finally {
    await target.close();
  }
}

/** The restore point as a rollback reads it: random access into each disk. */
export interface RollbackSource {
  id: string;
  disks: Manifest['disks'];
  read(disk: number, offset: number, length: number, op?: Op): Promise<Buffer>;
}

/** Rolls a VM back over itself (src/vsphere's vsphereQuickRollback), reporting bytes done of total. */
export type VmRollback<R> = (
  manifest: Manifest,
  point: RollbackSource,
  onProgress: (done: number, total: number) => void,
) => Promise<R>;

export interface RollbackVmRequest<R> {
  pointId: string;
  rollback: VmRollback<R>;
  onEvent?: ((e: { type: 'progress'; unit: 'bytes'; done: number; total: number }) => void) | undefined;
}

/** Quick rollback of an existing VM to a restore point; the result is the rollback's, with the point and duration. */
export async function rollbackVm<R extends object>(
  repo: Repository,
  ctx: UseCaseContext,
  req: RollbackVmRequest<R>,
): Promise<R & { id: string; sourceVm: string; quick: true; durationMs: number }> {
  const started = Date.now();
  const manifest = await repo.loadManifest(req.pointId, { signal: ctx.signal });
  const r = await withCodecPool(ctx, repo.codecParams, async (pool) => {
    const devices: RestorePointDevice[] = [];
    try {
      for (const d of manifest.disks)
        devices.push(await RestorePointDevice.open(repo, pool, await repo.loadIndex(d.indexId)));
      return await req.rollback(
        manifest,
        { id: req.pointId, disks: manifest.disks, read: (i, off, len, op) => devices[i]!.read(off, len, op) },
        (done, total) => req.onEvent?.({ type: 'progress', unit: 'bytes', done, total }),
      );
    } finally {
      for (const d of devices) await d.close();
    }
  });
  return { id: req.pointId, sourceVm: manifest.vm.name, quick: true, ...r, durationMs: Date.now() - started };
}
