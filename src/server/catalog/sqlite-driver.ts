import { createRequire } from 'node:module';
import { CofferError } from '../../shared/index.js';

/**
 * The SQLite engine under the catalog (ADR 0029): Node's built-in `node:sqlite` where this Node has it
 * without a flag (22.13+, 23.4+, 24), else the `better-sqlite3` package (Node 20; an optional dependency, compiled at
 * install). Both are synchronous and in-process; this is the part of their APIs the catalog uses. `COFFER_SQLITE` =
 * `node:sqlite` | `better-sqlite3` forces one (tests, or a Node whose built-in misbehaves).
 */
export interface SqliteStatement {
  all(...params: unknown[]): unknown[];
  get(...params: unknown[]): unknown;
  run(...params: unknown[]): { changes: number | bigint };
}

export interface SqliteConnection {
  readonly driver: 'node:sqlite' | 'better-sqlite3';
  prepare(sql: string): SqliteStatement;
  exec(sql: string): void;
  close(): void;
}

interface NodeSqliteModule {
  DatabaseSync: new (
    path: string,
    opts?: { readOnly?: boolean },
  ) => { prepare(sql: string): SqliteStatement; exec(sql: string): void; close(): void };
}

type BetterSqlite = new (
  path: string,
  opts?: { readonly?: boolean; fileMustExist?: boolean },
) => { prepare(sql: string): SqliteStatement; exec(sql: string): void; close(): void };

const require = createRequire(import.meta.url);
let builtin: NodeSqliteModule | null | undefined;
let better: BetterSqlite | Error | undefined;

/** node:sqlite, or null where this Node has none (or only behind --experimental-sqlite) */
function loadBuiltin(): NodeSqliteModule | null {
  if (builtin !== undefined) return builtin;
  // Node 22.13-23.x print an ExperimentalWarning when the module loads: an operator cannot act on it, so not shown
  const emit = process.emitWarning;
  process.emitWarning = ((w: string | Error, ...rest: unknown[]) => {
    if (/SQLite is an experimental feature/.test(typeof w === 'string' ? w : w.message)) return;
    (emit as (...a: unknown[]) => void).call(process, w, ...rest);
  }) as typeof process.emitWarning;
  try {
    builtin = require('node:sqlite') as NodeSqliteModule;
  } catch {
    builtin = null;
  } finally {
    process.emitWarning = emit;
  }
  return builtin;
}

function loadBetter(): BetterSqlite | Error {
  if (better !== undefined) return better;
  try {
    better = require('better-sqlite3') as BetterSqlite;
  } catch (e) {
    better = e as Error;
  }
  return better;
}

/** which engine opens catalogs in this process */
export function sqliteDriver(): 'node:sqlite' | 'better-sqlite3' {
  const forced = process.env.COFFER_SQLITE;
  if (forced === 'better-sqlite3' || forced === 'node:sqlite') return forced;
  if (forced) throw new CofferError('USAGE', `COFFER_SQLITE=${forced}: give node:sqlite or better-sqlite3`);
  return loadBuiltin() ? 'node:sqlite' : 'better-sqlite3';
}

/** Opens a SQLite file; `readOnly` never creates it (a missing file is an error). */
export function openSqlite(file: string, opts: { readOnly?: boolean } = {}): SqliteConnection {
  const driver = sqliteDriver();
  if (driver === 'node:sqlite') {
    const m = loadBuiltin();
    if (!m)
      throw new CofferError(
        'CATALOG_UNAVAILABLE',
        `COFFER_SQLITE=node:sqlite: Node ${process.version} has no node:sqlite`,
      );
    const db = new m.DatabaseSync(file, { readOnly: opts.readOnly ?? false });
    return {
      driver,
      // rows come with a null prototype: plain objects like better-sqlite3's (deepEqual, spreading, JSON alike)
      prepare: (sql) => {
        const s = db.prepare(sql);
        return {
          all: (...p) => s.all(...p).map((r) => ({ ...(r as object) })),
          get: (...p) => {
            const r = s.get(...p);
            return r === undefined ? undefined : { ...(r as object) };
          },
          run: (...p) => s.run(...p),
        };
      },
      exec: (sql) => db.exec(sql),
      close: () => db.close(),
    };
  }
  const B = loadBetter();
  if (B instanceof Error)
    throw new CofferError(
      'CATALOG_UNAVAILABLE',
      `no SQLite engine: Node ${process.version} has no node:sqlite and better-sqlite3 did not load (${B.message})`,
      {
        hint:
          'run Coffer on Node 22.13 or later, or reinstall it where better-sqlite3 can be compiled ' +
          '(g++, make, python3)',
      },
    );
  const db = new B(file, opts.readOnly ? { readonly: true, fileMustExist: true } : {});
  return { driver, prepare: (sql) => db.prepare(sql), exec: (sql) => db.exec(sql), close: () => db.close() };
}

/** A unique/primary-key violation on either engine (better-sqlite3: code SQLITE_CONSTRAINT_*; node:sqlite: the
 * extended result code, whose low byte is SQLITE_CONSTRAINT = 19) */
export function isSqliteConstraintError(e: unknown): boolean {
  const x = e as { code?: unknown; errcode?: unknown };
  if (String(x.code).startsWith('SQLITE_CONSTRAINT')) return true;
  return x.code === 'ERR_SQLITE_ERROR' && typeof x.errcode === 'number' && (x.errcode & 0xff) === 19;
}
