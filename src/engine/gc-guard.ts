import { GC_SCOPE, IdSet, type Lease, type Repository } from '../repository/index.js';
import { CofferError, sleep, type BlobName, type Op } from '../shared/index.js';

/** Operation name of the GC lease while it deletes (writers that use a condemned object wait while it is up). */
export const GC_SWEEP_OPERATION = 'gc-sweep';

/**
 * The writer's half of the GC protocol (DESIGN.md §Garbage collection). A writer (backup, repair, copy) holds a lease;
 * right after acquiring it, it loads every condemned generation and records their names in its lease (`gcSeen`): a
 * sweep deletes a generation only when every live writer has seen it. Before the writer relies on an object in a
 * condemned set (dedup hit, existing index, or even a fresh put), it publishes a rescue for it, then waits while a
 * sweep is under way, then looks at the store again: either the sweep saw the rescue and kept the object, or it had
 * finished (the object is gone and the writer stores it again).
 */
export class GcGuard {
  private readonly rescued = new Set<string>();
  private readonly rescueBlobs: BlobName[] = [];

  private constructor(
    private readonly repo: Repository,
    private readonly leases: readonly Lease[],
    private readonly chunks: IdSet,
    private readonly indexes: IdSet,
    private readonly pollMs: number,
  ) {}

  /**
   * `lease`: the writer's lease, or several (copy holds one per VM of the target): each records what was seen, the
   * first one's holder names the rescues, and all of them must stay valid while the guard waits for a sweep.
   */
  static async open(
    repo: Repository,
    lease: Lease | readonly Lease[],
    op: Op = {},
    opts: { pollMs?: number } = {},
  ): Promise<GcGuard> {
    const leases: readonly Lease[] = Array.isArray(lease) ? lease : [lease as Lease];
    if (leases.length === 0) throw new CofferError('INTERNAL', 'GcGuard.open needs a lease');
    const names = await repo.gc.listCondemned(op);
    let chunks = IdSet.empty;
    let indexes = IdSet.empty;
    const seen: string[] = [];
    for (const name of names) {
      try {
        const s = await repo.gc.readSets('condemned', name, op);
        chunks = chunks.union(s.chunks);
        indexes = indexes.union(s.indexes);
        seen.push(name);
      } catch (e) {
        // a generation swept (deleted) meanwhile needs no care; an unreadable one is simply not marked as seen,
        // so no sweep deletes it while we run
        if (!(e instanceof CofferError) || (e.code !== 'NOT_FOUND' && e.code !== 'CORRUPT')) throw e;
      }
    }
    for (const l of leases) await l.update({ gcSeen: seen });
    return new GcGuard(repo, leases, chunks, indexes, opts.pollMs ?? 500);
  }

  /** How many condemned objects this writer rescued. */
  get rescuedCount(): number {
    return this.rescued.size;
  }

  get condemnedCount(): number {
    return this.chunks.size + this.indexes.size;
  }

  isCondemnedChunk(id: Uint8Array): boolean {
    return this.chunks.size > 0 && this.chunks.has(id);
  }

  isCondemnedIndex(idHex: string): boolean {
    return this.indexes.size > 0 && this.indexes.has(Buffer.from(idHex, 'hex'));
  }

  /**
   * Call before relying on a condemned object (see isCondemned*). Publishes a rescue, then waits while a sweep runs.
   * Afterwards the caller checks the store (stat/put) as usual: what it finds stays.
   */
  async rescue(kind: 'chunk' | 'index', id: Uint8Array, op: Op = {}): Promise<void> {
    const key = `${kind}:${Buffer.from(id).toString('hex')}`;
    if (!this.rescued.has(key)) {
      const one = IdSet.fromConcatenated(Buffer.from(id));
      this.rescueBlobs.push(
        await this.repo.gc.writeRescue(
          this.leases[0]!.holder,
          kind === 'chunk' ? { chunks: one, indexes: IdSet.empty } : { chunks: IdSet.empty, indexes: one },
          Date.now(),
          op,
        ),
      );
      this.rescued.add(key);
    }
    await this.waitForSweep(op);
  }

  /** Waits while a live GC lease says it is deleting. A dead GC's lease is stale and does not hold anyone up. */
  private async waitForSweep(op: Op): Promise<void> {
    for (;;) {
      const sweeping = (await this.repo.gc.readLeases(GC_SCOPE)).some(
        (l) => !l.stale && l.info?.operation === GC_SWEEP_OPERATION,
      );
      if (!sweeping) return;
      for (const l of this.leases) l.check();
      op.signal?.throwIfAborted();
      await sleep(this.pollMs, op);
    }
  }

  /**
   * After the commit (or a failure): the rescues are no longer needed (a committed manifest references the objects).
   */
  async close(): Promise<void> {
    for (const name of this.rescueBlobs) await this.repo.gc.delete(name).catch(() => undefined);
    this.rescueBlobs.length = 0;
  }
}
