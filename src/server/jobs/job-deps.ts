import type { JobDeps, RestoreVmJob } from '../../jobs/index.js';
import { CofferError, type Logger } from '../../shared/index.js';
import { HOTADD_ENV, vcenterVmRestore, vsphereVmSource } from '../../vsphere/index.js';
import type { ServerConfig } from '../config.js';
import type { ServerDeps } from '../deps.js';
import type { RepositoryManager } from '../repositories.js';
import { openVcenterVm, vcenterAccess } from '../vcenters.js';
import { confineRestoreTarget } from './restore-target.js';

/**
 * How this server executes src/jobs descriptions: a repository is a configured name (opened once, RepositoryManager),
 * disks open through the composition root's openSource, a vSphere source must name a configured vCenter (its
 * credentials and TLS policy come from the config and the environment, never from the job), and every path a job
 * writes to is confined to the restore directories.
 */
export function serverJobDeps(config: ServerConfig, deps: ServerDeps, repos: Pick<RepositoryManager, 'get'>): JobDeps {
  // a whole-VM restore goes into a configured vCenter only, with its credentials and TLS policy
  const vmRestore = (job: RestoreVmJob, logger: Logger) => {
    if (job.vcenter === undefined)
      throw new CofferError('USAGE', `a server job restores into configured vCenters only, not ${job.to}`);
    const hotadd = Object.fromEntries(HOTADD_ENV.map((k) => [k, deps.env[k]]));
    return vcenterVmRestore(vcenterAccess(config, deps.env, job.vcenter), job, logger, hotadd);
  };
  return {
    openRepository: (name) => repos.get(name),
    createPool: (params) => deps.createPool(params),
    openDisk: (spec, opts) => deps.openSource(spec, opts),
    openVsphereSource: async (source, opts) => {
      if (source.vcenter === undefined)
        throw new CofferError('USAGE', `a server job backs up VMs of configured vCenters only, not ${source.url}`);
      if (source.transport !== 'http')
        throw new CofferError(
          'NOT_AVAILABLE',
          `server jobs read vSphere disks over the http transport only, not ${source.transport}`,
        );
      return vsphereVmSource(
        await openVcenterVm(config, deps.env, source.vcenter, source.url, { ...opts, quiesce: source.quiesce }),
      );
    },
    vmRestoreTarget: (job, opts) => vmRestore(job, opts.logger).target(),
    vmRollback: (job, opts) => vmRestore(job, opts.logger).rollback(),
    confineTarget: (path) => confineRestoreTarget(path, config.restoreDirs!),
  };
}
