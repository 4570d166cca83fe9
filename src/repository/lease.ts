import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { BlobStore } from '../storage/index.js';
import { CofferError, systemClock, type BlobName, type Clock, type Logger, silentLogger } from '../shared/index.js';
import { JsonReader } from '../format/index.js';
import { LOCKS_PREFIX, lockBlob } from './layout.js';

export interface LeaseInfo {
  holder: string;
  host: string;
  pid: number;
  operation: string;
  /** When the holder first acquired the lease (ms since epoch); the older of two contenders wins. */
  acquiredAt: number;
  expiresAt: number;
  /** Writers: the condemned generations (gc/condemned/*) this writer has loaded (DESIGN.md §Garbage collection). */
  gcSeen?: string[];
}

/** A lease blob as found in a listing. */
export interface LeaseEntry {
  name: BlobName;
  scope: string;
  /** undefined: unreadable */
  info: LeaseInfo | undefined;
  stale: boolean;
  modifiedAt: Date;
}

export interface LeaseOptions {
  ttlMs?: number;
  clock?: Clock;
  logger?: Logger;
}

export const DEFAULT_LEASE_TTL_MS = 10 * 60 * 1000;
/** A holder stops (check() throws) when less than this is left of its last confirmed lease. */
export const LEASE_SAFETY_MS = 60 * 1000;

/**
 * A lease on a scope (e.g. backups of one VM), in the style of restic's locks but self-expiring (DESIGN.md §Locking):
 * each holder writes its own blob 'locks/<scope>/<holder>-<seq>' with an expiry, renews it every ttl/3 by writing the
 * next sequence number and deleting the previous, then lists the scope. Live leases of other holders that are not
 * younger than ours win; we delete ours and fail with LOCKED. Expired leases, and leases of dead processes on this
 * host, are stale: they are removed and never block anyone (a crashed run does not stop the next scheduled one).
 */
export class Lease {
  private seq = 0;
  private current: BlobName | undefined;
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> = Promise.resolve();
  private renewError: CofferError | undefined;
  /** expiry of the last lease blob that was written successfully */
  private confirmedExpiry = 0;

  private constructor(
    private readonly store: BlobStore,
    readonly scope: string,
    private readonly info: LeaseInfo,
    private readonly ttlMs: number,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  static async acquire(store: BlobStore, scope: string, operation: string, opts: LeaseOptions = {}): Promise<Lease> {
    const clock = opts.clock ?? systemClock;
    const ttlMs = opts.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    const now = clock.now();
    const info: LeaseInfo = {
      holder: randomBytes(8).toString('hex'),
      host: hostname(),
      pid: process.pid,
      operation,
      acquiredAt: now,
      expiresAt: now + ttlMs,
    };
    const lease = new Lease(store, scope, info, ttlMs, clock, opts.logger ?? silentLogger);
    await lease.write();
    try {
      await lease.checkConflicts();
    } catch (e) {
      await lease.release();
      throw e;
    }
    lease.timer = setInterval(
      () => {
        lease.renewing = lease.renew().catch((e: unknown) => {
          lease.renewError = e instanceof CofferError ? e : new CofferError('IO', `lease renewal failed: ${String(e)}`);
        });
      },
      Math.max(1000, Math.floor(ttlMs / 3)),
    );
    lease.timer.unref();
    return lease;
  }

  /**
   * Throws if renewing the lease failed, or if the last confirmed lease is about to expire (the process was suspended
   * or the store is slow): others may already treat the lease as dead, so the holder must not commit anything.
   */
  check(): void {
    if (this.renewError) throw this.renewError;
    if (this.clock.now() > this.confirmedExpiry - Math.min(LEASE_SAFETY_MS, this.ttlMs / 3)) {
      throw new CofferError(
        'LOCKED',
        `the lease on ${this.scope} lapsed (not renewed in time); stopping before committing anything`,
        {
          hint: 'the process was suspended or the repository storage is too slow; run again',
        },
      );
    }
  }

  get holder(): string {
    return this.info.holder;
  }

  get acquiredAt(): number {
    return this.info.acquiredAt;
  }

  /** Updates the lease content (a new operation name, the GC generations seen) and writes it at once. */
  async update(fields: { operation?: string; gcSeen?: string[] }): Promise<void> {
    if (fields.operation !== undefined) this.info.operation = fields.operation;
    if (fields.gcSeen !== undefined) this.info.gcSeen = fields.gcSeen;
    await this.renewing;
    await this.write();
  }

  private writing: Promise<void> = Promise.resolve();
  private released = false;
  /** superseded lease blobs whose delete failed */
  private readonly undeleted: BlobName[] = [];

  /**
   * Writes the next lease blob; serialized, so a renewal and an update never both delete the same predecessor.
   * Resolves once the new blob is stored: that is what others read. The predecessor is deleted after, without
   * holding up the caller (a round trip less before a backup's first chunk). Until then both blobs are listed: both
   * are this holder's (same acquiredAt, so no one else's acquire decides differently), and a GC that reads the older
   * one, without the newer `gcSeen`, only waits longer for this writer (safe, as it was while a renewal ran before).
   * A predecessor that cannot be deleted is deleted again at release.
   */
  private write(): Promise<void> {
    const put = this.writing.then(() => this.putNext());
    const deleted = put.then((prev) => {
      if (!prev) return;
      return this.store.delete(prev).catch((e: unknown) => {
        this.undeleted.push(prev); // tried again by release
        this.logger.warn(`could not delete the superseded lock ${prev}: ${(e as Error).message ?? String(e)}`);
      });
    });
    this.writing = deleted.catch(() => undefined);
    return put.then(() => undefined);
  }

  /** Puts the next lease blob; returns the one it supersedes. */
  private async putNext(): Promise<BlobName | undefined> {
    if (this.released) return undefined;
    const prev = this.current;
    const name = lockBlob(this.scope, `${this.info.holder}-${String(this.seq++).padStart(6, '0')}`);
    const expiresAt = this.clock.now() + this.ttlMs;
    this.info.expiresAt = expiresAt;
    await this.store.put(name, Buffer.from(JSON.stringify(this.info)));
    this.confirmedExpiry = expiresAt;
    this.current = name;
    return prev;
  }

  async renew(): Promise<void> {
    if (!this.current) return;
    await this.write();
  }

  private async checkConflicts(): Promise<void> {
    const now = this.clock.now();
    for await (const b of this.store.list(`${LOCKS_PREFIX}${this.scope}/`)) {
      if (b.name.startsWith(`${LOCKS_PREFIX}${this.scope}/${this.info.holder}-`)) continue;
      let other: LeaseInfo;
      try {
        other = decodeLease(await this.store.get(b.name), b.name);
      } catch (e) {
        if (e instanceof CofferError && e.code === 'NOT_FOUND') continue; // renewed or released meanwhile
        this.logger.warn(`removing unreadable lock ${b.name}`);
        await this.store.delete(b.name);
        continue;
      }
      if (isStale(other, now)) {
        this.logger.warn(`removing stale lock ${b.name} of ${other.host} pid ${other.pid} (${other.operation})`);
        await this.store.delete(b.name);
        continue;
      }
      // A live lease acquired before ours, or in the same millisecond, wins: an established holder always keeps its
      // lease, and two contenders that tie both back off (neither proceeds; both report LOCKED).
      if (other.acquiredAt <= this.info.acquiredAt) {
        throw new CofferError(
          'LOCKED',
          `${this.scope} is locked by ${other.operation} on ${other.host} (pid ${other.pid}) ` +
            `since ${new Date(other.acquiredAt).toISOString()}`,
          {
            hint: 'wait for it to finish; a lock of a process that died expires by itself',
            details: {
              scope: this.scope,
              host: other.host,
              pid: other.pid,
              operation: other.operation,
              expiresAt: new Date(other.expiresAt).toISOString(),
            },
          },
        );
      }
    }
  }

  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.renewing;
    this.released = true;
    await this.writing;
    const names = [...this.undeleted.splice(0), ...(this.current ? [this.current] : [])];
    this.current = undefined;
    await Promise.all(names.map((n) => this.store.delete(n).catch(() => undefined)));
  }
}

/**
 * Every lease blob under `locks/` (or one scope), read and judged stale or not. The listing is repeated once and the
 * union taken: a renewal writes the new blob before deleting the old one, so a holder renewing during one listing is
 * still seen by the other (renewals are minutes apart).
 */
export async function readLeases(store: BlobStore, scope?: string, clock: Clock = systemClock): Promise<LeaseEntry[]> {
  const prefix = scope ? `${LOCKS_PREFIX}${scope}/` : LOCKS_PREFIX;
  const seen = new Map<string, { name: BlobName; modifiedAt: Date }>();
  for (let pass = 0; pass < 2; pass++) {
    for await (const b of store.list(prefix)) seen.set(b.name, { name: b.name, modifiedAt: b.modifiedAt });
  }
  const now = clock.now();
  const out: LeaseEntry[] = [];
  for (const { name, modifiedAt } of seen.values()) {
    const rest = name.slice(LOCKS_PREFIX.length);
    const slash = rest.indexOf('/');
    if (slash <= 0) continue;
    let info: LeaseInfo | undefined;
    try {
      info = decodeLease(await store.get(name), name);
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') continue; // renewed or released meanwhile
      if (!(e instanceof CofferError) || e.code !== 'CORRUPT') throw e;
    }
    // an unreadable lease counts as live until it is older than a lease could be
    const stale = info ? isStale(info, now) : now - modifiedAt.getTime() > DEFAULT_LEASE_TTL_MS;
    out.push({ name, scope: rest.slice(0, slash), info, stale, modifiedAt });
  }
  return out;
}

function decodeLease(bytes: Uint8Array, name: string): LeaseInfo {
  const r = JsonReader.parse(`lock ${name}`, bytes);
  const gcSeen = r.has('gcSeen') ? r.strings('gcSeen', 100_000) : undefined;
  return {
    ...(gcSeen ? { gcSeen } : {}),
    holder: r.str('holder', 64),
    host: r.str('host', 256),
    pid: r.int('pid'),
    operation: r.str('operation', 256),
    acquiredAt: r.int('acquiredAt'),
    expiresAt: r.int('expiresAt'),
  };
}

function isStale(l: LeaseInfo, now: number): boolean {
  if (l.expiresAt < now) return true;
  if (l.host === hostname() && l.pid !== process.pid) {
    try {
      process.kill(l.pid, 0);
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
  return false;
}
