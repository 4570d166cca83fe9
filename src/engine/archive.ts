import type { IdSet, Repository } from '../repository/index.js';
import type { AccessTier, RehydratePriority } from '../storage/index.js';
import { CofferError, TaskWindow, chunkIdOf, type ChunkId, type Op } from '../shared/index.js';

const ORDER: Record<AccessTier, number> = { Hot: 0, Cool: 1, Cold: 2, Archive: 3 };

export interface TierSummary {
  /** chunks of the selected points by tier ('unknown': the service did not say) */
  chunks: Record<AccessTier | 'unknown', number>;
  /** archived chunks being rehydrated */
  rehydrating: number;
  /** chunks that can be read now */
  readable: number;
  total: number;
}

/** The chunk ids of these restore points (the referenced-ids walk). */
async function chunksOf(repo: Repository, ids: Iterable<string>, op: Op): Promise<IdSet> {
  return (await repo.referencedIds(ids, op)).chunks;
}

function* each(ids: IdSet): Iterable<ChunkId> {
  for (let i = 0; i < ids.size; i++) yield chunkIdOf(ids.at(i));
}

async function forEach(items: Iterable<ChunkId>, fn: (id: ChunkId) => Promise<void>, window = 16): Promise<void> {
  const w = new TaskWindow(window);
  try {
    for (const x of items) await w.run(() => fn(x));
    await w.drain();
  } catch (e) {
    await w.settle();
    throw e;
  }
}

/**
 * Moves the data of restore points to a cooler tier, in place (DESIGN.md §Archive tier, ADR 0005). Only chunks used
 * by no other restore point move (a chunk shared with a point that stays keeps its tier, or restoring that point
 * would need a rehydration); config, keys, manifests and indexes always stay in the hot tier, so listing, `show` and
 * planning a restore never wait. Chunks never move to a warmer tier here (that is `rehydrate`).
 */
export async function archivePoints(
  repo: Repository,
  ids: string[],
  tier: AccessTier,
  op: Op = {},
): Promise<{ moved: number; shared: number; already: number }> {
  const chunks = repo.chunks;
  chunks.requireTiers();
  if (tier === 'Hot')
    throw new CofferError(
      'USAGE',
      'archive moves to Cool, Cold or Archive; use `archive rehydrate` to bring data back',
    );
  const selected = new Set(ids);
  const mine = await chunksOf(repo, ids, op);
  const others: string[] = [];
  for await (const id of repo.pointIds(op)) if (!selected.has(id)) others.push(id);
  const kept = await chunksOf(repo, others, op);
  let moved = 0;
  let shared = 0;
  let already = 0;
  await forEach(each(mine), async (hex) => {
    if (kept.has(Buffer.from(hex, 'hex'))) {
      shared++;
      return;
    }
    const t = await chunks.tierOf(hex, op);
    if (t?.tier && ORDER[t.tier] >= ORDER[tier]) {
      already++;
      return;
    }
    await chunks.setTier(hex, tier, {}, op);
    moved++;
  });
  return { moved, shared, already };
}

export async function tierSummary(repo: Repository, ids: string[], op: Op = {}): Promise<TierSummary> {
  const chunks = repo.chunks;
  chunks.requireTiers();
  const s: TierSummary = {
    chunks: { Hot: 0, Cool: 0, Cold: 0, Archive: 0, unknown: 0 },
    rehydrating: 0,
    readable: 0,
    total: 0,
  };
  await forEach(each(await chunksOf(repo, ids, op)), async (hex) => {
    const t = await chunks.tierOf(hex, op);
    s.total++;
    s.chunks[t?.tier ?? 'unknown']++;
    if (t?.rehydratingTo) s.rehydrating++;
    if (t?.tier !== 'Archive') s.readable++;
  });
  return s;
}

/**
 * Starts rehydrating the archived chunks of restore points to `to` (Hot or Cool) and returns at once; poll with
 * tierSummary. Azure: Standard priority up to 15 hours, High usually under 1 hour for blobs under 10 GB (more
 * expensive). Chunks already rehydrating are left alone (a second request cannot lower the priority).
 */
export async function rehydratePoints(
  repo: Repository,
  ids: string[],
  opts: { priority: RehydratePriority; to?: AccessTier },
  op: Op = {},
) {
  const chunks = repo.chunks;
  chunks.requireTiers();
  const to = opts.to ?? 'Hot';
  if (to === 'Archive') throw new CofferError('USAGE', 'rehydrate to Hot, Cool or Cold');
  let started = 0;
  let pending = 0;
  let online = 0;
  await forEach(each(await chunksOf(repo, ids, op)), async (hex) => {
    const t = await chunks.tierOf(hex, op);
    if (t?.tier !== 'Archive') return void online++;
    if (t.rehydratingTo) return void pending++;
    await chunks.setTier(hex, to, { priority: opts.priority }, op);
    started++;
  });
  const estimate =
    started + pending === 0
      ? 'readable now'
      : opts.priority === 'High'
        ? 'usually under 1 hour (Azure, blobs under 10 GB)'
        : 'up to 15 hours (Azure standard priority)';
  return { started, pending, online, priority: opts.priority, to, estimate };
}
