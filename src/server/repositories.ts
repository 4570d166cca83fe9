import { bootSummary, pointState, type BootSummary, type CodecPool } from '../engine/index.js';
import { Repository } from '../repository/index.js';
import { CofferError, asCofferError, type Logger } from '../shared/index.js';
import type { Catalog } from './catalog/index.js';
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
  /** the boot part of each point's newest check record, by "repository/point" and that record's time (read once) */
  private readonly boots = new Map<string, { time: string; boot: BootSummary | null }>();

  constructor(
    private readonly catalog: Pick<Catalog, 'restorePoints' | 'repoStats'>,
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
    await Promise.all(
      this.names().map((n) =>
        this.sync(n).catch((e) => this.logger.warn(`repository ${n}: ${asCofferError(e).message}`)),
      ),
    );
  }

  private async doSync(name: string): Promise<void> {
    const now = new Date().toISOString();
    let repo: Repository;
    try {
      repo = await this.get(name);
    } catch (e) {
      const err = asCofferError(e);
      this.catalog.repoStats.recordError(name, now, `${err.code}: ${err.message}`);
      throw err;
    }
    const points = await repo.listPoints({ signal: this.deps.signal }, (id, e) =>
      this.logger.warn(`repository ${name}: restore point ${id} is unreadable: ${e.message}`),
    );
    const verified = new Map<string, { time: string; ok: boolean } | undefined>();
    const checked = new Map<string, { time: string; ok: boolean } | undefined>();
    const indicated = new Map<string, { time: string; found: boolean } | undefined>();
    for (const p of points) {
      verified.set(p.id, await repo.lastVerification(p.id).catch(() => undefined));
      checked.set(p.id, await repo.lastCheck(p.id).catch(() => undefined));
      await this.readBoot(name, repo, p.id, checked.get(p.id));
      indicated.set(p.id, await repo.lastIndicators(p.id).catch(() => undefined));
    }
    const ids = new Set(points.map((p) => `${name}/${p.id}`));
    for (const k of this.boots.keys()) if (k.startsWith(`${name}/`) && !ids.has(k)) this.boots.delete(k);
    // active holds per point (a suspicious point's incident holds show in the API and the console)
    const holds = new Map<string, { until?: string; reason?: string }[]>();
    for (const h of await repo.listHolds(undefined, { signal: this.deps.signal }).catch(() => [])) {
      if (h.until !== undefined && Date.parse(h.until) <= Date.now()) continue;
      holds.set(h.pointId, [...(holds.get(h.pointId) ?? []), h]);
    }
    const { storedBytes, chunkBytes, chunks } = await repo.storedBytes({ signal: this.deps.signal });
    let logicalBytes = 0;
    for (const p of points) {
      for (const d of p.disks) logicalBytes += Math.min(d.sizeBytes, (d.chunkCount - d.zeroChunks) * d.chunkSizeBytes);
    }
    this.catalog.restorePoints.replace(
      name,
      points.map((p) => ({
        id: p.id,
        vm: p.vm.name,
        time: p.time,
        endTime: p.endTime,
        mode: p.mode,
        parent: p.parent,
        tags: p.tags,
        disks: p.disks.map((d) => ({
          index: d.index,
          sizeBytes: d.sizeBytes,
          chunkCount: d.chunkCount,
          zeroChunks: d.zeroChunks,
          source: d.source,
        })),
        bytesRead: p.stats.bytesRead,
        bytesStored: p.stats.bytesStored,
        verification: verified.get(p.id) ?? null,
        status: withBoot(
          pointState(p, verified.get(p.id), checked.get(p.id), {
            indicators: indicated.get(p.id),
            holds: holds.get(p.id) ?? [],
          }),
          this.boots.get(`${name}/${p.id}`)?.boot ?? null,
        ),
      })),
    );
    this.catalog.repoStats.record(name, {
      storedBytes,
      chunkBytes,
      logicalBytes,
      chunks,
      points: points.length,
      updatedAt: now,
    });
  }

  /**
   * The boot summary of a point's newest check record (FORMAT.md §8.1 `boot`), kept with that record's time: the
   * record is read again only when a newer check was recorded. Unreadable: none (records describe).
   */
  private async readBoot(
    name: string,
    repo: Repository,
    pointId: string,
    check: { time: string; ok: boolean } | undefined,
  ): Promise<void> {
    const key = `${name}/${pointId}`;
    if (!check) {
      this.boots.delete(key);
      return;
    }
    if (this.boots.get(key)?.time === check.time) return;
    const rec = (await repo.lastCheckRecord(pointId).catch(() => undefined)) as { boot?: unknown } | undefined;
    this.boots.set(key, { time: check.time, boot: bootSummary(rec?.boot) });
  }

  stats(): RepoStats[] {
    return this.configs.map((c) => {
      const r = this.catalog.repoStats.get(c.name);
      return {
        name: c.name,
        location: c.location,
        storedBytes: r?.storedBytes ?? 0,
        chunkBytes: r?.chunkBytes ?? 0,
        logicalBytes: r?.logicalBytes ?? 0,
        chunks: r?.chunks ?? 0,
        points: r?.points ?? 0,
        dedupRatio: r && r.chunkBytes > 0 ? Math.round((r.logicalBytes / r.chunkBytes) * 100) / 100 : null,
        updatedAt: r?.updatedAt ?? null,
        error: r?.error ?? null,
      };
    });
  }
}

/** A point's status with the boot part of its check (`status.check.boot`, null: the check did not boot). */
function withBoot<S extends { check: { time: string; ok: boolean } | null }>(status: S, boot: BootSummary | null): S {
  return status.check ? { ...status, check: { ...status.check, boot } } : status;
}
