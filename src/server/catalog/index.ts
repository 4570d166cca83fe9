export type { Catalog } from './catalog.js';
export { isPostgresUrl, openPostgresCatalog } from './postgres.js';
export { openCatalog } from './open.js';
export { decodeCursor, encodeCursor } from './cursor.js';
export { openSqlite, sqliteDriver, type SqliteConnection } from './sqlite-driver.js';
export type { AuditEntry, AuditRecord, AuditTable } from './audit.js';
export type { JobLogLine, JobLogsTable, LogLevel } from './job-logs.js';
export {
  TERMINAL_STATUSES,
  type BackupParams,
  type Job,
  type JobError,
  type JobFilter,
  type JobKind,
  type JobProgress,
  type JobStatus,
  type JobsTable,
  type PruneParams,
  type CheckParams,
  type RestoreParams,
  type RestoreVmParams,
  type VerifyParams,
} from './jobs.js';
export type { PoliciesTable } from './policies.js';
export type { ProxiesTable, ProxyCapabilities, ProxyRecord } from './proxies.js';
export type { RepoStatsRecord, RepoStatsTable } from './repo-stats.js';
export type { NewestPoint, RestorePointRecord, RestorePointsTable } from './restore-points.js';
export type { SlaStateTable } from './sla-state.js';
export type { TokenInfo, TokenRecord, TokensTable } from './tokens.js';
export type { UserRecord, UsersTable } from './users.js';
export type { LeaderLock } from './leader-lock.js';
