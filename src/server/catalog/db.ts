import type Database from 'better-sqlite3';

/** The SQLite connection the table modules share (never leaves src/server/catalog). */
export type Db = Database.Database;

/** SQLite's unique/primary-key violation (a duplicate name), told apart from other failures. */
export function isConstraintError(e: unknown): boolean {
  return String((e as { code?: string }).code).startsWith('SQLITE_CONSTRAINT');
}
