import type { Catalog } from './catalog.js';
import { isPostgresUrl, openPostgresCatalog } from './postgres.js';
import { openSqliteCatalog } from './sqlite.js';

/**
 * The server's catalog: in PostgreSQL when `catalogUrl` is a postgres:// URL (replicas share it), else the embedded
 * SQLite file DATA/catalog.db (the default, one server).
 */
export function openCatalog(dataDir: string, catalogUrl?: string): Catalog {
  return isPostgresUrl(catalogUrl) ? openPostgresCatalog(catalogUrl) : openSqliteCatalog(dataDir);
}
