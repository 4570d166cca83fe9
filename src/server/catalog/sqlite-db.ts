import type { Db } from './db.js';
import { openSqlite, type SqliteConnection, type SqliteStatement } from './sqlite-driver.js';

/** statements kept prepared per connection (the catalog's SQL is a fixed set of strings) */
const STATEMENT_CACHE = 1000;

/**
 * The query layer on SQLite (ADR 0015, ADR 0029): in-process and synchronous, one file in WAL mode, on node:sqlite or
 * better-sqlite3 (sqlite-driver.ts).
 */
export class SqliteDb implements Db {
  readonly dialect = 'sqlite';
  private readonly db: SqliteConnection;
  private readonly statements = new Map<string, SqliteStatement>();

  constructor(file: string) {
    this.db = openSqlite(file);
    try {
      this.db.exec('PRAGMA journal_mode = WAL');
      this.db.exec('PRAGMA busy_timeout = 5000');
      this.db.exec('PRAGMA foreign_keys = ON');
    } catch (e) {
      this.db.close();
      throw e;
    }
  }

  /** the engine underneath (node:sqlite or better-sqlite3) */
  get driver(): string {
    return this.db.driver;
  }

  private stmt(sql: string): SqliteStatement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      if (this.statements.size >= STATEMENT_CACHE) this.statements.delete(this.statements.keys().next().value!);
      this.statements.set(sql, s);
    }
    return s;
  }

  all<T>(sql: string, params: readonly unknown[] = []): T[] {
    return this.stmt(sql).all(...params) as T[];
  }

  get<T>(sql: string, params: readonly unknown[] = []): T | undefined {
    return this.stmt(sql).get(...params) as T | undefined;
  }

  run(sql: string, params: readonly unknown[] = []): number {
    return Number(this.stmt(sql).run(...params).changes);
  }

  insertId(sql: string, params: readonly unknown[] = []): number | undefined {
    const r = this.stmt(`${sql} RETURNING id`).get(...params) as { id: number } | undefined;
    return r ? Number(r.id) : undefined;
  }

  exec(sql: string): void {
    this.db.exec(sql);
  }

  transaction<T>(fn: () => T): T {
    this.db.exec('BEGIN');
    let result: T;
    try {
      result = fn();
    } catch (e) {
      try {
        this.db.exec('ROLLBACK');
      } catch {
        // SQLite rolled back already (e.g. after SQLITE_FULL): nothing left to undo
      }
      throw e;
    }
    this.db.exec('COMMIT');
    return result;
  }

  close(): void {
    this.statements.clear();
    this.db.close();
  }
}
