import { createRequire } from 'node:module';
import { CofferError } from '../../shared/index.js';
import type { Db } from './db.js';

/** The part of pg-native (libpq) this file uses: a synchronous client. */
interface NativeClient {
  connectSync(url: string): void;
  querySync(text: string, values?: unknown[]): Record<string, unknown>[];
  pq: {
    cmdTuples(): string;
    resultErrorFields(): { sqlState?: string } | undefined;
    finish(): void;
  };
}
type NativeClientClass = new (opts: { types: { getTypeParser(oid: number): (v: string) => unknown } }) => NativeClient;

/** int8 (COUNT, BIGINT columns, BIGSERIAL ids) and numeric (SUM of BIGINT) as JS numbers, like better-sqlite3 */
const NUMERIC_OIDS = new Set([20, 1700]);
const types = {
  getTypeParser(oid: number): (v: string) => unknown {
    if (NUMERIC_OIDS.has(oid)) return Number;
    if (oid === 21 || oid === 23) return (v: string) => Number.parseInt(v, 10);
    if (oid === 700 || oid === 701) return Number.parseFloat;
    if (oid === 16) return (v: string) => v === 't';
    return (v: string) => v;
  },
};

/** `?` placeholders (the SQLite spelling every table module uses) -> `$1, $2, ...` (no `?` appears in our literals) */
export function numberedPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** the connection URL with the secret part hidden, for messages */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}

/**
 * The query layer on PostgreSQL (ADR 0015): pg-native, libpq's synchronous API, so the catalog keeps the synchronous
 * interface the whole server is written against. One connection per Db; a broken connection (server restarted,
 * network cut) fails the query with CATALOG_UNAVAILABLE and is re-opened at the next query. Queries are bounded by
 * statement_timeout and the connection by connect_timeout and TCP keepalives, so a dead PostgreSQL cannot block the
 * process for long.
 */
export class PostgresDb implements Db {
  readonly dialect = 'postgres';
  private client: NativeClient | undefined;
  private inTransaction = false;

  constructor(
    private readonly url: string,
    private readonly statementTimeoutMs = 30_000,
  ) {
    this.connection();
  }

  private connection(): NativeClient {
    if (this.client) return this.client;
    let Client: NativeClientClass;
    try {
      Client = createRequire(import.meta.url)('pg-native') as NativeClientClass;
    } catch (e) {
      // An optional dependency (package.json): its libpq addon builds only where libpq-dev and a compiler are present.
      throw new CofferError(
        'CATALOG_UNAVAILABLE',
        'a PostgreSQL catalog needs the optional package pg-native, which is not installed or not built for this ' +
          `Node.js (${(e as Error).message.split('\n')[0]}): install libpq-dev, g++ and make, then reinstall Coffer`,
        { cause: e },
      );
    }
    const client = new Client({ types });
    const sep = this.url.includes('?') ? '&' : '?';
    try {
      client.connectSync(
        `${this.url}${sep}connect_timeout=5&keepalives=1&keepalives_idle=5&keepalives_interval=2&keepalives_count=3` +
          '&application_name=coffer',
      );
      client.querySync(
        `SET statement_timeout = ${Math.floor(this.statementTimeoutMs)}; SET client_min_messages = warning`,
      );
    } catch (e) {
      throw new CofferError(
        'CATALOG_UNAVAILABLE',
        `cannot connect to the catalog ${redactUrl(this.url)}: ${(e as Error).message.trim()}`,
        { cause: e },
      );
    }
    this.client = client;
    return client;
  }

  private query(sql: string, params: readonly unknown[]): Record<string, unknown>[] {
    const client = this.connection();
    try {
      return params.length > 0
        ? client.querySync(numberedPlaceholders(sql), params.map(toParam))
        : client.querySync(sql);
    } catch (e) {
      const sqlState = client.pq.resultErrorFields()?.sqlState;
      if (sqlState) throw Object.assign(e as Error, { code: sqlState });
      // no SQLSTATE: the connection itself failed; the next query opens a new one
      this.drop();
      throw new CofferError(
        'CATALOG_UNAVAILABLE',
        `the catalog connection to ${redactUrl(this.url)} failed: ${(e as Error).message.trim()}`,
        { cause: e },
      );
    }
  }

  private drop(): void {
    const old = this.client;
    if (old) {
      try {
        old.pq.finish();
      } catch {
        /* already gone */
      }
      // libpq's finish() hands its socket watcher to uv_close, which completes in a later turn of the event loop:
      // the client must not be garbage-collected before that (libuv asserts on a freed handle)
      CLOSING.add(old);
      setTimeout(() => CLOSING.delete(old), 1_000);
    }
    this.client = undefined;
    this.inTransaction = false;
  }

  all<T>(sql: string, params: readonly unknown[] = []): T[] {
    return this.query(sql, params) as T[];
  }

  get<T>(sql: string, params: readonly unknown[] = []): T | undefined {
    return this.query(sql, params)[0] as T | undefined;
  }

  run(sql: string, params: readonly unknown[] = []): number {
    this.query(sql, params);
    return Number(this.client?.pq.cmdTuples() || 0);
  }

  insertId(sql: string, params: readonly unknown[] = []): number | undefined {
    const r = this.query(`${sql} RETURNING id`, params)[0] as { id: number } | undefined;
    return r ? Number(r.id) : undefined;
  }

  exec(sql: string): void {
    this.query(sql, []);
  }

  transaction<T>(fn: () => T): T {
    if (this.inTransaction) throw new CofferError('INTERNAL', 'nested catalog transaction');
    this.query('BEGIN', []);
    this.inTransaction = true;
    try {
      const r = fn();
      this.query('COMMIT', []);
      this.inTransaction = false;
      return r;
    } catch (e) {
      if (this.client && this.inTransaction) {
        try {
          this.query('ROLLBACK', []);
        } catch {
          /* the connection is gone: PostgreSQL rolled back */
        }
      }
      this.inTransaction = false;
      throw e;
    }
  }

  close(): void {
    this.drop();
  }
}

const CLOSING = new Set<NativeClient>();

/** booleans as 0/1 like SQLite columns (the schema has no BOOLEAN), null stays null, the rest as text */
function toParam(v: unknown): unknown {
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v;
}
