import { PostgresDb } from './postgres-db.js';

/**
 * The right to run the scheduler (ADR 0015). On PostgreSQL a session-level advisory lock held on a connection of its
 * own: PostgreSQL releases it when that session ends, so a replica that dies (kill -9, host down, network cut) loses
 * it as soon as its connection is gone, and another replica's next tryAcquire() gets it. On SQLite there is one
 * server per catalog: it always holds it.
 */
export interface LeaderLock {
  /** true when this process holds the lock (now or already); false when another does or PostgreSQL is unreachable */
  tryAcquire(): boolean;
  /** releases it (clean shutdown) and closes the connection */
  close(): void;
}

/** pg_try_advisory_lock key of the scheduler ("coffer" + 2) */
const SCHEDULER_LOCK = 0x636f666602;

export class PostgresLeaderLock implements LeaderLock {
  private db: PostgresDb | undefined;
  private held = false;

  constructor(private readonly url: string) {}

  tryAcquire(): boolean {
    try {
      this.db ??= new PostgresDb(this.url, 5_000);
      if (this.held) {
        // still our session? (a broken connection means PostgreSQL has released the lock)
        this.db.get('SELECT 1 AS ok');
        return true;
      }
      this.held = this.db.get<{ ok: boolean }>('SELECT pg_try_advisory_lock(?) AS ok', [SCHEDULER_LOCK])?.ok === true;
      return this.held;
    } catch {
      this.held = false;
      this.db?.close();
      this.db = undefined;
      return false;
    }
  }

  close(): void {
    try {
      if (this.held) this.db?.get('SELECT pg_advisory_unlock(?)', [SCHEDULER_LOCK]);
    } catch {
      /* the session is gone: so is the lock */
    }
    this.held = false;
    this.db?.close();
    this.db = undefined;
  }
}

/** SQLite: one server per catalog file, always the leader */
export const SOLE_LEADER: LeaderLock = { tryAcquire: () => true, close: () => undefined };
