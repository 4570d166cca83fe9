import type { JobInput } from '../../jobs/index.js';
import type { ExecProgress, JobContext, JobKindHandler, RestoreVmParams } from './types.js';

/**
 * Restores a whole VM into a configured vCenter (docs/DESIGN.md §Server, restore-vm): a src/jobs `restore-vm`
 * description, the same use cases `coffer restore --to vsphere://` runs (restoreVm, planVmRestore for a dry run,
 * rollbackVm for a quick rollback). The target is vsphere://<the vCenter's host:port>/<name>; the vCenter's
 * credentials and TLS policy come from the executing process's configuration, never from the job.
 */
export class RestoreVmJob implements JobKindHandler {
  readonly kind = 'restore-vm';

  /** @param vcenterUrl the base URL (vsphere://HOST:PORT) of a configured vCenter */
  constructor(private readonly vcenterUrl: (name: string) => string) {}

  async describe({ job }: JobContext): Promise<JobInput> {
    const p = job.params as RestoreVmParams;
    return {
      kind: 'restore-vm',
      repository: job.repository,
      pointId: p.pointId,
      to: `${this.vcenterUrl(p.vcenter)}/${p.name}`,
      vcenter: p.vcenter,
      datastore: p.datastore,
      ...(p.datacenter ? { datacenter: p.datacenter } : {}),
      ...(p.storagePolicy ? { storagePolicy: p.storagePolicy } : {}),
      ...(p.folder ? { folder: p.folder } : {}),
      ...(p.pool ? { pool: p.pool } : {}),
      ...(p.host ? { host: p.host } : {}),
      force: p.force,
      quick: p.quick,
      ...(p.proxyVm ? { proxyVm: p.proxyVm } : {}),
      powerOn: p.powerOn,
      ...(p.networkMap ? { networkMap: p.networkMap } : {}),
      nicsDisconnected: p.nicsDisconnected,
      keepMac: p.keepMac,
      keepUuid: p.keepUuid,
      dryRun: p.dryRun,
    };
  }

  onProgress(ctx: JobContext, e: ExecProgress): void {
    ctx.progress(e.done, e.total, e.phase);
  }

  async succeeded(_ctx: JobContext, result: unknown): Promise<unknown> {
    return result;
  }
}
