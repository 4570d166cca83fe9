import type { Catalog } from './catalog.js';
import { PostgresLeaderLock } from './leader-lock.js';
import { migrate } from './migrate.js';
import { PostgresDb, redactUrl } from './postgres-db.js';
import { catalogOn } from './sqlite.js';

/** a PostgreSQL connection URL (the `--catalog` value that selects this engine) */
export function isPostgresUrl(s: string | undefined): s is string {
  return s !== undefined && /^postgres(ql)?:\/\//.test(s);
}

/**
 * Opens (creating or migrating) the catalog in a PostgreSQL database (`coffer server --catalog postgres://...`):
 * the same tables and migrations as SQLite (migrations.ts), shared by every server replica (ADR 0015).
 */
export function openPostgresCatalog(url: string): Catalog {
  const db = new PostgresDb(url);
  try {
    migrate(db, redactUrl(url));
  } catch (e) {
    db.close();
    throw e;
  }
  return catalogOn(db, () => new PostgresLeaderLock(url));
}
