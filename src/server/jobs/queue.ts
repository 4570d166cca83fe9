import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { Catalog, Job, JobError, JobLogLine, JobProgress, JobStatus, LogLevel, NewJob } from './types.js';
import { CofferError } from '../../shared/index.js';
import type { RetryPolicy } from './retry-policy.js';

export const INTERRUPTED_BY_RESTART = 'interrupted by server restart';
/** the error of a job whose runner stopped renewing its lease (killed, cut off); it is requeued once, then failed */
export const LOST_RUNNER = 'lost: the process running it stopped renewing its lease';

export interface QueueOptions {
  /** this process in the catalog's jobs.lease_owner (default HOST:PID:RANDOM) */
  owner?: string;
  /** how long a claim holds without renewal (default 30 s); the runner renews every third of it */
  leaseMs?: number;
}

/** What subscribers of a job's live stream get (the SSE events of GET /api/v1/jobs/:id/events). */
export interface JobEvent {
  type: 'log' | 'progress' | 'status';
  job: number;
  data: unknown;
}

/**
 * The job queue over the catalog's jobs and job_logs tables: every state change of a job goes through here, is
 * written to the catalog and emitted as a JobEvent ('event'); 'enqueued' tells the runner to look for work.
 */
export class JobQueue extends EventEmitter {
  /** who claims jobs here (the lease owner) */
  readonly owner: string;
  readonly leaseMs: number;

  constructor(
    private readonly catalog: Pick<Catalog, 'jobs' | 'jobLogs'>,
    private readonly retry: RetryPolicy,
    opts: QueueOptions = {},
  ) {
    super();
    this.owner = opts.owner ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.leaseMs = opts.leaseMs ?? 30_000;
    this.setMaxListeners(0);
  }

  enqueue(j: NewJob): Job {
    const job = this.enqueueOnce(j);
    if (!job) throw new CofferError('INTERNAL', 'a job without a run key was not inserted');
    return job;
  }

  /**
   * Like enqueue, but with `runKey` (policy, VM, scheduled time) a job already queued under that key (by this
   * process or by another replica's scheduler) is not queued again: undefined.
   */
  enqueueOnce(j: NewJob, runKey?: string): Job | undefined {
    const trigger = j.trigger ?? 'manual';
    const id = this.catalog.jobs.insert({
      kind: j.kind,
      trigger,
      policyId: j.policyId ?? null,
      vm: j.vm ?? null,
      repository: j.repository,
      params: j.params,
      maxAttempts: this.retry.maxAttempts(j.kind),
      now: new Date().toISOString(),
      requestedBy: j.requestedBy,
      ...(runKey ? { runKey } : {}),
    });
    if (id === undefined) return undefined;
    this.log(id, 'info', `queued by ${j.requestedBy} (${trigger})`);
    this.emit('enqueued', id);
    return this.get(id)!;
  }

  get(id: number): Job | undefined {
    return this.catalog.jobs.get(id);
  }

  logs(id: number, afterSeq = 0): JobLogLine[] {
    return this.catalog.jobLogs.list(id, afterSeq);
  }

  /** A queued or running backup of this VM exists (a schedule does not pile up runs behind a slow one). */
  hasPendingBackup(vm: string): boolean {
    return this.catalog.jobs.hasPending('backup', { vm });
  }

  /** A queued or running prune of this repository exists (one prune at a time per repository). */
  hasPendingPrune(repository: string): boolean {
    return this.catalog.jobs.hasPending('prune', { repository });
  }

  /** Queued jobs whose time has come, oldest first (those after job `afterId`: the next page). */
  due(limit = 200, afterId = 0): Job[] {
    return this.catalog.jobs.due(new Date().toISOString(), limit, afterId);
  }

  /**
   * queued -> running (attempt + 1), leased to `owner` (this process, or a remote proxy's `proxy:NAME`); false when it
   * was no longer queued
   */
  claim(job: Job, owner = this.owner, label?: string): boolean {
    const attempt = job.attempt + 1;
    const now = Date.now();
    const leaseUntil = new Date(now + this.leaseMs).toISOString();
    if (!this.catalog.jobs.claim(job.id, attempt, new Date(now).toISOString(), owner, leaseUntil)) return false;
    this.emit('event', { type: 'status', job: job.id, data: { status: 'running', attempt } } satisfies JobEvent);
    this.log(job.id, 'info', `started (attempt ${attempt} of ${job.maxAttempts})${label ? ` on ${label}` : ''}`);
    return true;
  }

  /** running -> queued again after `delayMs` */
  requeue(id: number, delayMs: number, error: JobError): void {
    this.log(id, 'warn', `retrying in ${Math.round(delayMs / 1000)} s`);
    this.catalog.jobs.retry(id, new Date(Date.now() + delayMs).toISOString(), error);
    this.emit('event', { type: 'status', job: id, data: { status: 'retrying', error } } satisfies JobEvent);
  }

  finish(id: number, status: JobStatus, error: JobError | null, result: unknown): Job | undefined {
    this.catalog.jobs.finish(id, status, error, result, new Date().toISOString());
    this.emit('event', { type: 'status', job: id, data: { status, error } } satisfies JobEvent);
    return this.get(id);
  }

  log(id: number, level: LogLevel, message: string): void {
    const line = this.catalog.jobLogs.append(id, level, message);
    this.emit('event', { type: 'log', job: id, data: line } satisfies JobEvent);
  }

  progress(id: number, p: JobProgress): void {
    this.catalog.jobs.setProgress(id, p);
    this.emit('event', { type: 'progress', job: id, data: p } satisfies JobEvent);
  }

  /** Extends this process's leases on its running jobs; returns the ids it no longer holds (taken back: stop them). */
  renewLeases(ids: readonly number[], owner = this.owner): number[] {
    const held = new Set(this.catalog.jobs.renewLeases(owner, ids, new Date(Date.now() + this.leaseMs).toISOString()));
    return ids.filter((id) => !held.has(id));
  }

  /**
   * Takes back the jobs whose runner is gone (lease expired: a killed server replica or proxy): requeued once, failed
   * the second time. Any replica may call it; a conditional update lets exactly one take each job. Returns the jobs
   * it failed (for onFinished).
   */
  reclaimExpired(): { requeued: number[]; failed: Job[] } {
    const now = new Date().toISOString();
    const out = { requeued: [] as number[], failed: [] as Job[] };
    for (const job of this.catalog.jobs.expiredLeases(now)) {
      const again = job.error?.message !== LOST_RUNNER;
      const error = { code: 'CANCELLED', message: LOST_RUNNER };
      if (!this.catalog.jobs.reclaim(job.id, now, again, error)) continue;
      const line = this.catalog.jobLogs.append(job.id, again ? 'warn' : 'error', `${LOST_RUNNER} (${job.runner})`);
      this.emit('event', { type: 'log', job: job.id, data: line } satisfies JobEvent);
      this.emit('event', {
        type: 'status',
        job: job.id,
        data: { status: again ? 'queued' : 'failed', error },
      } satisfies JobEvent);
      if (again) {
        out.requeued.push(job.id);
        this.emit('enqueued', job.id);
      } else {
        out.failed.push(this.get(job.id)!);
      }
    }
    return out;
  }

  /** Fails the jobs a previous process left running; returns how many. */
  recover(): number {
    const ids = this.catalog.jobs.runningIds();
    for (const id of ids) {
      this.log(id, 'error', INTERRUPTED_BY_RESTART);
      this.catalog.jobs.finish(
        id,
        'failed',
        { code: 'CANCELLED', message: INTERRUPTED_BY_RESTART },
        null,
        new Date().toISOString(),
      );
    }
    return ids.length;
  }
}
