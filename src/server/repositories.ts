import type { CodecPool } from '../engine/index.js';
import { Repository } from '../repository/index.js';
import { CofferError, asCofferError, type Logger } from '../shared/index.js';
import type { Db } from './catalog.js';
import { repositoryPassword, type RepositoryConfig } from './config.js';
import type { ServerDeps } from './deps.js';

export interface RepoStats {
  name: string;
  location: string;
  /** every blob of the repository */
  storedBytes: number;
  /** chunk blobs only (compressed, encrypted) */
  chunkBytes: number;
  /** non-zero data the restore points reference, counted once per restore point (what a copy of each would take) */
  logicalBytes: number;
  chunks: number;
  points: number;
  /** logicalBytes / chunkBytes: deduplication and compression together */
  dedupRatio: number | null;
  updatedAt: string | null;
  error: string | null;
}

/**
 * The configured repositories: opened once (the key is derived once per server run, not per request) and mirrored
 * into the catalog (restore points, storage statistics) after each job and at start-up.
 */
export class RepositoryManager {
  private readonly open = new Map<string, Promise<Repository>>();
  private readonly syncing = new Map<string, Promise<void>>();
  /** one codec pool per repository for file browsing and downloads (requests share it; jobs have their own) */
  private readonly browsePools = new Map<string, CodecPool>();

  constructor(
    private readonly db: Db,
    private readonly configs: readonly RepositoryConfig[],
    private readonly deps: ServerDeps,
    private readonly logger: Logger,
  ) {}

  names(): string[] {
    return this.configs.map((c) => c.name);
  }

  config(name: string): RepositoryConfig {
    const c = this.configs.find((x) => x.name === name);
    if (!c) throw new CofferError('NOT_FOUND', `no repository named ${JSON.stringify(name)} is configured`);
    return c;
  }

  get(name: string): Promise<Repository> {
    let p = this.open.get(name);
    if (!p) {
      const c = this.config(name);
      p = (async () => {
        const store = await this.deps.openStore(c.location, { create: false });
        return Repository.open(store, await repositoryPassword(c, this.deps.env), { logger: this.logger });
      })();
      this.open.set(name, p);
      p.catch(() => this.open.delete(name)); // a failed open is retried next time (the password file may be fixed)
    }
    return p;
  }

  /** The repository and its shared browsing pool (created on first use, closed by close()). */
  async forBrowsing(name: string): Promise<{ repo: Repository; pool: CodecPool }> {
    const repo = await this.get(name);
    let pool = this.browsePools.get(name);
    if (!pool) {
      pool = this.deps.createPool(repo.codecParams);
      this.browsePools.set(name, pool);
    }
    return { repo, pool };
  }

  async close(): Promise<void> {
    const pools = [...this.browsePools.values()];
    this.browsePools.clear();
    await Promise.allSettled(pools.map((p) => p.close()));
  }

  /** Re-reads the restore points and storage statistics of a repository into the catalog (one at a time per repo). */
  sync(name: string): Promise<void> {
    const running = this.syncing.get(name);
    if (running) return running.then(() => this.sync(name));
    const p = this.doSync(name).finally(() => this.syncing.delete(name));
    this.syncing.set(name, p);
    return p;
  }

  async syncAll(): Promise<void> {
    await Promise.all(this.names().map((n) => this.sync(n).catch((e) => this.logger.warn(`repository ${n}: ${asCofferError(e).message}`))));
  }

  private async doSync(name: string): Promise<void> {
    const now = new Date().toISOString();
    let repo: Repository;
    try {
      repo = await this.get(name);
    } catch (e) {
      const err = asCofferError(e);
      this.db
        .prepare('INSERT INTO repo_stats(repository, stored_bytes, chunk_bytes, logical_bytes, chunks, points, updated_at, error) VALUES (?, 0, 0, 0, 0, 0, ?, ?) ON CONFLICT(repository) DO UPDATE SET updated_at = excluded.updated_at, error = excluded.error')
        .run(name, now, `${err.code}: ${err.message}`);
      throw err;
    }
    const points = await repo.listPoints({ signal: this.deps.signal }, (id, e) => this.logger.warn(`repository ${name}: restore point ${id} is unreadable: ${e.message}`));
    const verified = new Map<string, { time: string; ok: boolean } | undefined>();
    for (const p of points) verified.set(p.id, await repo.lastVerification(p.id).catch(() => undefined));
    const { storedBytes, chunkBytes, chunks } = await repo.storedBytes({ signal: this.deps.signal });
    let logicalBytes = 0;
    for (const p of points) {
      for (const d of p.disks) logicalBytes += Math.min(d.sizeBytes, (d.chunkCount - d.zeroChunks) * d.chunkSizeBytes);
    }
    const upsert = this.db.prepare(
      `INSERT INTO restore_points(repository, id, vm, time, end_time, mode, parent, tags, disks, bytes_read, bytes_stored, verified)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(repository, id) DO UPDATE SET verified = excluded.verified`,
    );
    this.db.transaction(() => {
      const ids = new Set(points.map((p) => p.id));
      const known = this.db.prepare('SELECT id FROM restore_points WHERE repository = ?').all(name) as { id: string }[];
      for (const k of known) if (!ids.has(k.id)) this.db.prepare('DELETE FROM restore_points WHERE repository = ? AND id = ?').run(name, k.id);
      for (const p of points) {
        const v = verified.get(p.id);
        upsert.run(
          name,
          p.id,
          p.vm.name,
          p.time,
          p.endTime,
          p.mode,
          p.parent,
          JSON.stringify(p.tags),
          JSON.stringify(p.disks.map((d) => ({ index: d.index, sizeBytes: d.sizeBytes, chunkCount: d.chunkCount, zeroChunks: d.zeroChunks, source: d.source }))),
          p.stats.bytesRead,
          p.stats.bytesStored,
          v ? JSON.stringify(v) : null,
        );
      }
      this.db
        .prepare(
          `INSERT INTO repo_stats(repository, stored_bytes, chunk_bytes, logical_bytes, chunks, points, updated_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)
           ON CONFLICT(repository) DO UPDATE SET stored_bytes = excluded.stored_bytes, chunk_bytes = excluded.chunk_bytes, logical_bytes = excluded.logical_bytes,
             chunks = excluded.chunks, points = excluded.points, updated_at = excluded.updated_at, error = NULL`,
        )
        .run(name, storedBytes, chunkBytes, logicalBytes, chunks, points.length, now);
    })();
  }

  stats(): RepoStats[] {
    return this.configs.map((c) => {
      const r = this.db.prepare('SELECT * FROM repo_stats WHERE repository = ?').get(c.name) as
        | { stored_bytes: number; chunk_bytes: number; logical_bytes: number; chunks: number; points: number; updated_at: string; error: string | null }
        | undefined;
      return {
        name: c.name,
        location: c.location,
        storedBytes: r?.stored_bytes ?? 0,
        chunkBytes: r?.chunk_bytes ?? 0,
        logicalBytes: r?.logical_bytes ?? 0,
        chunks: r?.chunks ?? 0,
        points: r?.points ?? 0,
        dedupRatio: r && r.chunk_bytes > 0 ? Math.round((r.logical_bytes / r.chunk_bytes) * 100) / 100 : null,
        updatedAt: r?.updated_at ?? null,
        error: r?.error ?? null,
      };
    });
  }
}
