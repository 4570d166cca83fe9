import type { Db } from './db.js';

export interface TokenRecord {
  id: string;
  name: string;
  role: string;
  /** sha256 of the token (the token itself is never stored) */
  hash: string;
  kind: 'api' | 'session';
  /** the user of a session token */
  username: string | null;
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
}

/** What the API shows of an API token (never the hash). */
export interface TokenInfo {
  id: string;
  name: string;
  role: string;
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
}

/** API and session tokens. */
export interface TokensTable {
  insert(t: TokenRecord): void;
  findByHash(hash: string): TokenRecord | undefined;
  touch(id: string, time: string): void;
  /** API tokens (not sessions), oldest first */
  listApi(): TokenInfo[];
  /** revokes an API token; false when there was none */
  deleteApi(id: string): boolean;
  /**
   * ends every session of a user and revokes every API token the user created
   * (and, transitively, the tokens those tokens created)
   */
  deleteForUser(username: string): void;
  /** revokes one token of any kind (logout); false when there was none */
  revoke(id: string): boolean;
}

export class SqlTokens implements TokensTable {
  constructor(private readonly db: Db) {}

  insert(t: TokenRecord): void {
    this.db.run(
      'INSERT INTO tokens(id, name, role, hash, kind, username, created_at, created_by, expires_at) ' +
        'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [t.id, t.name, t.role, t.hash, t.kind, t.username, t.createdAt, t.createdBy, t.expiresAt],
    );
  }

  findByHash(hash: string): TokenRecord | undefined {
    const r = this.db.get('SELECT * FROM tokens WHERE hash = ?', [hash]) as Record<string, string | null> | undefined;
    if (!r) return undefined;
    return {
      id: r.id!,
      name: r.name!,
      role: r.role!,
      hash: r.hash!,
      kind: r.kind as TokenRecord['kind'],
      username: r.username ?? null,
      createdAt: r.created_at!,
      createdBy: r.created_by!,
      expiresAt: r.expires_at ?? null,
    };
  }

  touch(id: string, time: string): void {
    this.db.run('UPDATE tokens SET last_used_at = ? WHERE id = ?', [time, id]);
  }

  listApi(): TokenInfo[] {
    return this.db.all(
      'SELECT id, name, role, created_at AS "createdAt", created_by AS "createdBy", expires_at AS "expiresAt", ' +
        `last_used_at AS "lastUsedAt" FROM tokens WHERE kind = 'api' ORDER BY created_at`,
    ) as TokenInfo[];
  }

  deleteApi(id: string): boolean {
    return this.db.run("DELETE FROM tokens WHERE id = ? AND kind = 'api'", [id]) > 0;
  }

  deleteForUser(username: string): void {
    this.db.run('DELETE FROM tokens WHERE username = ?', [username]);
    // API tokens the user created, then the tokens created with those tokens, and so on
    let creators = [`user:${username}`];
    for (let round = 0; creators.length > 0 && round < 100; round++) {
      const next: string[] = [];
      for (const c of creators) {
        for (const r of this.db.all<{ id: string; name: string }>('SELECT id, name FROM tokens WHERE created_by = ?', [
          c,
        ])) {
          this.db.run('DELETE FROM tokens WHERE id = ?', [r.id]);
          next.push(`token:${r.name} (${r.id})`);
        }
      }
      creators = next;
    }
  }

  revoke(id: string): boolean {
    return this.db.run('DELETE FROM tokens WHERE id = ?', [id]) > 0;
  }
}
