import { isSqliteConstraintError } from './sqlite-driver.js';

/**
 * The one query layer of the catalog (ADR 0015): a small synchronous interface that the table modules write their
 * SQL against, implemented on SQLite (sqlite-db.ts: node:sqlite or better-sqlite3) and on libpq through pg-native
 * (postgres-db.ts). SQL is written once, in the subset both engines share, with `?` placeholders; where the two
 * differ the table module asks `dialect`. Never leaves src/server/catalog.
 */
export interface Db {
  readonly dialect: 'sqlite' | 'postgres';
  /** every row */
  all<T>(sql: string, params?: readonly unknown[]): T[];
  /** the first row, if any */
  get<T>(sql: string, params?: readonly unknown[]): T | undefined;
  /** an INSERT/UPDATE/DELETE; returns the number of rows it changed */
  run(sql: string, params?: readonly unknown[]): number;
  /** an INSERT into a table with an `id` key (RETURNING id is appended): the new row's id; none when ON CONFLICT DO
   * NOTHING skipped it */
  insertId(sql: string, params?: readonly unknown[]): number | undefined;
  /** statements without parameters, separated by `;` (migrations) */
  exec(sql: string): void;
  /** runs fn in one transaction (committed when it returns, rolled back when it throws); not nested */
  transaction<T>(fn: () => T): T;
  close(): void;
}

/** A unique/primary-key violation (a duplicate name), told apart from other failures, on either engine. */
export function isConstraintError(e: unknown): boolean {
  return isSqliteConstraintError(e) || String((e as { code?: string }).code) === '23505';
}
