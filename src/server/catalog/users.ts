import { CofferError } from '../../shared/index.js';
import { isConstraintError, type Db } from './db.js';

export interface UserRecord {
  username: string;
  role: string;
  passwordHash: string;
  createdAt: string;
}

/** Local users (passwords as scrypt hashes, auth.ts). */
export interface UsersTable {
  get(username: string): UserRecord | undefined;
  /** by user name; without the password hash */
  list(): { username: string; role: string; createdAt: string }[];
  /** CONFLICT when the user exists */
  insert(u: UserRecord): void;
  /** false when there was no such user */
  delete(username: string): boolean;
}

export class SqlUsers implements UsersTable {
  constructor(private readonly db: Db) {}

  get(username: string): UserRecord | undefined {
    const r = this.db.get('SELECT username, role, password_hash, created_at FROM users WHERE username = ?', [
      username,
    ]) as { username: string; role: string; password_hash: string; created_at: string } | undefined;
    return r
      ? { username: r.username, role: r.role, passwordHash: r.password_hash, createdAt: r.created_at }
      : undefined;
  }

  list(): { username: string; role: string; createdAt: string }[] {
    return this.db.all('SELECT username, role, created_at AS "createdAt" FROM users ORDER BY username') as never;
  }

  insert(u: UserRecord): void {
    try {
      this.db.run('INSERT INTO users(username, role, password_hash, created_at) VALUES (?, ?, ?, ?)', [
        u.username,
        u.role,
        u.passwordHash,
        u.createdAt,
      ]);
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || isConstraintError(e))
        throw new CofferError('CONFLICT', `user ${u.username} already exists`);
      throw e;
    }
  }

  delete(username: string): boolean {
    return this.db.run('DELETE FROM users WHERE username = ?', [username]) > 0;
  }
}
