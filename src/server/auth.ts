import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { CofferError } from '../shared/index.js';
import type { Catalog } from './catalog/index.js';

export const ROLES = ['admin', 'operator', 'restore-operator', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

/** What each role may do (the RBAC matrix of docs/DESIGN.md §Server; tests check every cell). */
export const PERMISSIONS = {
  /** read restore points, VMs, policies, repositories, jobs and their logs, metrics */
  read: ['admin', 'operator', 'restore-operator', 'viewer'],
  /** start restore jobs; download file content from restore points (GET .../files/content) */
  restore: ['admin', 'operator', 'restore-operator'],
  /** start backup, verify and prune jobs, cancel jobs */
  operate: ['admin', 'operator'],
  /** create, change, delete policies */
  policies: ['admin', 'operator'],
  /** users, tokens, audit log */
  admin: ['admin'],
} as const satisfies Record<string, readonly Role[]>;
export type Permission = keyof typeof PERMISSIONS;

/**
 * Roles a token may have: the user roles, and `proxy` (a `coffer proxy` data mover): a proxy token opens only the
 * proxy protocol (authenticateProxy), and no other route (authenticate refuses it).
 */
export const TOKEN_ROLES = [...ROLES, 'proxy'] as const;
export type TokenRole = (typeof TOKEN_ROLES)[number];

export function isTokenRole(s: string): s is TokenRole {
  return (TOKEN_ROLES as readonly string[]).includes(s);
}

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

export function can(role: Role, p: Permission): boolean {
  return (PERMISSIONS[p] as readonly Role[]).includes(role);
}

export interface Principal {
  /** 'user:alice', 'token:ci (3f2a...)' */
  actor: string;
  role: Role;
  tokenId: string;
}

// ---- passwords: scrypt from node:crypto, parameters stored with the hash

const SCRYPT = { N: 16384, r: 8, p: 1, keyLen: 32 };

function scryptAsync(password: string, salt: Buffer, N: number, r: number, p: number, keyLen: number): Promise<Buffer> {
  return new Promise((res, rej) =>
    scrypt(password, salt, keyLen, { N, r, p, maxmem: 128 * N * r * 2 }, (e, k) => (e ? rej(e) : res(k))),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p, SCRYPT.keyLen);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function checkPassword(password: string, stored: string): Promise<boolean> {
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(stored);
  if (!m) return false;
  const want = Buffer.from(m[5]!, 'base64');
  const got = await scryptAsync(
    password,
    Buffer.from(m[4]!, 'base64'),
    Number(m[1]),
    Number(m[2]),
    Number(m[3]),
    want.length,
  );
  return got.length === want.length && timingSafeEqual(got, want);
}

/** A password hash of a password nobody has, so that an unknown user costs as much as a wrong password. */
let dummyHash: Promise<string> | undefined;
export function dummyPasswordHash(): Promise<string> {
  return (dummyHash ??= hashPassword(randomBytes(16).toString('hex')));
}

// ---- tokens: 'cft_' + 32 random bytes; only sha256(token) is stored

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export interface CreatedToken {
  id: string;
  name: string;
  role: TokenRole;
  token: string;
  expiresAt: string | null;
}

export function createToken(
  catalog: Pick<Catalog, 'tokens' | 'audit'>,
  opts: {
    role: TokenRole;
    name: string;
    createdBy: string;
    kind?: 'api' | 'session';
    username?: string;
    expiresAt?: Date;
    remote?: string;
  },
): CreatedToken {
  const id = randomBytes(6).toString('hex');
  const token = `cft_${randomBytes(32).toString('base64url')}`;
  const now = new Date().toISOString();
  const expiresAt = opts.expiresAt?.toISOString() ?? null;
  catalog.tokens.insert({
    id,
    name: opts.name,
    role: opts.role,
    hash: hashToken(token),
    kind: opts.kind ?? 'api',
    username: opts.username ?? null,
    createdAt: now,
    createdBy: opts.createdBy,
    expiresAt,
  });
  if ((opts.kind ?? 'api') === 'api') {
    catalog.audit.append({
      actor: opts.createdBy,
      action: 'token.create',
      target: `token:${id}`,
      remote: opts.remote ?? 'local',
      status: 201,
      details: { name: opts.name, role: opts.role },
    });
  }
  return { id, name: opts.name, role: opts.role, token, expiresAt };
}

/** The principal of a bearer token, or UNAUTHENTICATED with one message for every kind of failure (no oracle). */
export function authenticate(
  catalog: Pick<Catalog, 'tokens' | 'users'>,
  header: string | undefined,
  now = new Date(),
): Principal {
  const fail = () =>
    new CofferError('UNAUTHENTICATED', 'authentication required: send a valid token as "Authorization: Bearer TOKEN"');
  const m = header ? /^Bearer ([A-Za-z0-9_-]{1,200})$/.exec(header.trim()) : null;
  if (!m) throw fail();
  const row = catalog.tokens.findByHash(hashToken(m[1]!));
  if (!row || !isRole(row.role) || (row.expiresAt && row.expiresAt <= now.toISOString())) throw fail();
  if (row.username) {
    // a session dies with its user, and takes the user's current role
    const u = catalog.users.get(row.username);
    if (!u || !isRole(u.role)) throw fail();
    row.role = u.role;
  }
  catalog.tokens.touch(row.id, now.toISOString());
  const actor = row.kind === 'session' ? `user:${row.username}` : `token:${row.name} (${row.id})`;
  return { actor, role: row.role as Role, tokenId: row.id };
}

/** The token id of a proxy token (role `proxy`), or PROXY_REFUSED (unknown, revoked, expired, another role). */
export function authenticateProxy(
  catalog: Pick<Catalog, 'tokens'>,
  header: string | undefined,
  now = new Date(),
): { tokenId: string; actor: string } {
  const m = header ? /^Bearer ([A-Za-z0-9_-]{1,200})$/.exec(header.trim()) : null;
  const row = m ? catalog.tokens.findByHash(hashToken(m[1]!)) : undefined;
  if (row?.role !== 'proxy' || row.kind !== 'api' || (row.expiresAt && row.expiresAt <= now.toISOString()))
    throw new CofferError(
      'PROXY_REFUSED',
      'the server refused this proxy: its token is unknown, revoked, expired or not a proxy token (role proxy)',
    );
  catalog.tokens.touch(row.id, now.toISOString());
  return { tokenId: row.id, actor: `token:${row.name} (${row.id})` };
}

/**
 * Password guessing: at most `maxFailures` failed logins per remote address in a sliding window; beyond that every
 * login from the address fails (the same 401, no password is checked) until the window has passed.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, number[]>();

  constructor(
    readonly maxFailures: number,
    readonly windowMs: number,
  ) {}

  private recent(remote: string, now: number): number[] {
    const list = (this.failures.get(remote) ?? []).filter((t) => now - t < this.windowMs);
    if (list.length) this.failures.set(remote, list);
    else this.failures.delete(remote);
    return list;
  }

  blocked(remote: string, now = Date.now()): boolean {
    return this.recent(remote, now).length >= this.maxFailures;
  }

  fail(remote: string, now = Date.now()): void {
    const list = this.recent(remote, now);
    list.push(now);
    this.failures.set(remote, list);
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!); // bounded memory
  }
}

export async function login(
  catalog: Pick<Catalog, 'tokens' | 'users' | 'audit'>,
  username: string,
  password: string,
  sessionHours: number,
  remote: string,
  throttle?: LoginThrottle,
): Promise<CreatedToken & { username: string }> {
  if (throttle?.blocked(remote)) {
    catalog.audit.append({
      actor: `user:${username.slice(0, 64)}`,
      action: 'auth.login',
      target: 'session',
      remote,
      status: 401,
      details: { throttled: true },
    });
    throw new CofferError('UNAUTHENTICATED', 'wrong user name or password');
  }
  const row = catalog.users.get(username);
  const ok = await checkPassword(password, row?.passwordHash ?? (await dummyPasswordHash()));
  if (!row || !ok || !isRole(row.role)) {
    catalog.audit.append({
      actor: `user:${username.slice(0, 64)}`,
      action: 'auth.login',
      target: 'session',
      remote,
      status: 401,
    });
    throttle?.fail(remote);
    throw new CofferError('UNAUTHENTICATED', 'wrong user name or password');
  }
  const t = createToken(catalog, {
    role: row.role,
    name: `session of ${row.username}`,
    createdBy: `user:${row.username}`,
    kind: 'session',
    username: row.username,
    expiresAt: new Date(Date.now() + sessionHours * 3600_000),
  });
  catalog.audit.append({
    actor: `user:${row.username}`,
    action: 'auth.login',
    target: `session:${t.id}`,
    remote,
    status: 200,
  });
  return { ...t, username: row.username };
}

export async function createUser(
  catalog: Pick<Catalog, 'users' | 'audit'>,
  username: string,
  password: string,
  role: Role,
  createdBy: string,
  remote = 'local',
): Promise<void> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/.test(username))
    throw new CofferError('USAGE', 'username: must be 1-64 letters, digits, ".", "_", "@" or "-"');
  if (password.length < 8) throw new CofferError('USAGE', 'password: must be at least 8 characters');
  const hash = await hashPassword(password);
  catalog.users.insert({ username, role, passwordHash: hash, createdAt: new Date().toISOString() });
  catalog.audit.append({
    actor: createdBy,
    action: 'user.create',
    target: `user:${username}`,
    remote,
    status: 201,
    details: { role },
  });
}
