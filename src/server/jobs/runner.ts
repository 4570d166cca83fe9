import { TOOL_VERSION } from '../../engine/index.js';
import { CofferError, asCofferError, type Logger } from '../../shared/index.js';
import type { Catalog, ProxyCapabilities } from '../catalog/index.js';
import { jobContext, type JobContextDeps } from './job-context.js';
import type { Placer } from './placer.js';
import type { JobQueue } from './queue.js';
import type { RetryPolicy } from './retry-policy.js';
import { runHere, type Job, type JobContext, type JobKind, type JobKindHandler, type JobStatus } from './types.js';

/** How many jobs may run at once: in total (this server's own proxy), per repository, per source VM. */
export interface JobLimits {
  total: number;
  perSource: number;
  perRepository(repository: string): number;
}

/** what the server's own proxy can do: every kind, the static inventory's disks and vCenter VMs over http */
export const LOCAL_CAPABILITIES: ProxyCapabilities = {
  kinds: ['backup', 'restore', 'restore-vm', 'verify', 'prune', 'check'],
  transports: ['disk', 'http'],
  repositories: null,
  vcenters: null,
  clusters: null,
  datastores: null,
};

export interface JobRunnerDeps extends JobContextDeps {
  queue: JobQueue;
  retry: RetryPolicy;
  limits: JobLimits;
  /** one handler per job kind */
  kinds: readonly JobKindHandler[];
  /** which due jobs this server takes (placement among every proxy, this server's own included) */
  placer: Pick<Placer, 'claim'>;
  catalog: Pick<Catalog, 'jobs' | 'proxies'>;
  /** this server runs jobs itself (its own proxy); false: `--no-local-proxy`, remote proxies run every job */
  localProxy: boolean;
  /** called once a job has ended (succeeded, failed or cancelled; not when it goes back to the queue) */
  onFinished(job: Job): void;
  logger: Logger;
}

interface Running {
  controller: AbortController;
  done: Promise<void>;
  cancelled: boolean;
  /** another process took the job back (this one's lease expired): nothing more is written for it */
  lost: boolean;
}

/**
 * Starts queued jobs (docs/DESIGN.md §Server, ADR 0007): in id order within the limits, each in-process with an
 * AbortController, through the handler of its kind (which executes src/jobs descriptions); a failure goes back to the
 * queue when the retry policy says so.
 * A job found 'running' at start-up belonged to a dead process: the queue's recover() fails it.
 */
export class JobRunner {
  private readonly running = new Map<number, Running>();
  private readonly kinds: ReadonlyMap<JobKind, JobKindHandler>;
  private timer: NodeJS.Timeout | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private ticking = false;

  constructor(private readonly deps: JobRunnerDeps) {
    this.kinds = new Map(deps.kinds.map((k) => [k.kind, k]));
    deps.queue.on('enqueued', () => this.kick());
  }

  start(): void {
    this.heartbeat(true);
    this.timer = setInterval(() => this.kick(), 500);
    this.timer.unref();
    // leases: renew this process's, take back those of dead processes (ADR 0015)
    this.leaseTimer = setInterval(() => this.leases(), Math.max(200, Math.floor(this.deps.queue.leaseMs / 3)));
    this.leaseTimer.unref();
    this.kick();
  }

  /** the server's own proxy in the proxies table (registered at start, then a heartbeat with each lease renewal) */
  private heartbeat(register = false): void {
    if (!this.deps.localProxy) return;
    const { catalog, queue, limits } = this.deps;
    const now = new Date().toISOString();
    // registered again if another replica forgot it (this process was cut off from the catalog for a long time)
    if (register || !catalog.proxies.get(queue.owner)) {
      catalog.proxies.upsert({
        owner: queue.owner,
        name: `local:${queue.owner}`,
        local: true,
        version: TOOL_VERSION,
        tokenId: null,
        instance: null,
        capabilities: LOCAL_CAPABILITIES,
        concurrency: limits.total,
        registeredAt: now,
        lastHeartbeat: now,
      });
      // the own proxies of server processes gone for ten minutes are forgotten
      catalog.proxies.forgetStaleLocal(new Date(Date.now() - 600_000).toISOString());
    } else catalog.proxies.heartbeat(queue.owner, now);
  }

  private leases(): void {
    const { queue, logger } = this.deps;
    try {
      this.heartbeat();
      for (const id of queue.renewLeases([...this.running.keys()])) {
        const r = this.running.get(id);
        if (!r || r.lost) continue;
        r.lost = true;
        logger.warn(`job ${id}: lease lost (taken back by another process): stopping it`);
        r.controller.abort(new CofferError('CANCELLED', 'lease lost'));
      }
      const { failed } = queue.reclaimExpired();
      for (const job of failed) this.deps.onFinished(job);
    } catch (e) {
      logger.warn(`job leases: ${asCofferError(e).message}`);
    }
  }

  cancel(id: number, by: string): Job {
    const { queue } = this.deps;
    const job = queue.get(id);
    if (!job) throw new CofferError('NOT_FOUND', `no job ${id}`);
    if (job.status === 'queued') {
      this.finish(id, 'cancelled', { code: 'CANCELLED', message: `cancelled by ${by}` }, null);
    } else if (job.status === 'running') {
      const r = this.running.get(id);
      if (r) {
        r.cancelled = true;
        queue.log(id, 'warn', `cancel requested by ${by}`);
        r.controller.abort(new CofferError('CANCELLED', `cancelled by ${by}`));
      } else {
        // run by a remote proxy (or another replica): it finds its lease gone at its next renewal and stops
        queue.log(id, 'warn', `cancel requested by ${by} (running on ${job.runner})`);
        this.finish(id, 'cancelled', { code: 'CANCELLED', message: `cancelled by ${by}` }, null);
      }
    } else {
      throw new CofferError('CONFLICT', `job ${id} already ${job.status}`);
    }
    return queue.get(id)!;
  }

  /** Stops starting jobs and aborts the running ones; they end as failed ("interrupted by server shutdown"). */
  async shutdown(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    for (const r of this.running.values())
      r.controller.abort(new CofferError('CANCELLED', 'interrupted by server shutdown'));
    await Promise.race([
      Promise.allSettled([...this.running.values()].map((r) => r.done)),
      new Promise((r) => setTimeout(r, 10_000).unref()),
    ]);
  }

  kick(): void {
    if (this.stopping || this.ticking) return;
    this.ticking = true;
    try {
      this.tick();
    } catch (e) {
      this.deps.logger.warn(`job queue: ${asCofferError(e).message}`);
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Starts the due jobs placement gives this server (limits, capabilities, load: placer.ts); without a local proxy it
   * only records why jobs wait.
   */
  private tick(): void {
    const { queue, limits, placer, localProxy } = this.deps;
    const free = localProxy ? Math.max(0, limits.total - this.running.size) : 0;
    for (const job of placer.claim(queue.owner, free, (j) => queue.claim(j))) this.run(job);
  }

  /** runs a job claimed by this server (tick) */
  private run(job: Job): void {
    const { queue, retry } = this.deps;
    const attempt = job.attempt + 1;
    const entry: Running = {
      controller: new AbortController(),
      cancelled: false,
      lost: false,
      done: Promise.resolve(),
    };
    entry.done = this.execute({ ...job, attempt }, entry.controller.signal)
      .then(
        (result) => {
          if (entry.lost) return;
          queue.log(job.id, 'info', 'succeeded');
          this.finish(job.id, 'succeeded', null, result);
        },
        (e) => {
          if (entry.lost) return;
          const err = asCofferError(e);
          const message = this.stopping && !entry.cancelled ? 'interrupted by server shutdown' : err.message;
          queue.log(job.id, 'error', `failed: [${err.code}] ${message}`);
          if (entry.cancelled) return this.finish(job.id, 'cancelled', { code: 'CANCELLED', message }, null);
          if (!this.stopping && retry.shouldRetry(err.code, attempt, job.maxAttempts, message)) {
            const delayMs = retry.delayMs(attempt);
            queue.requeue(job.id, delayMs, { code: err.code, message });
            setTimeout(() => this.kick(), delayMs + 5).unref();
            return;
          }
          this.finish(job.id, 'failed', { code: err.code, message }, null);
        },
      )
      .finally(() => {
        this.running.delete(job.id);
        this.kick();
      });
    this.running.set(job.id, entry);
  }

  private finish(
    id: number,
    status: JobStatus,
    error: { code: string; message: string } | null,
    result: unknown,
  ): void {
    const job = this.deps.queue.finish(id, status, error, result);
    if (!job) return;
    try {
      this.deps.onFinished(job);
    } catch (e) {
      this.deps.logger.warn(`job ${id}: ${asCofferError(e).message}`);
    }
  }

  /** One attempt: the handler of the job's kind, executed here. */
  private async execute(job: Job, signal: AbortSignal): Promise<unknown> {
    const handler = this.kinds.get(job.kind);
    if (!handler) throw new CofferError('USAGE', `job ${job.id}: unknown job kind ${JSON.stringify(job.kind)}`);
    return runHere(handler, this.context(job, signal));
  }

  private context(job: Job, signal: AbortSignal): JobContext {
    return jobContext(this.deps, job, signal);
  }
}
