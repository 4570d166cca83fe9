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

/** a job as the API returns it: `status` is the job's state; `retryAt` when it waits for a retry */
export function jobView<T extends Job>(j: T): T & { status: JobState; retryAt?: string } {
  const status = jobState(j);
  return status === 'retrying' ? { ...j, status, retryAt: j.notBefore } : { ...j, status };
}
