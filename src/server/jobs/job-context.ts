import { runJob, type JobDeps } from '../../jobs/index.js';
import type { Repository } from '../../repository/index.js';
import { asCofferError, type Logger } from '../../shared/index.js';
import type { JobQueue } from './queue.js';
import type { Job, JobContext, JobProgress } from './types.js';

/** What a job kind's context is built from (the runner of this server, or the API of remote proxies). */
export interface JobContextDeps {
  queue: Pick<JobQueue, 'log' | 'progress'>;
  /** how this server executes descriptions itself (its own proxy) */
  jobDeps: JobDeps;
  openRepository(name: string): Promise<Repository>;
  /** re-reads a repository into the catalog after a job */
  refreshCatalog(repository: string): Promise<void>;
}

/** The context of one attempt of `job`: its log, its progress (throttled to one write per 250 ms), the catalog. */
export function jobContext(deps: JobContextDeps, job: Job, signal: AbortSignal): JobContext {
  const { queue } = deps;
  const log = (level: 'info' | 'warn' | 'error') => (msg: string) => queue.log(job.id, level, msg);
  const logger: Logger = { info: log('info'), warn: log('warn'), debug: () => undefined };
  let lastProgress = 0;
  const progressNow = (p: JobProgress) => queue.progress(job.id, p);
  return {
    job,
    signal,
    logger,
    execute: (description, onProgress) =>
      runJob(description, deps.jobDeps, {
        signal,
        onEvent: (e) => (e.type === 'log' ? logger[e.level](e.message) : onProgress?.(e)),
      }),
    repository: () => deps.openRepository(job.repository),
    progressNow,
    progress: (done, total, phase) => {
      const now = Date.now();
      if (now - lastProgress < 250 && done < total) return;
      lastProgress = now;
      progressNow({ bytesDone: done, bytesTotal: total, ...(phase ? { phase } : {}) });
    },
    refreshCatalog: () =>
      deps
        .refreshCatalog(job.repository)
        .catch((e) => logger.warn(`catalog refresh of ${job.repository} failed: ${asCofferError(e).message}`)),
  };
}
