import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { CofferError } from '../../shared/index.js';
import { SqlAudit } from './audit.js';
import type { Catalog } from './catalog.js';
import { SqlJobLogs } from './job-logs.js';
import { SqlJobs } from './jobs.js';
import { SqlPolicies } from './policies.js';
import { SqlProxies } from './proxies.js';
import { SqlRepoStats } from './repo-stats.js';
import { SqlRestorePoints } from './restore-points.js';
import { SqlSlaState } from './sla-state.js';
import { SqlTokens } from './tokens.js';
import { SqlUsers } from './users.js';

import type { Db } from './db.js';
import { type LeaderLock, SOLE_LEADER } from './leader-lock.js';
import { migrate } from './migrate.js';
import { SqliteDb } from './sqlite-db.js';

/**
 * The catalog on SQLite: one file DATA/catalog.db (WAL), the embedded default for one server. Schema and migrations:
 * migrations.ts (the same on PostgreSQL, postgres.ts). The table modules see only the Db query layer.
 */

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
    const db = new SqliteDb(file);
    try {
      migrate(db, `${dataDir}/catalog.db`);
    } catch (e) {
      db.close();
      throw e;
    }
    return db;
  } catch (e) {
    if (e instanceof CofferError) throw e;
    throw new CofferError('IO', `cannot open the catalog in ${dataDir}: ${(e as Error).message}`, { cause: e });
  }
}

/** Opens (creating or migrating) DATA/catalog.db. */
export function openSqliteCatalog(dataDir: string): Catalog {
  return catalogOn(openDatabase(dataDir));
}

/** pg_advisory_xact_lock key of placement ("coffer" + 3; + 1: migrations, + 2: the scheduler leader) */
const PLACEMENT_LOCK = 0x636f666603;

/** The table modules over one query layer (either engine). */
export function catalogOn(db: Db, leaderLock: () => LeaderLock = () => SOLE_LEADER): Catalog {
  return {
    dialect: db.dialect,
    users: new SqlUsers(db),
    tokens: new SqlTokens(db),
    policies: new SqlPolicies(db),
    jobs: new SqlJobs(db),
    jobLogs: new SqlJobLogs(db),
    restorePoints: new SqlRestorePoints(db),
    repoStats: new SqlRepoStats(db),
    slaState: new SqlSlaState(db),
    audit: new SqlAudit(db),
    proxies: new SqlProxies(db),
    leaderLock,
    // one transaction on both engines (SQLite: one commit for the step's claims and wait reasons, not one each)
    placementLock: (fn) =>
      db.transaction(() => {
        if (db.dialect === 'postgres') db.get('SELECT pg_advisory_xact_lock(?)', [PLACEMENT_LOCK]);
        return fn();
      }),
    close: () => db.close(),
  };
}
