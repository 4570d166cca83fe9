import type { Logger as PinoLogger } from 'pino';
import type { Logger } from '../shared/index.js';
import type { Catalog, Job } from './catalog/index.js';
import type { ServerConfig } from './config.js';
import type { ServerDeps } from './deps.js';
import { BackupJob } from './jobs/backup-job.js';
import { CheckJob } from './jobs/check-job.js';
import type { Incident } from './jobs/suspicious-point.js';
import { serverJobDeps } from './jobs/job-deps.js';
import { PruneJob } from './jobs/prune-job.js';
import { Placer } from './jobs/placer.js';
import { JobQueue } from './jobs/queue.js';
import { RemoteProxies } from './jobs/remote-proxies.js';
import { RestoreJob } from './jobs/restore-job.js';
import { RestoreVmJob } from './jobs/restore-vm-job.js';
import { RetryPolicy } from './jobs/retry-policy.js';
import { JobRunner } from './jobs/runner.js';
import { VerifyJob } from './jobs/verify-job.js';
import { backupTransition, Notifier, type NotificationEvent } from './notifier.js';
import { RepositoryManager } from './repositories.js';
import { Scheduler } from './scheduler.js';
import { SlaMonitor } from './sla-monitor.js';
import { repositoryPassword } from './config.js';
import { openVcenterVm, vcenterAccess, vcenterUrl, Vcenters } from './vcenters.js';

/** The long-lived parts of a server, each built with what it needs (no wiring after construction). */
export interface Services {
  repos: RepositoryManager;
  notifier: Notifier;
  vcenters: Vcenters;
  queue: JobQueue;
  runner: JobRunner;
  /** placement of jobs on proxies, and the proxies' state */
  placer: Placer;
  /** the server's side of remote `coffer proxy` processes */
  remoteProxies: RemoteProxies;
  scheduler: Scheduler;
  sla: SlaMonitor;
}

/**
 * Builds the server's parts in dependency order:
 * catalog -> repositories, vCenters -> queue -> job kinds -> runner -> scheduler.
 */
export function buildServices(
  catalog: Catalog,
  config: ServerConfig,
  deps: ServerDeps,
  logger: Logger,
  log: PinoLogger,
  /** job leases (ADR 0015); default 30 s. localProxy false: this server runs no job itself (remote proxies do) */
  opts: { leaseMs?: number; localProxy?: boolean } = {},
): Services {
  const repos = new RepositoryManager(catalog, config.repositories, deps, logger);
  const notifier = new Notifier(config.notifications, deps.env, logger);
  const vcenters = new Vcenters(config, deps.env, logger);
  const retry = new RetryPolicy(config.retries);
  const queue = new JobQueue(catalog, retry, opts.leaseMs ? { leaseMs: opts.leaseMs } : {});
  const sla = new SlaMonitor(catalog, vcenters, notifier, config.slaCheckSeconds, logger);
  const kinds = [
    new BackupJob({
      policies: catalog.policies,
      queue,
      failUnreadableVcenter: (vcenter, opts) =>
        openVcenterVm(config, deps.env, vcenter, undefined, opts) as Promise<never>,
    }),
    new RestoreJob(),
    new RestoreVmJob((name) => vcenterUrl(config, name)),
    new VerifyJob(),
    new PruneJob(),
    new CheckJob({ bootScriptsDir: config.bootScriptsDir }),
  ];
  const limits = {
    total: config.limits.total,
    perSource: config.limits.perSource,
    perDatastore: config.limits.perDatastore,
    perRepository: (name: string) => repositoryLimit(repos, config, name),
  };
  const placer = new Placer({
    catalog,
    queue,
    limits,
    vmInfo: (vm) => vcenters.vm(vm),
    onlineMs: queue.leaseMs,
  });
  const onFinished = (job: Job) => reportFinished(job, { log, notifier, sla, previous: previousBackup(catalog, job) });
  const contextDeps = {
    jobDeps: serverJobDeps(config, deps, repos),
    openRepository: (name: string) => repos.get(name),
    refreshCatalog: (name: string) => repos.sync(name),
  };
  const runner = new JobRunner({
    ...contextDeps,
    queue,
    retry,
    kinds,
    limits,
    placer,
    catalog,
    localProxy: opts.localProxy ?? config.localProxy,
    onFinished,
    logger,
  });
  const remoteProxies = new RemoteProxies({
    ...contextDeps,
    catalog,
    queue,
    retry,
    placer,
    kinds,
    repositoryAccess: async (name) => {
      const c = repos.config(name);
      return { location: c.location, password: await repositoryPassword(c, deps.env) };
    },
    vcenterAccess: (name) => vcenterAccess(config, deps.env, name),
    onFinished,
    logger,
  });
  // with replicas (PostgreSQL), a new leader fires a schedule time of the last 15 minutes that a dead leader may
  // have fired only in part; its run keys skip what is queued already
  const scheduler = new Scheduler(catalog.policies, queue, vcenters, logger, {
    catchUpMs: catalog.dialect === 'postgres' ? 15 * 60_000 : 0,
  });
  return { repos, notifier, vcenters, queue, runner, placer, remoteProxies, scheduler, sla };
}

function repositoryLimit(repos: RepositoryManager, config: ServerConfig, name: string): number {
  try {
    return repos.config(name).maxConcurrentJobs ?? config.limits.perRepository;
  } catch {
    return config.limits.perRepository;
  }
}

/** the VM's finished (succeeded or failed) backup before this one */
function previousBackup(catalog: Catalog, job: Job): Job | undefined {
  if (job.kind !== 'backup' || job.vm === null) return undefined;
  return catalog.jobs
    .list({ kind: 'backup', vm: job.vm, beforeId: job.id, limit: 50 })
    .find((j) => j.status === 'failed' || j.status === 'succeeded');
}

/**
 * A finished job: logged, notified (failed and succeeded; a backup's first failure and its recovery), and a backup
 * re-evaluates RPO compliance.
 */
function reportFinished(
  job: Job,
  to: { log: PinoLogger; notifier: Notifier; sla: SlaMonitor; previous: Job | undefined },
): void {
  to.log.info({ job: job.id, kind: job.kind, vm: job.vm, status: job.status, error: job.error }, 'job finished');
  if (job.status !== 'failed' && job.status !== 'succeeded') {
    if (job.kind === 'backup') to.sla.check();
    return;
  }
  const transition = backupTransition(job, to.previous);
  const events: NotificationEvent[] = [job.status === 'failed' ? 'job.failed' : 'job.succeeded'];
  if (transition) events.push(transition);
  for (const event of events) {
    const what =
      event === 'job.first-failure'
        ? `first failure (previous backup ${to.previous ? `job ${to.previous.id} ${to.previous.status}` : 'none'})`
        : event === 'job.recovered'
          ? `recovered (previous backup job ${to.previous!.id} failed)`
          : job.status;
    to.notifier.notify({
      event,
      time: new Date().toISOString(),
      summary:
        `${job.kind} job ${job.id}${job.vm ? ` of VM ${job.vm}` : ''} ${what}` +
        `${job.error ? `: ${job.error.message}` : ''}`,
      job: {
        id: job.id,
        kind: job.kind,
        vm: job.vm,
        repository: job.repository,
        status: job.status,
        error: job.error,
        attempt: job.attempt,
      },
    });
  }
  notifyIncident(job, to.notifier);
  if (job.kind === 'backup') to.sla.check();
}

/**
 * A backup whose point is suspicious (result.incident, jobs/suspicious-point.ts): `point.suspicious` with the score,
 * the reasons and the holds; a file-level indicators check that found traces: `point.indicators`.
 */
function notifyIncident(job: Job, notifier: Notifier): void {
  if (job.status !== 'succeeded' || !job.result || typeof job.result !== 'object') return;
  const r = job.result as { incident?: Incident; kind?: string; found?: boolean; pointId?: string; reasons?: string[] };
  const where = { vm: job.vm, repository: job.repository, job: job.id };
  if (job.kind === 'backup' && r.incident) {
    const i = r.incident;
    notifier.notify({
      event: 'point.suspicious',
      time: new Date().toISOString(),
      summary:
        `restore point ${i.pointId} of VM ${i.vm} is suspicious (score ${i.score}): ${i.reasons.join('; ')}` +
        (i.lastClean ? `; last clean point ${i.lastClean} held` : '; no clean point to hold'),
      ...where,
      pointId: i.pointId,
      score: i.score,
      reasons: i.reasons,
      holds: i.holds,
      lastClean: i.lastClean,
    });
  }
  if (job.kind === 'check' && r.kind === 'files' && r.found === true)
    notifier.notify({
      event: 'point.indicators',
      time: new Date().toISOString(),
      summary: `ransomware traces in the files of restore point ${r.pointId}: ${(r.reasons ?? []).join('; ')}`,
      ...where,
      pointId: r.pointId,
      reasons: r.reasons,
    });
}
