import type { Db } from './db.js';

export interface RepoStatsRecord {
  storedBytes: number;
  chunkBytes: number;
  logicalBytes: number;
  chunks: number;
  points: number;
  updatedAt: string;
  error: string | null;
}

/** Storage statistics of each configured repository, as last read (repositories.ts). */
export interface RepoStatsTable {
  get(repository: string): RepoStatsRecord | undefined;
  /** a successful read: every figure replaced, the error cleared */
  record(repository: string, s: Omit<RepoStatsRecord, 'error'>): void;
  /** a failed read: the figures of the last good read stay, the error and time change */
  recordError(repository: string, updatedAt: string, error: string): void;
}

export class SqlRepoStats implements RepoStatsTable {
  constructor(private readonly db: Db) {}

  get(repository: string): RepoStatsRecord | undefined {
    const r = this.db.get('SELECT * FROM repo_stats WHERE repository = ?', [repository]) as
      | {
          stored_bytes: number;
          chunk_bytes: number;
          logical_bytes: number;
          chunks: number;
          points: number;
          updated_at: string;
          error: string | null;
        }
      | undefined;
    if (!r) return undefined;
    return {
      storedBytes: r.stored_bytes,
      chunkBytes: r.chunk_bytes,
      logicalBytes: r.logical_bytes,
      chunks: r.chunks,
      points: r.points,
      updatedAt: r.updated_at,
      error: r.error,
    };
  }

  record(repository: string, s: Omit<RepoStatsRecord, 'error'>): void {
    this.db.run(
      'INSERT INTO repo_stats(repository, stored_bytes, chunk_bytes, logical_bytes, chunks, points, ' +
        'updated_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)\n' +
        '         ON CONFLICT(repository) DO UPDATE SET stored_bytes = excluded.stored_bytes, ' +
        'chunk_bytes = excluded.chunk_bytes, logical_bytes = excluded.logical_bytes,\n' +
        '           chunks = excluded.chunks, points = excluded.points, ' +
        'updated_at = excluded.updated_at, error = NULL',
      [repository, s.storedBytes, s.chunkBytes, s.logicalBytes, s.chunks, s.points, s.updatedAt],
    );
  }

  recordError(repository: string, updatedAt: string, error: string): void {
    this.db.run(
      'INSERT INTO repo_stats(repository, stored_bytes, chunk_bytes, logical_bytes, chunks, points, ' +
        'updated_at, error) VALUES (?, 0, 0, 0, 0, 0, ?, ?) ' +
        'ON CONFLICT(repository) DO UPDATE SET updated_at = excluded.updated_at, error = excluded.error',
      [repository, updatedAt, error],
    );
  }
}
