import type { Db } from './db.js';

import type { ProxyCapabilities } from '../../jobs/index.js';

export type { ProxyCapabilities };

export interface ProxyRecord {
  /** its lease owner in jobs.lease_owner: `proxy:NAME` for a remote proxy, HOST:PID:RANDOM for a server's own */
  owner: string;
  name: string;
  local: boolean;
  version: string;
  /** the API token it registered with (remote proxies) */
  tokenId: string | null;
  /** the process a remote proxy runs as (HOST:PID:RANDOM, sent at registration); null for a server's own */
  instance: string | null;
  capabilities: ProxyCapabilities;
  concurrency: number;
  drained: boolean;
  registeredAt: string;
  lastHeartbeat: string;
}

/** The backup proxies: registration, heartbeats, drain. */
export interface ProxiesTable {
  /** registers (or re-registers) a proxy; keeps its drained flag */
  upsert(p: Omit<ProxyRecord, 'drained'>): void;
  heartbeat(owner: string, now: string): void;
  /** by owner or by name; false when there is none */
  setDrained(ref: string, drained: boolean): ProxyRecord | undefined;
  get(ref: string): ProxyRecord | undefined;
  list(): ProxyRecord[];
  /** forgets local proxies whose heartbeat is older than `before` (server processes that are gone) */
  forgetStaleLocal(before: string): void;
}

interface Row {
  owner: string;
  name: string;
  local: number;
  version: string;
  token_id: string | null;
  instance: string | null;
  capabilities: string;
  concurrency: number;
  drained: number;
  registered_at: string;
  last_heartbeat: string;
}

function fromRow(r: Row): ProxyRecord {
  return {
    owner: r.owner,
    name: r.name,
    local: Number(r.local) === 1,
    version: r.version,
    tokenId: r.token_id,
    instance: r.instance ?? null,
    capabilities: JSON.parse(r.capabilities),
    concurrency: Number(r.concurrency),
    drained: Number(r.drained) === 1,
    registeredAt: r.registered_at,
    lastHeartbeat: r.last_heartbeat,
  };
}

export class SqlProxies implements ProxiesTable {
  constructor(private readonly db: Db) {}

  upsert(p: Omit<ProxyRecord, 'drained'>): void {
    this.db.run(
      'INSERT INTO proxies(owner, name, local, version, token_id, instance, capabilities, concurrency, drained, ' +
        'registered_at, last_heartbeat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) ' +
        'ON CONFLICT (owner) DO UPDATE SET name = excluded.name, local = excluded.local, version = excluded.version, ' +
        'token_id = excluded.token_id, instance = excluded.instance, ' +
        'capabilities = excluded.capabilities, concurrency = excluded.concurrency, ' +
        'registered_at = excluded.registered_at, last_heartbeat = excluded.last_heartbeat',
      [
        p.owner,
        p.name,
        p.local ? 1 : 0,
        p.version,
        p.tokenId,
        p.instance,
        JSON.stringify(p.capabilities),
        p.concurrency,
        p.registeredAt,
        p.lastHeartbeat,
      ],
    );
  }

  heartbeat(owner: string, now: string): void {
    this.db.run('UPDATE proxies SET last_heartbeat = ? WHERE owner = ?', [now, owner]);
  }

  setDrained(ref: string, drained: boolean): ProxyRecord | undefined {
    const p = this.get(ref);
    if (!p) return undefined;
    this.db.run('UPDATE proxies SET drained = ? WHERE owner = ?', [drained ? 1 : 0, p.owner]);
    return { ...p, drained };
  }

  get(ref: string): ProxyRecord | undefined {
    const r = this.db.get<Row>('SELECT * FROM proxies WHERE owner = ? OR (name = ? AND local = 0) ORDER BY local', [
      ref,
      ref,
    ]);
    return r ? fromRow(r) : undefined;
  }

  list(): ProxyRecord[] {
    return this.db.all<Row>('SELECT * FROM proxies ORDER BY local DESC, name').map(fromRow);
  }

  forgetStaleLocal(before: string): void {
    this.db.run('DELETE FROM proxies WHERE local = 1 AND last_heartbeat < ?', [before]);
  }
}
