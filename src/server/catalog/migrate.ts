import { CofferError } from '../../shared/index.js';
import type { Db } from './db.js';
import { forPostgres, MIGRATIONS } from './migrations.js';

/**
 * Brings a catalog to the newest schema: the same append-only MIGRATIONS on both engines, in one transaction. On
 * PostgreSQL several replicas may start at once: a transaction-level advisory lock makes them migrate one after the
 * other (the second finds the schema current). A catalog from a newer Coffer is refused (REPO_UNSUPPORTED).
 */
export function migrate(db: Db, where: string): void {
  db.transaction(() => {
    if (db.dialect === 'postgres') db.get('SELECT pg_advisory_xact_lock(?)', [MIGRATION_LOCK]);
    db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    const row = db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'");
    const version = row ? Number(row.value) : 0;
    if (version > MIGRATIONS.length) {
      throw new CofferError(
        'REPO_UNSUPPORTED',
        `catalog ${where} has schema version ${version}; this Coffer knows up to ${MIGRATIONS.length}`,
      );
    }
    for (let v = version; v < MIGRATIONS.length; v++)
      db.exec(db.dialect === 'postgres' ? forPostgres(MIGRATIONS[v]!) : MIGRATIONS[v]!);
    db.run(
      "INSERT INTO meta(key, value) VALUES ('schema_version', ?) " +
        'ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      [String(MIGRATIONS.length)],
    );
  });
}

/** pg_advisory_xact_lock key of schema migrations ("coffer" + 1) */
const MIGRATION_LOCK = 0x636f666601;
