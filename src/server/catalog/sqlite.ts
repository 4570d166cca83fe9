import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { CofferError } from '../../shared/index.js';
import { SqliteAudit } from './audit.js';
import type { Catalog } from './catalog.js';
import { SqliteJobLogs } from './job-logs.js';
import { SqliteJobs } from './jobs.js';
import { SqlitePolicies } from './policies.js';
import { SqliteRepoStats } from './repo-stats.js';
import { SqliteRestorePoints } from './restore-points.js';
import { SqliteSlaState } from './sla-state.js';
import { SqliteTokens } from './tokens.js';
import { SqliteUsers } from './users.js';

/**
 * The SQLite implementation of the catalog: one file DATA/catalog.db (WAL). Schema in docs/DESIGN.md §Server;
 * migrations are append-only and byte-for-byte those of every earlier release (an existing catalog.db opens as is).
 * `Database` never leaves this folder: the rest of the server sees the per-table interfaces of catalog.ts.
 */
const MIGRATIONS: string[] = [
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
  // restore point state (suspicious / failed / verified / clean, score, reasons, check): JSON, see restore-points.ts
  'ALTER TABLE restore_points ADD COLUMN status TEXT;',
];

/** The better-sqlite3 handle the table modules share (this folder only). */
import type { Db } from './db.js';
export type { Db } from './db.js';
export { isConstraintError } from './db.js';

function openDatabase(dataDir: string): Db {
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    // the catalog holds password and token hashes: owner only. SQLite creates -wal and -shm with the mode of the
    // database file; an older catalog created 0644 is tightened here.
    const file = join(dataDir, 'catalog.db');
    closeSync(openSync(file, 'a', 0o600));
    for (const f of [file, `${file}-wal`, `${file}-shm`]) {
      if (existsSync(f)) chmodSync(f, 0o600);
    }
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
    db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
      | { value: string }
      | undefined;
    const version = row ? Number(row.value) : 0;
    if (version > MIGRATIONS.length) {
      db.close();
      throw new CofferError(
        'REPO_UNSUPPORTED',
        `catalog ${dataDir}/catalog.db has schema version ${version}; this Coffer knows up to ${MIGRATIONS.length}`,
      );
    }
    db.transaction(() => {
      for (let v = version; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
      db.prepare(
        "INSERT INTO meta(key, value) VALUES ('schema_version', ?) " +
          'ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ).run(String(MIGRATIONS.length));
    })();
    return db;
  } catch (e) {
    if (e instanceof CofferError) throw e;
    throw new CofferError('IO', `cannot open the catalog in ${dataDir}: ${(e as Error).message}`, { cause: e });
  }
}

/** Opens (creating or migrating) DATA/catalog.db. */
export function openSqliteCatalog(dataDir: string): Catalog {
  const db = openDatabase(dataDir);
  return {
    users: new SqliteUsers(db),
    tokens: new SqliteTokens(db),
    policies: new SqlitePolicies(db),
    jobs: new SqliteJobs(db),
    jobLogs: new SqliteJobLogs(db),
    restorePoints: new SqliteRestorePoints(db),
    repoStats: new SqliteRepoStats(db),
    slaState: new SqliteSlaState(db),
    audit: new SqliteAudit(db),
    close: () => db.close(),
  };
}
