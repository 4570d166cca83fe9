/**
 * The catalog schema (docs/DESIGN.md §Server): append-only migrations, one list for SQLite and PostgreSQL (ADR 0015).
 * Migration 1 is byte-for-byte that of every earlier release (an existing catalog.db opens as is); PostgreSQL runs the
 * same text through `forPostgres` (integer ids become BIGSERIAL, INTEGER becomes BIGINT).
 */
export const MIGRATIONS: string[] = [
  `CREATE TABLE users (
     username TEXT PRIMARY KEY,
     role TEXT NOT NULL,
     password_hash TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE tokens (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     role TEXT NOT NULL,
     hash TEXT NOT NULL UNIQUE,
     kind TEXT NOT NULL,
     username TEXT,
     created_at TEXT NOT NULL,
     created_by TEXT NOT NULL,
     expires_at TEXT,
     last_used_at TEXT
   );
   CREATE TABLE policies (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     spec TEXT NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE TABLE jobs (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     kind TEXT NOT NULL,
     status TEXT NOT NULL,
     trigger TEXT NOT NULL,
     policy_id TEXT,
     vm TEXT,
     repository TEXT NOT NULL,
     params TEXT NOT NULL,
     attempt INTEGER NOT NULL DEFAULT 0,
     max_attempts INTEGER NOT NULL,
     not_before TEXT NOT NULL,
     created_at TEXT NOT NULL,
     started_at TEXT,
     finished_at TEXT,
     requested_by TEXT NOT NULL,
     error TEXT,
     result TEXT,
     progress TEXT
   );
   CREATE INDEX jobs_status ON jobs(status, not_before);
   CREATE INDEX jobs_vm ON jobs(vm, id);
   CREATE TABLE job_logs (
     job_id INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     time TEXT NOT NULL,
     level TEXT NOT NULL,
     message TEXT NOT NULL,
     PRIMARY KEY (job_id, seq)
   );
   CREATE TABLE restore_points (
     repository TEXT NOT NULL,
     id TEXT NOT NULL,
     vm TEXT NOT NULL,
     time TEXT NOT NULL,
     end_time TEXT NOT NULL,
     mode TEXT NOT NULL,
     parent TEXT,
     tags TEXT NOT NULL,
     disks TEXT NOT NULL,
     bytes_read INTEGER NOT NULL,
     bytes_stored INTEGER NOT NULL,
     verified TEXT,
     PRIMARY KEY (repository, id)
   );
   CREATE INDEX restore_points_time ON restore_points(time DESC, id DESC);
   CREATE TABLE repo_stats (
     repository TEXT PRIMARY KEY,
     stored_bytes INTEGER NOT NULL,
     chunk_bytes INTEGER NOT NULL,
     logical_bytes INTEGER NOT NULL,
     chunks INTEGER NOT NULL,
     points INTEGER NOT NULL,
     updated_at TEXT NOT NULL,
     error TEXT
   );
   CREATE TABLE sla_state (
     vm TEXT PRIMARY KEY,
     breached INTEGER NOT NULL,
     since TEXT NOT NULL
   );
   CREATE TABLE audit (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     time TEXT NOT NULL,
     actor TEXT NOT NULL,
     action TEXT NOT NULL,
     target TEXT NOT NULL,
     remote TEXT NOT NULL,
     status INTEGER NOT NULL,
     details TEXT NOT NULL
   );`,
  // 2 (issue 16): which process runs a job and until when its lease holds (a lost process's jobs are reclaimed once the
  // lease expires), and the idempotent run key of a scheduled job (policy, VM, scheduled time): a schedule fires once
  `ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
   ALTER TABLE jobs ADD COLUMN lease_expires_at TEXT;
   ALTER TABLE jobs ADD COLUMN run_key TEXT;
   CREATE UNIQUE INDEX jobs_run_key ON jobs(run_key);
   CREATE INDEX jobs_lease ON jobs(status, lease_expires_at);`,
  // 3 (issue 18): restore point state (suspicious / failed / verified / clean, score, reasons, check): JSON, see
  // restore-points.ts
  'ALTER TABLE restore_points ADD COLUMN status TEXT;',
  // 4 (issue 16, proxies): the backup proxies (remote `coffer proxy` processes and each server's built-in one), keyed
  // by their lease owner (jobs.lease_owner); why a queued job waits (no capable proxy online, limits)
  `CREATE TABLE proxies (
     owner TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     local INTEGER NOT NULL,
     version TEXT NOT NULL,
     token_id TEXT,
     capabilities TEXT NOT NULL,
     concurrency INTEGER NOT NULL,
     drained INTEGER NOT NULL DEFAULT 0,
     registered_at TEXT NOT NULL,
     last_heartbeat TEXT NOT NULL
   );
   ALTER TABLE jobs ADD COLUMN wait_reason TEXT;`,
  // 5 (issue 16, scale16): the queue read oldest first a page at a time (status = 'queued' AND id > ? ORDER BY id):
  // without it each page read every queued row and sorted them (5,000 queued jobs: most of a claim's time); the
  // process a remote proxy runs as (HOST:PID:RANDOM), to refuse a second process started with its token and name
  `CREATE INDEX jobs_queue ON jobs(status, id);
   ALTER TABLE proxies ADD COLUMN instance TEXT;`,
];

/** The one mechanical translation from the SQLite text to PostgreSQL. */
export function forPostgres(sql: string): string {
  return sql.replace(/INTEGER PRIMARY KEY AUTOINCREMENT/g, 'BIGSERIAL PRIMARY KEY').replace(/\bINTEGER\b/g, 'BIGINT');
}
