import type { Db } from './db.js';

export type JobKind = 'backup' | 'restore' | 'restore-vm' | 'verify' | 'prune' | 'check';
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
  /** the image format written (src/jobs restore-disk: raw, qcow2, vmdk streamOptimized, vhdx); absent: raw */
  format?: 'raw' | 'qcow2' | 'vmdk' | 'vhdx';
}
/** A whole VM into a configured vCenter (src/jobs `restore-vm`): a new VM, in place (force), rolled back (quick). */
export interface RestoreVmParams {
  pointId: string;
  vcenter: string;
  /** the new VM's name, or the existing VM's (force) */
  name: string;
  datastore: string;
  datacenter?: string | undefined;
  storagePolicy?: string | undefined;
  folder?: string | undefined;
  pool?: string | undefined;
  host?: string | undefined;
  force: boolean;
  quick: boolean;
  proxyVm?: string | undefined;
  powerOn: boolean;
  networkMap?: Record<string, string> | undefined;
  nicsDisconnected: boolean;
  keepMac: boolean;
  keepUuid: boolean;
  dryRun: boolean;
}
export interface VerifyParams {
  readDataPercent: number;
}
/** a recoverability check (fsck) of one point, or its file-level ransomware indicators (`files`) */
export interface CheckParams {
  pointId: string;
  files?: boolean;
  timeoutMinutes?: number;
  /** also boot the point in QEMU (FORMAT.md §8.1 `boot`) */
  boot?: {
    marker: string;
    timeoutSeconds: number;
    /** success = the guest agent answers */
    agent?: boolean | undefined;
    /** forwarded guest TCP ports */
    forward?: number[] | undefined;
    /** a file name in the server's bootScriptsDir */
    script?: string | undefined;
    scriptTimeoutSeconds?: number | undefined;
  };
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
  params: BackupParams | RestoreParams | RestoreVmParams | VerifyParams | PruneParams | CheckParams;
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
  /** the server process (or proxy) that runs or ran it; null before its first start */
  runner: string | null;
  /** why a queued job is not running yet (no capable proxy online, a limit); null once it runs */
  waitReason: string | null;
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
  /** idempotency key (a scheduled job: policy, VM, scheduled time): a second insert with the same key is skipped */
  runKey?: string;
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
  /** the new job's id; undefined when a job with the same runKey exists */
  insert(j: NewJobRecord): number | undefined;
  get(id: number): Job | undefined;
  /** newest first */
  list(f: JobFilter): Job[];
  /** queued jobs whose notBefore has passed, oldest first */
  due(now: string, limit: number, afterId?: number): Job[];
  /** ids of the jobs marked running */
  runningIds(): number[];
  /** a queued or running job of this kind for this VM or repository */
  hasPending(kind: JobKind, on: { vm: string } | { repository: string }): boolean;
  /**
   * queued -> running with this attempt number, leased to `owner` until `leaseUntil`; false when the job was not
   * queued (someone else took it). On PostgreSQL the row is taken with FOR UPDATE SKIP LOCKED: a replica racing for
   * the same row skips it instead of waiting.
   */
  claim(id: number, attempt: number, now: string, owner: string, leaseUntil: string): boolean;
  /** extends the leases `owner` holds on these running jobs; returns the ids it still holds */
  renewLeases(owner: string, ids: readonly number[], leaseUntil: string): number[];
  /** running jobs whose lease has expired (their process is gone) */
  expiredLeases(now: string): Job[];
  /**
   * takes a job back from a lost process: queued again (`requeue`) or failed; false when someone else already did or
   * the lease was renewed meanwhile
   */
  reclaim(id: number, now: string, requeue: boolean, error: JobError): boolean;
  /** running -> queued again, not before `notBefore`, keeping the failure */
  retry(id: number, notBefore: string, error: JobError): void;
  finish(id: number, status: JobStatus, error: JobError | null, result: unknown, now: string): void;
  setProgress(id: number, p: JobProgress): void;
  /** why a queued job waits (null: it does not); only written when it changes */
  setWaitReason(id: number, reason: string | null): void;
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
  lease_owner: string | null;
  wait_reason?: string | null;
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
    runner: r.lease_owner,
    waitReason: r.wait_reason ?? null,
  };
}

export class SqlJobs implements JobsTable {
  constructor(private readonly db: Db) {}

  insert(j: NewJobRecord): number | undefined {
    return this.db.insertId(
      'INSERT INTO jobs(kind, status, trigger, policy_id, vm, repository, params, attempt, max_attempts, ' +
        `not_before, created_at, requested_by, run_key)
         VALUES (?, 'queued', ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?) ON CONFLICT (run_key) DO NOTHING`,
      [
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
        j.runKey ?? null,
      ],
    );
  }

  get(id: number): Job | undefined {
    const r = this.db.get('SELECT * FROM jobs WHERE id = ?', [id]) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  list(f: JobFilter): Job[] {
    const where: string[] = [];
    const args: unknown[] = [];
    for (const k of ['status', 'kind', 'vm'] as const) if (f[k]) where.push(`${k} = ?`) && args.push(f[k]);
    if (f.beforeId !== undefined) where.push('id < ?') && args.push(f.beforeId);
    const rows = this.db.all(
      `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`,
      [...args, f.limit],
    ) as Row[];
    return rows.map(fromRow);
  }

  due(now: string, limit: number, afterId = 0): Job[] {
    return (
      this.db.all("SELECT * FROM jobs WHERE status = 'queued' AND not_before <= ? AND id > ? ORDER BY id LIMIT ?", [
        now,
        afterId,
        limit,
      ]) as Row[]
    ).map(fromRow);
  }

  runningIds(): number[] {
    return (this.db.all("SELECT id FROM jobs WHERE status = 'running'") as { id: number }[]).map((r) => r.id);
  }

  hasPending(kind: JobKind, on: { vm: string } | { repository: string }): boolean {
    const [col, value] = 'vm' in on ? ['vm', on.vm] : ['repository', on.repository];
    return (
      this.db.get(`SELECT 1 FROM jobs WHERE kind = ? AND ${col} = ? AND status IN ('queued', 'running') LIMIT 1`, [
        kind,
        value,
      ]) !== undefined
    );
  }

  claim(id: number, attempt: number, now: string, owner: string, leaseUntil: string): boolean {
    const row =
      this.db.dialect === 'postgres'
        ? "id = (SELECT id FROM jobs WHERE id = ? AND status = 'queued' FOR UPDATE SKIP LOCKED)"
        : "id = ? AND status = 'queued'";
    return (
      this.db.run(
        "UPDATE jobs SET status = 'running', started_at = ?, attempt = ?, progress = NULL, lease_owner = ?, " +
          `lease_expires_at = ?, wait_reason = NULL WHERE ${row}`,
        [now, attempt, owner, leaseUntil, id],
      ) > 0
    );
  }

  renewLeases(owner: string, ids: readonly number[], leaseUntil: string): number[] {
    if (ids.length === 0) return [];
    return this.db
      .all<{ id: number }>(
        `UPDATE jobs SET lease_expires_at = ? WHERE lease_owner = ? AND status = 'running' AND id IN (${ids
          .map(() => '?')
          .join(', ')}) RETURNING id`,
        [leaseUntil, owner, ...ids],
      )
      .map((r) => Number(r.id));
  }

  expiredLeases(now: string): Job[] {
    return this.db
      .all<Row>("SELECT * FROM jobs WHERE status = 'running' AND lease_expires_at < ? ORDER BY id", [now])
      .map(fromRow);
  }

  reclaim(id: number, now: string, requeue: boolean, error: JobError): boolean {
    const cond = "WHERE id = ? AND status = 'running' AND lease_expires_at < ?";
    return requeue
      ? this.db.run(`UPDATE jobs SET status = 'queued', not_before = ?, error = ?, lease_expires_at = NULL ${cond}`, [
          now,
          JSON.stringify(error),
          id,
          now,
        ]) > 0
      : this.db.run(`UPDATE jobs SET status = 'failed', finished_at = ?, error = ? ${cond}`, [
          now,
          JSON.stringify(error),
          id,
          now,
        ]) > 0;
  }

  retry(id: number, notBefore: string, error: JobError): void {
    this.db.run("UPDATE jobs SET status = 'queued', not_before = ?, error = ? WHERE id = ?", [
      notBefore,
      JSON.stringify(error),
      id,
    ]);
  }

  finish(id: number, status: JobStatus, error: JobError | null, result: unknown, now: string): void {
    this.db.run('UPDATE jobs SET status = ?, finished_at = ?, error = ?, result = ? WHERE id = ?', [
      status,
      now,
      error ? JSON.stringify(error) : null,
      result === null || result === undefined ? null : JSON.stringify(result),
      id,
    ]);
  }

  setProgress(id: number, p: JobProgress): void {
    this.db.run('UPDATE jobs SET progress = ? WHERE id = ?', [JSON.stringify(p), id]);
  }

  setWaitReason(id: number, reason: string | null): void {
    this.db.run(
      `UPDATE jobs SET wait_reason = ? WHERE id = ? AND status = 'queued' AND ${
        reason === null ? 'wait_reason IS NOT NULL' : '(wait_reason IS NULL OR wait_reason <> ?)'
      }`,
      reason === null ? [null, id] : [reason, id, reason],
    );
  }

  lastFinishedBackup(
    vm: string,
  ): { id: number; status: string; finishedAt: string | null; error: JobError | null } | undefined {
    const r = this.db.get(
      "SELECT id, status, finished_at, error FROM jobs WHERE vm = ? AND kind = 'backup' AND status IN " +
        "('succeeded', 'failed', 'cancelled') ORDER BY id DESC LIMIT 1",
      [vm],
    ) as { id: number; status: string; finished_at: string | null; error: string | null } | undefined;
    return r
      ? { id: r.id, status: r.status, finishedAt: r.finished_at, error: r.error ? JSON.parse(r.error) : null }
      : undefined;
  }

  countByStatus(): { status: string; n: number }[] {
    return this.db.all('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status') as never;
  }

  countByKindAndStatus(): { kind: string; status: string; n: number }[] {
    return this.db.all('SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status') as never;
  }

  failuresByDay(sinceDay: string): { day: string; failed: number }[] {
    return this.db.all(
      "SELECT substr(finished_at, 1, 10) AS day, COUNT(*) AS failed FROM jobs WHERE status = 'failed' AND " +
        'substr(finished_at, 1, 10) >= ? GROUP BY day',
      [sinceDay],
    ) as never;
  }

  succeededDurations(): { kind: string; n: number; s: number }[] {
    const seconds =
      this.db.dialect === 'postgres'
        ? 'EXTRACT(EPOCH FROM (finished_at::timestamptz - started_at::timestamptz))'
        : '(julianday(finished_at) - julianday(started_at)) * 86400.0';
    return this.db.all(
      `SELECT kind, COUNT(*) AS n, SUM(${seconds}) AS s ` +
        "FROM jobs WHERE status = 'succeeded' AND started_at IS NOT NULL GROUP BY kind",
    ) as never;
  }
}
