import { EventEmitter } from 'node:events';
import { lstat, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { backup, prune, restoreDisk, verify, type PruneReport } from '../engine/index.js';
import { CofferError, asCofferError, type ErrorCode, type Logger } from '../shared/index.js';
import type { BlockSource } from '../sources/index.js';
import type { Db } from './catalog.js';
import type { ServerConfig } from './config.js';
import type { ServerDeps } from './deps.js';
import type { RepositoryManager } from './repositories.js';
import { applyPolicyRetention, retentionLogLines, type PolicyRetention } from './retention.js';
import { openVcenterVm } from './vcenters.js';

export type JobKind = 'backup' | 'restore' | 'verify' | 'prune';
export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface BackupParams {
  disks: string[];
  tags: string[];
  /** a VM of this configured vCenter: `disks` is its one vsphere://HOST:PORT/MOREF (none: the vCenter was unreadable) */
  vcenter?: string;
}
export interface RestoreParams {
  pointId: string;
  disk: number;
  /** absolute path inside one of the configured restore directories */
  target: string;
  force: boolean;
}
export interface VerifyParams {
  readDataPercent: number;
}
/** prune (garbage collection) has no parameters: it works on the whole repository */
export type PruneParams = Record<string, never>;

export interface Job {
  id: number;
  kind: JobKind;
  status: JobStatus;
  trigger: 'manual' | 'schedule';
  policyId: string | null;
  vm: string | null;
  repository: string;
  params: BackupParams | RestoreParams | VerifyParams | PruneParams;
  attempt: number;
  maxAttempts: number;
  notBefore: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  requestedBy: string;
  error: { code: string; message: string } | null;
  result: unknown;
  progress: { bytesDone: number; bytesTotal: number; phase?: string } | null;
}

export interface JobEvent {
  type: 'log' | 'progress' | 'status';
  job: number;
  data: unknown;
}

export interface NewJob {
  kind: JobKind;
  repository: string;
  vm?: string | null;
  policyId?: string | null;
  params: Job['params'];
  trigger?: Job['trigger'];
  requestedBy: string;
}

/** Failures worth another attempt (after backoff); the others will fail the same way again. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set(['TRANSIENT', 'IO', 'LOCKED', 'SOURCE_UNREADABLE', 'PARTIAL']);

export const INTERRUPTED_BY_RESTART = 'interrupted by server restart';

interface Row {
  id: number;
  kind: string;
  status: string;
  trigger: string;
  policy_id: string | null;
  vm: string | null;
  repository: string;
  params: string;
  attempt: number;
  max_attempts: number;
  not_before: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  requested_by: string;
  error: string | null;
  result: string | null;
  progress: string | null;
}

export function jobFromRow(r: Row): Job {
  return {
    id: r.id,
    kind: r.kind as JobKind,
    status: r.status as JobStatus,
    trigger: r.trigger as Job['trigger'],
    policyId: r.policy_id,
    vm: r.vm,
    repository: r.repository,
    params: JSON.parse(r.params),
    attempt: r.attempt,
    maxAttempts: r.max_attempts,
    notBefore: r.not_before,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    requestedBy: r.requested_by,
    error: r.error ? JSON.parse(r.error) : null,
    result: r.result ? JSON.parse(r.result) : null,
    progress: r.progress ? JSON.parse(r.progress) : null,
  };
}

/** A restore target must resolve inside one of the configured restore directories (no writing anywhere else). */
export function checkRestoreTarget(target: string, dirs: readonly string[]): string {
  const abs = isAbsolute(target) ? resolve(target) : resolve(dirs[0]!, target);
  for (const d of dirs) if (inside(d, abs)) return abs;
  throw new CofferError('USAGE', `target: ${JSON.stringify(target)} is outside the restore directories (${dirs.join(', ')})`);
}

const inside = (dir: string, p: string) => {
  const rel = relative(dir, p);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
};

/**
 * Checked again when a restore job starts, on the real file system: the target's directory, with symlinks resolved,
 * is inside a restore directory, and an existing target is a regular file (never a device or a symlink out).
 */
export async function confineRestoreTarget(target: string, dirs: readonly string[]): Promise<void> {
  const parent = await realpath(dirname(target)).catch(() => {
    throw new CofferError('TARGET_UNWRITABLE', `the directory of restore target ${target} does not exist`);
  });
  const real = await Promise.all(dirs.map((d) => realpath(d).catch(() => d)));
  if (!real.some((d) => d === parent || inside(d, parent))) throw new CofferError('TARGET_UNWRITABLE', `restore target ${target} resolves outside the restore directories`);
  const st = await lstat(target).catch(() => undefined);
  if (st && !st.isFile()) throw new CofferError('TARGET_UNWRITABLE', `restore target ${target} exists and is not a regular file`);
}

/**
 * The job queue (docs/DESIGN.md §Server, ADR 0007): jobs are rows in the catalog; the runner starts queued jobs
 * in id order within the limits (total, per repository, per source VM), runs the engine in-process with an
 * AbortController per job, retries retryable failures with exponential backoff, and writes logs and progress to
 * the catalog. A job found 'running' at start-up belonged to a dead process: it is failed, nothing else changes.
 */
export class JobRunner extends EventEmitter {
  private readonly running = new Map<number, { controller: AbortController; done: Promise<void>; cancelled: boolean }>();
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private ticking = false;
  onFinished: (job: Job) => void = () => undefined;
  /** the retention of a job's policy (set by the server; policies live in the catalog) */
  retentionOf: (policyId: string) => { name: string; retention: PolicyRetention; pruneAfterForget: boolean } | undefined = () => undefined;

  constructor(
    private readonly db: Db,
    private readonly config: ServerConfig,
    private readonly repos: RepositoryManager,
    private readonly deps: ServerDeps,
    private readonly logger: Logger,
  ) {
    super();
    this.setMaxListeners(0);
  }

  /** Fails the jobs a previous process left running; returns how many. */
  recover(): number {
    const rows = this.db.prepare("SELECT id FROM jobs WHERE status = 'running'").all() as { id: number }[];
    for (const { id } of rows) {
      this.log(id, 'error', INTERRUPTED_BY_RESTART);
      this.db
        .prepare("UPDATE jobs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?")
        .run(new Date().toISOString(), JSON.stringify({ code: 'CANCELLED', message: INTERRUPTED_BY_RESTART }), id);
    }
    return rows.length;
  }

  start(): void {
    this.timer = setInterval(() => this.kick(), 500);
    this.timer.unref();
    this.kick();
  }

  enqueue(j: NewJob): Job {
    const now = new Date().toISOString();
    const r = this.db
      .prepare(
        `INSERT INTO jobs(kind, status, trigger, policy_id, vm, repository, params, attempt, max_attempts, not_before, created_at, requested_by)
         VALUES (?, 'queued', ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)`,
      )
      .run(j.kind, j.trigger ?? 'manual', j.policyId ?? null, j.vm ?? null, j.repository, JSON.stringify(j.params), j.kind === 'restore' ? 1 : this.config.retries.maxAttempts, now, now, j.requestedBy);
    const id = Number(r.lastInsertRowid);
    this.log(id, 'info', `queued by ${j.requestedBy} (${j.trigger ?? 'manual'})`);
    this.kick();
    return this.get(id)!;
  }

  get(id: number): Job | undefined {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
    return r ? jobFromRow(r) : undefined;
  }

  /** A queued or running backup of this VM exists (a schedule does not pile up runs behind a slow one). */
  hasPendingBackup(vm: string): boolean {
    return this.db.prepare("SELECT 1 FROM jobs WHERE kind = 'backup' AND vm = ? AND status IN ('queued', 'running') LIMIT 1").get(vm) !== undefined;
  }

  /** A queued or running prune of this repository exists (one prune at a time per repository). */
  hasPendingPrune(repository: string): boolean {
    return this.db.prepare("SELECT 1 FROM jobs WHERE kind = 'prune' AND repository = ? AND status IN ('queued', 'running') LIMIT 1").get(repository) !== undefined;
  }

  cancel(id: number, by: string): Job {
    const job = this.get(id);
    if (!job) throw new CofferError('NOT_FOUND', `no job ${id}`);
    if (job.status === 'queued') {
      this.finish(id, 'cancelled', { code: 'CANCELLED', message: `cancelled by ${by}` }, null);
    } else if (job.status === 'running') {
      const r = this.running.get(id);
      if (r) {
        r.cancelled = true;
        this.log(id, 'warn', `cancel requested by ${by}`);
        r.controller.abort(new CofferError('CANCELLED', `cancelled by ${by}`));
      }
    } else {
      throw new CofferError('CONFLICT', `job ${id} already ${job.status}`);
    }
    return this.get(id)!;
  }

  logs(id: number, afterSeq = 0): { seq: number; time: string; level: string; message: string }[] {
    return this.db.prepare('SELECT seq, time, level, message FROM job_logs WHERE job_id = ? AND seq > ? ORDER BY seq').all(id, afterSeq) as never;
  }

  /** Stops starting jobs and aborts the running ones; they end as failed ("interrupted by server shutdown"). */
  async shutdown(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    for (const r of this.running.values()) r.controller.abort(new CofferError('CANCELLED', 'interrupted by server shutdown'));
    await Promise.race([Promise.allSettled([...this.running.values()].map((r) => r.done)), new Promise((r) => setTimeout(r, 10_000).unref())]);
  }

  private log(id: number, level: 'info' | 'warn' | 'error', message: string): void {
    const time = new Date().toISOString();
    const seq = ((this.db.prepare('SELECT MAX(seq) AS m FROM job_logs WHERE job_id = ?').get(id) as { m: number | null }).m ?? 0) + 1;
    this.db.prepare('INSERT INTO job_logs(job_id, seq, time, level, message) VALUES (?, ?, ?, ?, ?)').run(id, seq, time, level, message);
    this.emit('event', { type: 'log', job: id, data: { seq, time, level, message } } satisfies JobEvent);
  }

  kick(): void {
    if (this.stopping || this.ticking) return;
    this.ticking = true;
    try {
      this.tick();
    } catch (e) {
      this.logger.warn(`job queue: ${asCofferError(e).message}`);
    } finally {
      this.ticking = false;
    }
  }

  private tick(): void {
    const now = new Date().toISOString();
    const queued = (this.db.prepare("SELECT * FROM jobs WHERE status = 'queued' AND not_before <= ? ORDER BY id LIMIT 200").all(now) as Row[]).map(jobFromRow);
    for (const job of queued) {
      const active = [...this.running.keys()].map((id) => this.get(id)!).filter(Boolean);
      if (active.length >= this.config.limits.total) return;
      const repoLimit = this.repoLimit(job.repository);
      if (active.filter((a) => a.repository === job.repository).length >= repoLimit) continue;
      if (job.vm && active.filter((a) => a.vm === job.vm).length >= this.config.limits.perSource) continue;
      // one prune at a time per repository: a second one waits in the queue (the engine's gc lease would refuse it)
      if (job.kind === 'prune' && active.some((a) => a.kind === 'prune' && a.repository === job.repository)) continue;
      this.run(job);
    }
  }

  private repoLimit(name: string): number {
    try {
      return this.repos.config(name).maxConcurrentJobs ?? this.config.limits.perRepository;
    } catch {
      return this.config.limits.perRepository;
    }
  }

  private run(job: Job): void {
    const attempt = job.attempt + 1;
    this.db.prepare("UPDATE jobs SET status = 'running', started_at = ?, attempt = ?, progress = NULL WHERE id = ?").run(new Date().toISOString(), attempt, job.id);
    this.emit('event', { type: 'status', job: job.id, data: { status: 'running', attempt } } satisfies JobEvent);
    this.log(job.id, 'info', `started (attempt ${attempt} of ${job.maxAttempts})`);
    const controller = new AbortController();
    const entry = { controller, cancelled: false, done: Promise.resolve() };
    entry.done = this.execute({ ...job, attempt }, controller.signal).then(
      (result) => {
        this.log(job.id, 'info', 'succeeded');
        this.finish(job.id, 'succeeded', null, result);
      },
      (e) => {
        const err = asCofferError(e);
        const message = this.stopping && !entry.cancelled ? 'interrupted by server shutdown' : err.message;
        this.log(job.id, 'error', `failed: [${err.code}] ${message}`);
        if (entry.cancelled) return this.finish(job.id, 'cancelled', { code: 'CANCELLED', message }, null);
        if (!this.stopping && RETRYABLE.has(err.code) && attempt < job.maxAttempts) {
          const delayMs = this.config.retries.backoffSeconds * 1000 * 2 ** (attempt - 1);
          this.log(job.id, 'warn', `retrying in ${Math.round(delayMs / 1000)} s`);
          this.db.prepare("UPDATE jobs SET status = 'queued', not_before = ?, error = ? WHERE id = ?").run(new Date(Date.now() + delayMs).toISOString(), JSON.stringify({ code: err.code, message }), job.id);
          this.emit('event', { type: 'status', job: job.id, data: { status: 'queued' } } satisfies JobEvent);
          setTimeout(() => this.kick(), delayMs + 5).unref();
          return;
        }
        this.finish(job.id, 'failed', { code: err.code, message }, null);
      },
    ).finally(() => {
      this.running.delete(job.id);
      this.kick();
    });
    this.running.set(job.id, entry);
  }

  private finish(id: number, status: JobStatus, error: { code: string; message: string } | null, result: unknown): void {
    this.db.prepare('UPDATE jobs SET status = ?, finished_at = ?, error = ?, result = ? WHERE id = ?').run(status, new Date().toISOString(), error ? JSON.stringify(error) : null, result === null ? null : JSON.stringify(result), id);
    this.emit('event', { type: 'status', job: id, data: { status, error } } satisfies JobEvent);
    const job = this.get(id);
    if (job) {
      try {
        this.onFinished(job);
      } catch (e) {
        this.logger.warn(`job ${id}: ${asCofferError(e).message}`);
      }
    }
  }

  private progress(id: number, p: Job['progress']): void {
    this.db.prepare('UPDATE jobs SET progress = ? WHERE id = ?').run(JSON.stringify(p), id);
    this.emit('event', { type: 'progress', job: id, data: p } satisfies JobEvent);
  }

  private async execute(job: Job, signal: AbortSignal): Promise<unknown> {
    const log = (level: 'info' | 'warn' | 'error') => (msg: string) => this.log(job.id, level, msg);
    const logger: Logger = { info: log('info'), warn: log('warn'), debug: () => undefined };
    let lastProgress = 0;
    const onProgress = (done: number, total: number, phase?: string) => {
      const now = Date.now();
      if (now - lastProgress < 250 && done < total) return;
      lastProgress = now;
      this.progress(job.id, { bytesDone: done, bytesTotal: total, ...(phase ? { phase } : {}) });
    };
    const repo = await this.repos.get(job.repository);
    signal.throwIfAborted();
    const pool = this.deps.createPool(repo.codecParams);
    try {
      if (job.kind === 'backup') {
        const p = job.params as BackupParams;
        const sources: BlockSource[] = [];
        // a vCenter VM: the same snapshot/CBT/configuration path as `coffer backup vsphere://` (snapshot removed in finally)
        const vmb = p.vcenter ? await openVcenterVm(this.config, this.deps.env, p.vcenter, p.disks[0], { logger, signal }) : undefined;
        try {
          if (vmb) sources.push(...vmb.disks);
          else for (const spec of p.disks) sources.push(await this.deps.openSource(spec, { logger, signal }));
          const total = sources.reduce((a, s) => a + s.sizeBytes, 0);
          const done = sources.map(() => 0);
          logger.info(`backing up ${sources.length} disk(s) of VM ${job.vm}, ${total} bytes`);
          const result = await backup(repo, pool, {
            vm: job.vm!,
            sources,
            tags: p.tags,
            ...(vmb ? { vmId: vmb.vmId, consistency: vmb.consistency, vmConfig: vmb.vmConfig as unknown as Record<string, unknown> } : {}),
            signal,
            onWarning: logger.warn,
            onProgress: (x) => {
              done[x.disk] = x.bytesDone;
              onProgress(done.reduce((a, b) => a + b, 0), total);
            },
          });
          logger.info(`restore point ${result.id} (${result.mode}): read ${result.bytesRead} bytes, stored ${result.bytesStored} in ${result.chunksNew} new chunks`);
          // the vCenter snapshot goes as soon as the data is read (not after retention and the catalog refresh)
          const vsphere = vmb ? { ...vmb.report(), ...(await vmb.close()) } : undefined;
          if (vsphere && !vsphere.snapshotRemoved) logger.warn(`vSphere: snapshot ${vsphere.snapshot} of VM ${vsphere.vm} was NOT removed`);
          const pol = job.policyId ? this.retentionOf(job.policyId) : undefined;
          if (pol) {
            // the backup is committed: a failure to apply retention is reported in the log and the result, it does
            // not fail (and retry) the backup
            try {
              const r = await applyPolicyRetention(repo, { vm: job.vm!, retention: pol.retention, signal, onWarning: logger.warn });
              for (const line of retentionLogLines(r)) logger.info(line);
              Object.assign(result, { retention: { kept: r.kept, removed: r.removed, unreadable: r.unreadable } });
              if (r.removed.length > 0 && pol.pruneAfterForget) {
                if (this.hasPendingPrune(job.repository)) logger.info(`prune of ${job.repository} already queued or running`);
                else {
                  const pj = this.enqueue({ kind: 'prune', repository: job.repository, policyId: job.policyId, params: {}, trigger: job.trigger, requestedBy: `policy:${pol.name}` });
                  logger.info(`queued prune job ${pj.id} (pruneAfterForget)`);
                }
              }
            } catch (e) {
              const err = asCofferError(e);
              if (err.code === 'CANCELLED') throw err;
              logger.warn(`retention failed: [${err.code}] ${err.message}`);
              Object.assign(result, { retention: { error: { code: err.code, message: err.message } } });
            }
          }
          await this.afterSync(job, logger);
          return vsphere ? { ...result, vsphere } : result;
        } finally {
          if (vmb) await vmb.close();
          else await Promise.allSettled(sources.map((s) => s.close()));
        }
      }
      if (job.kind === 'restore') {
        const p = job.params as RestoreParams;
        await confineRestoreTarget(p.target, this.config.restoreDirs!);
        const result = await restoreDisk(repo, pool, {
          pointId: p.pointId,
          disk: p.disk,
          target: { kind: 'path', path: p.target, force: p.force },
          signal,
          sync: true,
          onProgress: (x) => onProgress(x.bytesDone, x.bytesTotal),
        });
        logger.info(`restored disk ${result.disk} of ${result.id} to ${result.target} (${result.bytesWritten} bytes)`);
        return result;
      }
      if (job.kind === 'prune') {
        let report: PruneReport;
        try {
          report = await prune(repo, { signal, onWarning: logger.warn, onProgress: (x) => this.progress(job.id, { bytesDone: x.done, bytesTotal: 0, phase: x.phase }) });
        } catch (e) {
          const err = asCofferError(e);
          // another prune (the CLI, another server) holds the repository's gc lease: skipped, not failed or retried
          if (err.code === 'LOCKED' && (err.details as { scope?: string } | undefined)?.scope === 'gc') {
            logger.warn(`prune skipped: ${err.message}`);
            return { skipped: true, reason: err.message };
          }
          throw err;
        }
        logger.info(
          `prune: ${report.points} restore points, ${report.chunksReferenced} chunks referenced; deleted ${report.chunksDeleted} chunks (${report.bytesDeleted} bytes) and ${report.indexesDeleted} indexes` +
            (report.deferred.length ? `; deferred ${report.deferred.length} condemned generation(s): ${report.deferredReason}` : '') +
            (report.locked ? `; ${report.locked} kept: locked` : ''),
        );
        await this.afterSync(job, logger);
        return report;
      }
      const p = job.params as VerifyParams;
      const report = await verify(repo, pool, { readDataFraction: p.readDataPercent / 100, record: true, signal, onProgress: (x) => x.total > 0 && onProgress(x.done, x.total, x.phase) });
      for (const pr of report.problems.slice(0, 50)) logger.warn(`${pr.kind}: ${pr.message}`);
      await this.afterSync(job, logger);
      if (!report.ok) throw new CofferError('CORRUPT', `verify found ${report.problems.length} problem(s)`);
      logger.info(`verified ${report.points} restore points, ${report.chunksReferenced} chunks referenced, ${report.chunksRead} read`);
      return report;
    } finally {
      await pool.close();
    }
  }

  private async afterSync(job: Job, logger: Logger): Promise<void> {
    await this.repos.sync(job.repository).catch((e) => logger.warn(`catalog refresh of ${job.repository} failed: ${asCofferError(e).message}`));
  }
}
