import Database from 'better-sqlite3';
import type { Db } from './db.js';

/** The query layer on better-sqlite3 (ADR 0015): in-process and synchronous, one file in WAL mode. */
export class SqliteDb implements Db {
  readonly dialect = 'sqlite';
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
  }

  all<T>(sql: string, params: readonly unknown[] = []): T[] {
    return this.db.prepare(sql).all(...params) as T[];
  }

  get<T>(sql: string, params: readonly unknown[] = []): T | undefined {
    return this.db.prepare(sql).get(...params) as T | undefined;
  }

  run(sql: string, params: readonly unknown[] = []): number {
    return this.db.prepare(sql).run(...params).changes;
  }

  insertId(sql: string, params: readonly unknown[] = []): number | undefined {
    const r = this.db.prepare(`${sql} RETURNING id`).get(...params) as { id: number } | undefined;
    return r ? Number(r.id) : undefined;
  }

  exec(sql: string): void {
    this.db.exec(sql);
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  close(): void {
    this.db.close();
  }
}
