import type { Db } from './db.js';

export interface AuditEntry {
  actor: string;
  action: string;
  target: string;
  remote: string;
  status: number;
  details?: Record<string, unknown>;
}

export interface AuditRecord {
  id: number;
  time: string;
  actor: string;
  action: string;
  target: string;
  remote: string;
  status: number;
  details: unknown;
}

/** The audit log: append-only; listed newest first. */
export interface AuditTable {
  append(e: AuditEntry, now?: Date): void;
  /** newest first, ids below `beforeId`; at most `limit` */
  list(q: { actor?: string; action?: string; beforeId?: number; limit: number }): AuditRecord[];
  /** deletes rows older than `time`; returns how many */
  deleteBefore(time: Date): number;
}

export class SqlAudit implements AuditTable {
  constructor(private readonly db: Db) {}

  append(e: AuditEntry, now = new Date()): void {
    this.db.run(
      'INSERT INTO audit(time, actor, action, target, remote, status, details) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [now.toISOString(), e.actor, e.action, e.target, e.remote, e.status, JSON.stringify(e.details ?? {})],
    );
  }

  deleteBefore(time: Date): number {
    return this.db.run('DELETE FROM audit WHERE time < ?', [time.toISOString()]);
  }

  list(q: { actor?: string; action?: string; beforeId?: number; limit: number }): AuditRecord[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.actor) where.push('actor = ?') && args.push(q.actor);
    if (q.action) where.push('action = ?') && args.push(q.action);
    if (q.beforeId !== undefined) where.push('id < ?') && args.push(q.beforeId);
    const rows = this.db.all(
      `SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`,
      [...args, q.limit],
    ) as Record<string, unknown>[];
    return rows.map((r) => ({ ...r, details: JSON.parse(r.details as string) as unknown }) as AuditRecord);
  }
}
