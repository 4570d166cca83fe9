import type { Db } from './db.js';

/** Whether each VM's RPO breach has been notified (a breach is notified once, until the VM is compliant again). */
export interface SlaStateTable {
  get(vm: string): { breached: boolean; since: string } | undefined;
  set(vm: string, breached: boolean, since: string): void;
}

export class SqlSlaState implements SlaStateTable {
  constructor(private readonly db: Db) {}

  get(vm: string): { breached: boolean; since: string } | undefined {
    const r = this.db.get('SELECT breached, since FROM sla_state WHERE vm = ?', [vm]) as
      | { breached: number; since: string }
      | undefined;
    return r ? { breached: r.breached === 1, since: r.since } : undefined;
  }

  set(vm: string, breached: boolean, since: string): void {
    this.db.run(
      'INSERT INTO sla_state(vm, breached, since) VALUES (?, ?, ?) ' +
        'ON CONFLICT(vm) DO UPDATE SET breached = excluded.breached, since = excluded.since',
      [vm, breached ? 1 : 0, since],
    );
  }
}
