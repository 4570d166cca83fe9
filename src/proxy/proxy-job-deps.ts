import type { CodecParams, CodecPool } from '../engine/index.js';
import type { JobDeps, RestoreVmJob } from '../jobs/index.js';
import { Repository } from '../repository/index.js';
import { CofferError, type Logger } from '../shared/index.js';
import type { BlockSource } from '../sources/index.js';
import type { BlobStore } from '../storage/index.js';
import { HOTADD_ENV, openVsphereBackup, vcenterVmRestore, vsphereVmSource } from '../vsphere/index.js';
import type { Assignment } from './wire.js';

/** What a proxy needs from the outside world; bin/coffer.ts (the composition root) supplies the real things. */
export interface ProxyDeps {
  env: Record<string, string | undefined>;
  /** aborted when the process is asked to stop (SIGINT/SIGTERM) */
  signal: AbortSignal;
  openStore(spec: string, opts: { create: boolean }): Promise<BlobStore>;
  openSource(spec: string, opts: { logger: Logger; signal: AbortSignal; timeoutMs?: number }): Promise<BlockSource>;
  createPool(params: CodecParams | Promise<CodecParams>): CodecPool;
}

/**
 * How a proxy executes one assignment's description: the one repository it names, opened with the location and
 * password of the assignment (held in memory for this job only, never written); disks through the composition root;
 * the vCenter of the assignment with the credentials it carries. Restores to files are not a proxy's business (their
 * targets are below the server's restore directories).
 */
export function proxyJobDeps(a: Assignment, deps: ProxyDeps, logger: Logger): JobDeps {
  let repo: Promise<Repository> | undefined;
  // a whole-VM restore into the vCenter whose access came with the assignment
  const vmRestore = (job: RestoreVmJob, jobLogger: Logger) => {
    if (!a.vcenter) throw new CofferError('USAGE', `job ${a.id}: no access to the vCenter of ${job.to} came with it`);
    const hotadd = Object.fromEntries(HOTADD_ENV.map((k) => [k, deps.env[k]]));
    return vcenterVmRestore(a.vcenter, job, jobLogger, hotadd);
  };
  return {
    openRepository: (ref) => {
      if (ref !== a.repository.name)
        throw new CofferError('USAGE', `job ${a.id} names repository ${ref}, its assignment ${a.repository.name}`);
      repo ??= (async () =>
        Repository.open(await deps.openStore(a.repository.location, { create: false }), a.repository.password, {
          logger,
        }))();
      return repo;
    },
    createPool: (params) => deps.createPool(params),
    openDisk: (spec, opts) => deps.openSource(spec, opts),
    openVsphereSource: async (source, opts) => {
      const vc = a.vcenter;
      if (!vc || source.vcenter !== vc.name)
        throw new CofferError('USAGE', `job ${a.id}: no access to the vCenter of ${source.url} came with it`);
      if (!source.url.startsWith(`${vc.url}/`))
        throw new CofferError('USAGE', `${source.url} is not a VM of vCenter ${vc.name}`);
      return vsphereVmSource(
        await openVsphereBackup(source.url, {
          tls: { thumbprint: vc.thumbprint, insecure: vc.insecureTls },
          env: { COFFER_VSPHERE_USER: vc.user, COFFER_VSPHERE_PASSWORD: vc.password },
          logger: opts.logger,
          signal: opts.signal,
          quiesce: source.quiesce,
          transport: source.transport,
        }),
      );
    },
    vmRestoreTarget: (job, opts) => vmRestore(job, opts.logger).target(),
    vmRollback: (job, opts) => vmRestore(job, opts.logger).rollback(),
    confineTarget: async () => {
      throw new CofferError('NOT_AVAILABLE', 'a proxy does not restore to files (restore jobs run on the server)');
    },
  };
}
