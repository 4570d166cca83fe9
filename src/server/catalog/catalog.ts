import type { AuditTable } from './audit.js';
import type { JobLogsTable } from './job-logs.js';
import type { JobsTable } from './jobs.js';
import type { LeaderLock } from './leader-lock.js';
import type { PoliciesTable } from './policies.js';
import type { ProxiesTable } from './proxies.js';
import type { RepoStatsTable } from './repo-stats.js';
import type { RestorePointsTable } from './restore-points.js';
import type { SlaStateTable } from './sla-state.js';
import type { TokensTable } from './tokens.js';
import type { UsersTable } from './users.js';

/**
 * The server's catalog: what the server decides and observes (users, hashed tokens, policies, jobs and their logs,
 * a cache of restore points, audit); never repository passwords and never data a repository cannot rebuild.
 * One narrow interface per table, so that a second implementation (PostgreSQL) can stand beside sqlite.ts; every
 * SQL statement of the server is in this folder.
 */
export interface Catalog {
  /** which engine holds it: 'sqlite' (one server, the default) or 'postgres' (replicas share it; ADR 0015) */
  readonly dialect: 'sqlite' | 'postgres';
  readonly users: UsersTable;
  readonly tokens: TokensTable;
  readonly policies: PoliciesTable;
  readonly jobs: JobsTable;
  readonly jobLogs: JobLogsTable;
  readonly restorePoints: RestorePointsTable;
  readonly repoStats: RepoStatsTable;
  readonly slaState: SlaStateTable;
  readonly audit: AuditTable;
  /** backup proxies (remote `coffer proxy` processes and each server's own) */
  readonly proxies: ProxiesTable;
  /** the scheduler's election lock: a connection of its own on PostgreSQL, always held on SQLite */
  leaderLock(): LeaderLock;
  /**
   * Runs fn (placement's reads and the claims it decides) as one step no other server process interleaves with: on
   * PostgreSQL a transaction holding a transaction-level advisory lock (replicas place one claim at a time, so limits
   * counted over the running jobs hold across replicas); on SQLite (one process, synchronous) fn as is.
   */
  placementLock<T>(fn: () => T): T;
  close(): void;
}
