import type { Db } from './db.js';

/** A restore point as the catalog caches it (the repository is the truth; repositories.ts re-reads it). */
export interface RestorePointRecord {
  repository: string;
  id: string;
  vm: string;
  time: string;
  endTime: string;
  mode: string;
  parent: string | null;
  tags: unknown;
  disks: unknown;
  bytesRead: number;
  bytesStored: number;
  /** the last verification of the point ({time, ok}), or null */
  verification: unknown;
  /**
   * {state (suspicious / failed / verified / clean), suspicious, score (0..100 or null), reasons, verification, check}
   * (DESIGN.md §Ransomware signals), or null when not known yet
   */
  status?: unknown;
}

export interface RestorePointFilter {
  vm?: string;
  repository?: string;
  /** the sort key (time, repository, id) of the last item of the previous page */
  before?: [string, string, string];
  limit: number;
}

/** The newest restore point of a VM (for RPO compliance). */
export interface NewestPoint {
  id: string;
  repository: string;
  time: string;
  endTime: string;
}

/** The catalog's cache of every configured repository's restore points. */
export interface RestorePointsTable {
  /** newest first (time, repository, id descending) */
  list(f: RestorePointFilter): RestorePointRecord[];
  /** the repositories holding a point with this id (in `repository` only, when given) */
  repositoriesOf(id: string, repository?: string): string[];
  /** the VM of one point */
  vmOf(repository: string, id: string): string | undefined;
  /** every VM with at least one restore point */
  vms(): string[];
  /** the VM's point with the latest end time, in one of `repositories` when given */
  newest(vm: string, repositories?: readonly string[]): NewestPoint | undefined;
  count(vm: string): number;
  /** points, stored and read bytes per day (YYYY-MM-DD of end_time) since `sinceDay` */
  dailyTrend(sinceDay: string): { day: string; points: number; bytesStored: number; bytesRead: number }[];
  /**
   * Makes the cache of one repository this list of points, atomically: points no longer there go, new ones come;
   * a known point only gets its verification and status updated (the rest of a restore point never changes).
   */
  replace(repository: string, points: readonly Omit<RestorePointRecord, 'repository'>[]): void;
}

interface Row {
  repository: string;
  id: string;
  vm: string;
  time: string;
  end_time: string;
  mode: string;
  parent: string | null;
  tags: string;
  disks: string;
  bytes_read: number;
  bytes_stored: number;
  verified: string | null;
  status: string | null;
}

const fromRow = (r: Row): RestorePointRecord => ({
  id: r.id,
  repository: r.repository,
  vm: r.vm,
  time: r.time,
  endTime: r.end_time,
  mode: r.mode,
  parent: r.parent,
  tags: JSON.parse(r.tags),
  disks: JSON.parse(r.disks),
  bytesRead: r.bytes_read,
  bytesStored: r.bytes_stored,
  verification: r.verified ? JSON.parse(r.verified) : null,
  status: r.status ? JSON.parse(r.status) : null,
});

export class SqlRestorePoints implements RestorePointsTable {
  constructor(private readonly db: Db) {}

  list(f: RestorePointFilter): RestorePointRecord[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (f.vm) where.push('vm = ?') && args.push(f.vm);
    if (f.repository) where.push('repository = ?') && args.push(f.repository);
    if (f.before) where.push('(time, repository, id) < (?, ?, ?)') && args.push(...f.before);
    const rows = this.db.all(
      `SELECT * FROM restore_points ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY time DESC, ` +
        'repository DESC, id DESC LIMIT ?',
      [...args, f.limit],
    ) as Row[];
    return rows.map(fromRow);
  }

  repositoriesOf(id: string, repository?: string): string[] {
    const rows = (
      repository
        ? this.db.all('SELECT repository FROM restore_points WHERE id = ? AND repository = ?', [id, repository])
        : this.db.all('SELECT repository FROM restore_points WHERE id = ?', [id])
    ) as { repository: string }[];
    return rows.map((r) => r.repository);
  }

  vmOf(repository: string, id: string): string | undefined {
    return (
      this.db.get('SELECT vm FROM restore_points WHERE repository = ? AND id = ?', [repository, id]) as
        | { vm: string }
        | undefined
    )?.vm;
  }

  vms(): string[] {
    return (this.db.all('SELECT DISTINCT vm FROM restore_points') as { vm: string }[]).map((r) => r.vm);
  }

  newest(vm: string, repositories?: readonly string[]): NewestPoint | undefined {
    const r = (
      repositories && repositories.length > 0
        ? this.db.get(
            'SELECT id, repository, time, end_time FROM restore_points WHERE vm = ? AND repository IN ' +
              `(${repositories.map(() => '?').join(',')}) ORDER BY end_time DESC LIMIT 1`,
            [vm, ...repositories],
          )
        : this.db.get(
            'SELECT id, repository, time, end_time FROM restore_points WHERE vm = ? ORDER BY end_time DESC LIMIT 1',
            [vm],
          )
    ) as { id: string; repository: string; time: string; end_time: string } | undefined;
    return r ? { id: r.id, repository: r.repository, time: r.time, endTime: r.end_time } : undefined;
  }

  count(vm: string): number {
    return (this.db.get('SELECT COUNT(*) AS n FROM restore_points WHERE vm = ?', [vm]) as { n: number }).n;
  }

  dailyTrend(sinceDay: string): { day: string; points: number; bytesStored: number; bytesRead: number }[] {
    return this.db.all(
      'SELECT substr(end_time, 1, 10) AS day, COUNT(*) AS points, SUM(bytes_stored) AS "bytesStored", ' +
        'SUM(bytes_read) AS "bytesRead" FROM restore_points ' +
        'WHERE substr(end_time, 1, 10) >= ? GROUP BY day ORDER BY day',
      [sinceDay],
    ) as never;
  }

  replace(repository: string, points: readonly Omit<RestorePointRecord, 'repository'>[]): void {
    const upsertSql =
      'INSERT INTO restore_points(repository, id, vm, time, end_time, mode, parent, tags, disks, bytes_read, ' +
      `bytes_stored, verified, status)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(repository, id) DO UPDATE SET verified = excluded.verified, status = excluded.status`;
    this.db.transaction(() => {
      const ids = new Set(points.map((p) => p.id));
      const known = this.db.all('SELECT id FROM restore_points WHERE repository = ?', [repository]) as {
        id: string;
      }[];
      for (const k of known)
        if (!ids.has(k.id))
          this.db.run('DELETE FROM restore_points WHERE repository = ? AND id = ?', [repository, k.id]);
      for (const p of points) {
        this.db.run(upsertSql, [
          repository,
          p.id,
          p.vm,
          p.time,
          p.endTime,
          p.mode,
          p.parent,
          JSON.stringify(p.tags),
          JSON.stringify(p.disks),
          p.bytesRead,
          p.bytesStored,
          p.verification ? JSON.stringify(p.verification) : null,
          p.status ? JSON.stringify(p.status) : null,
        ]);
      }
    });
  }
}
