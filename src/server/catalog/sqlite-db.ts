import Database from 'better-sqlite3';
import type { Db } from './db.js';

/** The query layer on better-sqlite3 (ADR 0015): in-process and synchronous, one file in WAL mode. */
export class SqliteDb implements Db {
  readonly dialect = 'sqlite';
  private readonly db: Database.Database;
  /** prepared statements by SQL text (the catalog's SQL is a fixed set; preparing was a third of a claim's time) */
  private readonly statements = new Map<string, Database.Statement>();

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
  }

  private prepare(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      if (this.statements.size >= 1000) this.statements.clear(); // SQL built from filters: bounded all the same
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  all<T>(sql: string, params: readonly unknown[] = []): T[] {
    return this.prepare(sql).all(...params) as T[];
  }

  get<T>(sql: string, params: readonly unknown[] = []): T | undefined {
    return this.prepare(sql).get(...params) as T | undefined;
  }

  run(sql: string, params: readonly unknown[] = []): number {
    return this.prepare(sql).run(...params).changes;
  }

  insertId(sql: string, params: readonly unknown[] = []): number | undefined {
    const r = this.prepare(`${sql} RETURNING id`).get(...params) as { id: number } | undefined;
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
