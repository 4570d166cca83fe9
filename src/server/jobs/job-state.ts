import type { Job, JobStatus } from './types.js';

/**
 * What the API and the console show for a job: the catalog's status, except that a job that failed and waits for
 * its retry (catalog status `queued` with the failure kept and at least one attempt made) is `retrying`, its own
 * state: it failed, and it is not "queued" the way a job that never ran is (issue 20).
 */
export type JobState = JobStatus | 'retrying';

export const JOB_STATES = ['queued', 'retrying', 'running', 'succeeded', 'failed', 'cancelled'] as const;

export function jobState(j: Pick<Job, 'status' | 'attempt' | 'error'>): JobState {
  return j.status === 'queued' && j.attempt > 0 && j.error !== null ? 'retrying' : j.status;
}

/** the proxy that runs or ran a job: a remote proxy's name, or `local:OWNER` for a server's own runner */
export function proxyOf(j: Pick<Job, 'runner'>): string | null {
  if (!j.runner) return null;
  return j.runner.startsWith('proxy:') ? j.runner.slice('proxy:'.length) : `local:${j.runner}`;
}

/**
 * a job as the API returns it: `status` is the job's state; `retryAt` when it waits for a retry; `proxy` the proxy
 * that runs or ran it (proxies' names as GET /api/v1/proxies lists them)
 */
export function jobView<T extends Job>(j: T): T & { status: JobState; retryAt?: string; proxy: string | null } {
  const status = jobState(j);
  const proxy = proxyOf(j);
  return status === 'retrying' ? { ...j, status, retryAt: j.notBefore, proxy } : { ...j, status, proxy };
}
