import { chmodSync, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CofferError } from '../shared/index.js';
import { openCatalog, openSqlite, type SqliteConnection } from './catalog/index.js';

const CATALOG_FILE = 'catalog.db';

/** `PRAGMA integrity_check` of a SQLite file; a coded error when it is not a sound catalog */
function checkCatalogFile(file: string): { schemaVersion: number } {
  let db: SqliteConnection | undefined;
  try {
    db = openSqlite(file, { readOnly: true });
    const rows = db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[];
    const ok = rows.map((r) => r.integrity_check).join('; ');
    if (ok !== 'ok') throw new CofferError('CORRUPT', `${file} fails the SQLite integrity check: ${ok}`);
    const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
      | { value: string }
      | undefined;
    if (!row) throw new CofferError('CORRUPT', `${file} is a SQLite file but not a Coffer catalog (no schema_version)`);
    return { schemaVersion: Number(row.value) };
  } catch (e) {
    if (e instanceof CofferError) throw e;
    throw new CofferError('CORRUPT', `${file} is not a readable Coffer catalog: ${(e as Error).message}`, { cause: e });
  } finally {
    db?.close();
  }
}

/**
 * `coffer catalog backup`: a consistent copy of DATA/catalog.db made by SQLite's `VACUUM INTO` (one read
 * transaction: a snapshot, compacted), safe while the server runs (WAL). The catalog is a cache of the repositories
 * plus the server's own state (policies, users, token hashes, jobs, audit log): the repositories never need it, the
 * server does.
 */
export async function backupCatalog(
  dataDir: string,
  to: string,
  opts: { force?: boolean } = {},
): Promise<{ file: string; sizeBytes: number; schemaVersion: number }> {
  const src = join(dataDir, CATALOG_FILE);
  if (!existsSync(src)) throw new CofferError('NOT_FOUND', `no catalog in ${dataDir} (${src} does not exist)`);
  if (existsSync(to) && !opts.force)
    throw new CofferError('TARGET_EXISTS', `${to} exists`, { hint: 'pass --force to overwrite it' });
  const tmp = `${to}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  let db: SqliteConnection | undefined;
  try {
    db = openSqlite(src);
    db.exec('PRAGMA busy_timeout = 5000');
    db.prepare('VACUUM INTO ?').run(tmp);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new CofferError('IO', `cannot back up ${src} to ${to}: ${(e as Error).message}`, { cause: e });
  } finally {
    db?.close();
  }
  try {
    const { schemaVersion } = checkCatalogFile(tmp);
    renameSync(tmp, to);
    return { file: to, sizeBytes: statSync(to).size, schemaVersion };
  } finally {
    rmSync(tmp, { force: true });
  }
}

/**
 * `coffer catalog restore`: puts a catalog backup in place as DATA/catalog.db while the server is stopped. The file
 * is checked first (integrity, a Coffer catalog); an existing catalog is replaced only with `force`; the result is
 * opened once (migrated to this version's schema, or refused when it is newer than this Coffer).
 */
export async function restoreCatalog(
  dataDir: string,
  from: string,
  opts: { force?: boolean } = {},
): Promise<{ file: string; schemaVersion: number }> {
  if (!existsSync(from)) throw new CofferError('NOT_FOUND', `no catalog backup at ${from}`);
  checkCatalogFile(from);
  const dst = join(dataDir, CATALOG_FILE);
  if (existsSync(dst) && !opts.force)
    throw new CofferError('TARGET_EXISTS', `${dst} exists`, {
      hint: 'stop the server, then pass --force to replace the catalog',
    });
  // the data directory as the server makes it (0700, catalog 0600); then the copy replaces that file whole
  openCatalog(dataDir).close();
  const tmp = `${dst}.restore-${process.pid}`;
  rmSync(tmp, { force: true });
  let db: SqliteConnection | undefined;
  try {
    db = openSqlite(from, { readOnly: true });
    db.prepare('VACUUM INTO ?').run(tmp);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new CofferError('IO', `cannot restore ${from} into ${dataDir}: ${(e as Error).message}`, { cause: e });
  } finally {
    db?.close();
  }
  for (const f of [`${dst}-wal`, `${dst}-shm`]) rmSync(f, { force: true });
  chmodSync(tmp, 0o600);
  renameSync(tmp, dst);
  // opened once: migrated to this version's schema, or refused (REPO_UNSUPPORTED) when newer than this Coffer
  const catalog = openCatalog(dataDir);
  catalog.close();
  return { file: dst, schemaVersion: checkCatalogFile(dst).schemaVersion };
}
