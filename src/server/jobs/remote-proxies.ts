import { TOOL_VERSION } from '../../engine/index.js';
import type { JobInput } from '../../jobs/index.js';
import { CofferError, ERROR_CODES, asCofferError, type ErrorCode, type Logger } from '../../shared/index.js';
import type { Catalog, ProxyCapabilities, ProxyRecord } from '../catalog/index.js';
import { jobContext, type JobContextDeps } from './job-context.js';
import type { Placer } from './placer.js';
import type { JobQueue } from './queue.js';
import type { RetryPolicy } from './retry-policy.js';
import type { BackupParams, ExecProgress, Job, JobKind, JobKindHandler } from './types.js';

/** A job handed to a remote proxy: the description and, for this job only, what it needs to reach its systems. */
export interface ProxyAssignment {
  id: number;
  attempt: number;
  description: JobInput;
  /** the repository named by the description: where it is and its password */
  repository: { name: string; location: string; password: string };
  /** the vCenter of a vSphere backup: URL, credentials, TLS policy */
  vcenter?: { name: string; url: string; user: string; password: string; thumbprint?: string; insecureTls: boolean };
}

export type ProxyEvent =
  | { type: 'log'; level: 'info' | 'warn'; message: string }
  | { type: 'progress'; unit: 'bytes' | 'items'; done: number; total: number; phase?: string | undefined };

export type ProxyOutcome = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } };

export interface RemoteProxiesDeps extends JobContextDeps {
  catalog: Pick<Catalog, 'jobs' | 'proxies'>;
  queue: JobQueue;
  retry: RetryPolicy;
  placer: Pick<Placer, 'claim'>;
  kinds: readonly JobKindHandler[];
  /** the repository's location and password (the server's configuration and environment) */
  repositoryAccess(name: string): Promise<{ location: string; password: string }>;
  vcenterAccess(name: string): NonNullable<ProxyAssignment['vcenter']>;
  onFinished(job: Job): void;
  logger: Logger;
}

/** a code a proxy reported, if it is one of ours (INTERNAL otherwise) */
const codeOf = (c: string): ErrorCode => (Object.hasOwn(ERROR_CODES, c) ? (c as ErrorCode) : 'INTERNAL');

export const proxyOwner = (name: string) => `proxy:${name}`;

/**
 * The server's side of remote `coffer proxy` processes (docs/DESIGN.md §Proxies and placement): registration
 * (same Coffer version only), heartbeats (which renew the leases of their jobs), claims through placement and the
 * queue's claim (the same leases as the server's own runner: a lost proxy's jobs are requeued once, then failed),
 * log lines and progress, and the outcome, after which the server does its part of the job kind (retention, catalog
 * refresh) and the retry decision. Stateless between requests: any server replica answers any of them.
 */
export class RemoteProxies {
  private readonly kinds: ReadonlyMap<JobKind, JobKindHandler>;

  constructor(private readonly deps: RemoteProxiesDeps) {
    this.kinds = new Map(deps.kinds.map((k) => [k.kind, k]));
  }

  get leaseMs(): number {
    return this.deps.queue.leaseMs;
  }

  register(
    tokenId: string,
    p: {
      name: string;
      version: string;
      concurrency: number;
      capabilities: ProxyCapabilities;
      /** the registering process (HOST:PID:RANDOM) */
      instance?: string | undefined;
    },
  ): ProxyRecord {
    if (p.version !== TOOL_VERSION)
      throw new CofferError(
        'PROXY_VERSION',
        `proxy ${p.name} runs Coffer ${p.version}, this server ${TOOL_VERSION}: run the same version on both`,
        { details: { proxyVersion: p.version, serverVersion: TOOL_VERSION } },
      );
    const owner = proxyOwner(p.name);
    const existing = this.deps.catalog.proxies.get(owner);
    const now = new Date().toISOString();
    // two machines with one name (e.g. cloned VMs with the default name, the host name): the second would take the
    // first's jobs and leases over. Refused while the first is online; a replacement for an offline one may take it.
    const silentMs = existing ? Date.now() - Date.parse(existing.lastHeartbeat) : Number.POSITIVE_INFINITY;
    // one token and one name started twice (a second copy of a service, a restart on another machine): the second
    // process would share the first's jobs and leases. Refused while the first is online (CONFLICT: the proxy waits
    // and tries again, so a restart right after a crash registers once the dead process's heartbeat is a lease old).
    if (existing && existing.tokenId === tokenId && silentMs < this.leaseMs) {
      const other = existing.instance;
      if (other && p.instance && other !== p.instance)
        throw new CofferError(
          'CONFLICT',
          `proxy ${p.name} is already running as ${other} (last heartbeat ${Math.round(silentMs / 1000)} s ago): ` +
            `stop that one, or give this one its own --name and token; if it is dead this one registers within ` +
            `${Math.round(this.leaseMs / 1000)} s`,
          { details: { name: p.name, runningAs: other } },
        );
    }
    if (existing && existing.tokenId !== tokenId) {
      if (silentMs < this.leaseMs)
        throw new CofferError(
          'PROXY_REFUSED',
          `proxy name ${p.name} is in use by another online proxy (registered with another token, last heartbeat ` +
            `${Math.round(silentMs / 1000)} s ago): give each proxy its own --name`,
          { details: { name: p.name } },
        );
    }
    this.deps.catalog.proxies.upsert({
      owner,
      name: p.name,
      local: false,
      version: p.version,
      tokenId,
      instance: p.instance ?? null,
      capabilities: p.capabilities,
      concurrency: p.concurrency,
      registeredAt: now,
      lastHeartbeat: now,
    });
    this.deps.logger.info(`proxy ${p.name} registered (version ${p.version}, concurrency ${p.concurrency})`);
    return { ...this.deps.catalog.proxies.get(owner)!, drained: existing?.drained ?? false };
  }

  /** the registered proxy of this name, registered with this token */
  private proxy(tokenId: string, name: string): ProxyRecord {
    const p = this.deps.catalog.proxies.get(proxyOwner(name));
    if (!p || p.tokenId !== tokenId)
      throw new CofferError('PROXY_REFUSED', `proxy ${name} is not registered with this token: register first`);
    return p;
  }

  /** renews the leases of the jobs it runs; `lost`: the ones it no longer holds (cancelled, taken back): stop them */
  heartbeat(tokenId: string, name: string, running: readonly number[]): { drained: boolean; lost: number[] } {
    const p = this.proxy(tokenId, name);
    this.deps.catalog.proxies.heartbeat(p.owner, new Date().toISOString());
    return { drained: p.drained, lost: this.deps.queue.renewLeases(running, p.owner) };
  }

  /** up to `free` jobs placement gives this proxy, each claimed (leased to it) with what it needs to run it */
  async claim(tokenId: string, name: string, free: number): Promise<ProxyAssignment[]> {
    const p = this.proxy(tokenId, name);
    const { catalog, queue } = this.deps;
    catalog.proxies.heartbeat(p.owner, new Date().toISOString());
    const out: ProxyAssignment[] = [];
    for (const job of this.deps.placer.claim(p.owner, free, (j) => queue.claim(j, p.owner, `proxy ${name}`))) {
      const attempt = job.attempt + 1;
      try {
        out.push(await this.assignment({ ...job, attempt, status: 'running', runner: p.owner }));
      } catch (e) {
        // the description could not be made (an unreadable vCenter, a repository password missing): this attempt
        // failed, as it would have on the server's own runner
        await this.settle({ ...job, attempt, status: 'running', runner: p.owner }, p.owner, {
          ok: false,
          error: { code: asCofferError(e).code, message: asCofferError(e).message },
        });
      }
    }
    return out;
  }

  private async assignment(job: Job): Promise<ProxyAssignment> {
    const handler = this.handler(job);
    const ctx = jobContext(this.deps, job, AbortSignal.timeout(120_000));
    const description = await handler.describe(ctx);
    const repo = await this.deps.repositoryAccess(job.repository);
    const vcenter =
      job.kind === 'backup' || job.kind === 'restore-vm' ? (job.params as BackupParams).vcenter : undefined;
    return {
      id: job.id,
      attempt: job.attempt,
      description,
      repository: { name: job.repository, ...repo },
      ...(vcenter ? { vcenter: this.deps.vcenterAccess(vcenter) } : {}),
    };
  }

  private handler(job: Job): JobKindHandler {
    const h = this.kinds.get(job.kind);
    if (!h) throw new CofferError('USAGE', `job ${job.id}: unknown job kind ${JSON.stringify(job.kind)}`);
    return h;
  }

  /** the job, if this proxy holds it in this attempt */
  private held(tokenId: string, name: string, id: number, attempt: number): Job {
    const p = this.proxy(tokenId, name);
    const job = this.deps.queue.get(id);
    if (job?.status !== 'running' || job.runner !== p.owner || job.attempt !== attempt)
      throw new CofferError('CONFLICT', `job ${id} (attempt ${attempt}) is not held by proxy ${name}: stop it`);
    return job;
  }

  /** log lines and progress of a running job */
  events(tokenId: string, name: string, id: number, attempt: number, events: readonly ProxyEvent[]): void {
    const job = this.held(tokenId, name, id, attempt);
    const handler = this.handler(job);
    const ctx = jobContext(this.deps, job, new AbortController().signal);
    let progress: ExecProgress | undefined;
    for (const e of events) {
      if (e.type === 'log') ctx.logger[e.level](e.message);
      else progress = e;
    }
    if (progress) handler.onProgress(ctx, progress);
  }

  /** the outcome of one attempt: the server's part of the kind, then succeeded, retried or failed */
  async finish(tokenId: string, name: string, id: number, attempt: number, outcome: ProxyOutcome): Promise<Job> {
    const job = this.held(tokenId, name, id, attempt);
    return this.settle(job, proxyOwner(name), outcome);
  }

  private async settle(job: Job, owner: string, outcome: ProxyOutcome): Promise<Job> {
    const { queue, retry } = this.deps;
    const ctx = jobContext(this.deps, job, AbortSignal.timeout(600_000));
    const handler = this.handler(job);
    let error: { code: string; message: string };
    if (outcome.ok) {
      try {
        const result = await handler.succeeded(ctx, outcome.result);
        queue.log(job.id, 'info', 'succeeded');
        return this.end(job.id, 'succeeded', null, result);
      } catch (e) {
        error = { code: asCofferError(e).code, message: asCofferError(e).message };
      }
    } else {
      error = outcome.error;
      await handler.failed?.(ctx, new CofferError(codeOf(error.code), error.message)).catch(() => undefined);
    }
    queue.log(job.id, 'error', `failed: [${error.code}] ${error.message}`);
    const current = queue.get(job.id);
    if (current?.status !== 'running' || current.runner !== owner) return current ?? job;
    if (retry.shouldRetry(codeOf(error.code), job.attempt, job.maxAttempts, error.message)) {
      queue.requeue(job.id, retry.delayMs(job.attempt), error);
      return queue.get(job.id)!;
    }
    return this.end(job.id, 'failed', error, null);
  }

  private end(id: number, status: 'succeeded' | 'failed', error: { code: string; message: string } | null, r: unknown) {
    const job = this.deps.queue.finish(id, status, error, r)!;
    try {
      this.deps.onFinished(job);
    } catch (e) {
      this.deps.logger.warn(`job ${id}: ${asCofferError(e).message}`);
    }
    return job;
  }
}
