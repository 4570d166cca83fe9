import type { Db } from './db.js';

export type JobKind = 'backup' | 'restore' | 'verify' | 'prune';
export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];

export interface BackupParams {
  disks: string[];
  tags: string[];
  /**
   * a VM of this configured vCenter: `disks` is its one vsphere://HOST:PORT/MOREF (none: the vCenter was unreadable)
   */
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

export interface JobError {
  code: string;
  message: string;
}

export interface JobProgress {
  bytesDone: number;
  bytesTotal: number;
  phase?: string;
}

/** A job as the catalog keeps it and the API shows it (docs/DESIGN.md §Job model). */
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
  error: JobError | null;
  result: unknown;
  progress: JobProgress | null;
}

export interface NewJobRecord {
  kind: JobKind;
  trigger: Job['trigger'];
  policyId: string | null;
  vm: string | null;
  repository: string;
  params: Job['params'];
  maxAttempts: number;
  /** also notBefore and createdAt */
  now: string;
  requestedBy: string;
}

export interface JobFilter {
  status?: JobStatus;
  kind?: JobKind;
  vm?: string;
  beforeId?: number;
  limit: number;
}

/**
 * The job queue's rows: enqueue, the due jobs, claim (queued -> running), retry (running -> queued later) and
 * finish; plus the read-only figures the dashboard, the metrics and the VM status need.
 */
export interface JobsTable {
  insert(j: NewJobRecord): number;
  get(id: number): Job | undefined;
  /** newest first */
  list(f: JobFilter): Job[];
  /** queued jobs whose notBefore has passed, oldest first */
  due(now: string, limit: number): Job[];
  /** ids of the jobs marked running */
  runningIds(): number[];
  /** a queued or running job of this kind for this VM or repository */
  hasPending(kind: JobKind, on: { vm: string } | { repository: string }): boolean;
  /** queued -> running with this attempt number; false when the job was not queued (someone else took it) */
  claim(id: number, attempt: number, now: string): boolean;
  /** running -> queued again, not before `notBefore`, keeping the failure */
  retry(id: number, notBefore: string, error: JobError): void;
  finish(id: number, status: JobStatus, error: JobError | null, result: unknown, now: string): void;
  setProgress(id: number, p: JobProgress): void;
  /** the newest finished backup of a VM */
  lastFinishedBackup(
    vm: string,
  ): { id: number; status: string; finishedAt: string | null; error: JobError | null } | undefined;
  countByStatus(): { status: string; n: number }[];
  countByKindAndStatus(): { kind: string; status: string; n: number }[];
  /** failed jobs per day (YYYY-MM-DD of finished_at) since `sinceDay` */
  failuresByDay(sinceDay: string): { day: string; failed: number }[];
  /** count and total seconds of succeeded jobs per kind */
  succeededDurations(): { kind: string; n: number; s: number }[];
}

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

function fromRow(r: Row): Job {
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

export class SqliteJobs implements JobsTable {
  constructor(private readonly db: Db) {}

  insert(j: NewJobRecord): number {
    const r = this.db
      .prepare(
        'INSERT INTO jobs(kind, status, trigger, policy_id, vm, repository, params, attempt, max_attempts, ' +
          `not_before, created_at, requested_by)
         VALUES (?, 'queued', ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)`,
      )
      .run(
        j.kind,
        j.trigger,
        j.policyId,
        j.vm,
        j.repository,
        JSON.stringify(j.params),
        j.maxAttempts,
        j.now,
        j.now,
        j.requestedBy,
      );
    return Number(r.lastInsertRowid);
  }

  get(id: number): Job | undefined {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  list(f: JobFilter): Job[] {
    const where: string[] = [];
    const args: unknown[] = [];
    for (const k of ['status', 'kind', 'vm'] as const) if (f[k]) where.push(`${k} = ?`) && args.push(f[k]);
    if (f.beforeId !== undefined) where.push('id < ?') && args.push(f.beforeId);
    const rows = this.db
      .prepare(`SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`)
      .all(...args, f.limit) as Row[];
    return rows.map(fromRow);
  }

  due(now: string, limit: number): Job[] {
    return (
      this.db
        .prepare("SELECT * FROM jobs WHERE status = 'queued' AND not_before <= ? ORDER BY id LIMIT ?")
        .all(now, limit) as Row[]
    ).map(fromRow);
  }

  runningIds(): number[] {
    return (this.db.prepare("SELECT id FROM jobs WHERE status = 'running'").all() as { id: number }[]).map((r) => r.id);
  }

  hasPending(kind: JobKind, on: { vm: string } | { repository: string }): boolean {
    const [col, value] = 'vm' in on ? ['vm', on.vm] : ['repository', on.repository];
    return (
      this.db
        .prepare(`SELECT 1 FROM jobs WHERE kind = ? AND ${col} = ? AND status IN ('queued', 'running') LIMIT 1`)
        .get(kind, value) !== undefined
    );
  }

  claim(id: number, attempt: number, now: string): boolean {
    return (
      this.db
        .prepare(
          "UPDATE jobs SET status = 'running', started_at = ?, attempt = ?, progress = NULL " +
            "WHERE id = ? AND status = 'queued'",
        )
        .run(now, attempt, id).changes > 0
    );
  }

  retry(id: number, notBefore: string, error: JobError): void {
    this.db
      .prepare("UPDATE jobs SET status = 'queued', not_before = ?, error = ? WHERE id = ?")
      .run(notBefore, JSON.stringify(error), id);
  }

  finish(id: number, status: JobStatus, error: JobError | null, result: unknown, now: string): void {
    this.db
      .prepare('UPDATE jobs SET status = ?, finished_at = ?, error = ?, result = ? WHERE id = ?')
      .run(
        status,
        now,
        error ? JSON.stringify(error) : null,
        result === null || result === undefined ? null : JSON.stringify(result),
        id,
      );
  }

  setProgress(id: number, p: JobProgress): void {
    this.db.prepare('UPDATE jobs SET progress = ? WHERE id = ?').run(JSON.stringify(p), id);
  }

  lastFinishedBackup(
    vm: string,
  ): { id: number; status: string; finishedAt: string | null; error: JobError | null } | undefined {
    const r = this.db
      .prepare(
        "SELECT id, status, finished_at, error FROM jobs WHERE vm = ? AND kind = 'backup' AND status IN " +
          "('succeeded', 'failed', 'cancelled') ORDER BY id DESC LIMIT 1",
      )
      .get(vm) as { id: number; status: string; finished_at: string | null; error: string | null } | undefined;
    return r
      ? { id: r.id, status: r.status, finishedAt: r.finished_at, error: r.error ? JSON.parse(r.error) : null }
      : undefined;
  }

  countByStatus(): { status: string; n: number }[] {
    return this.db.prepare('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status').all() as never;
  }

  countByKindAndStatus(): { kind: string; status: string; n: number }[] {
    return this.db.prepare('SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status').all() as never;
  }

  failuresByDay(sinceDay: string): { day: string; failed: number }[] {
    return this.db
      .prepare(
        "SELECT substr(finished_at, 1, 10) AS day, COUNT(*) AS failed FROM jobs WHERE status = 'failed' AND " +
          'substr(finished_at, 1, 10) >= ? GROUP BY day',
      )
      .all(sinceDay) as never;
  }

  succeededDurations(): { kind: string; n: number; s: number }[] {
    return this.db
      .prepare(
        'SELECT kind, COUNT(*) AS n, SUM((julianday(finished_at) - julianday(started_at)) * 86400.0) AS s ' +
          "FROM jobs WHERE status = 'succeeded' AND started_at IS NOT NULL GROUP BY kind",
      )
      .all() as never;
  }
}
