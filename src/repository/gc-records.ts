import type { BlobStore } from '../storage/index.js';
import { capabilityOf } from '../storage/index.js';
import type { BlobName, Op } from '../shared/index.js';
import { listCondemned, listRescues, readGcSets, writeCondemned, writeRescue, type GcIdSets } from './gc-sets.js';
import { CHECKS_PREFIX, HOLDS_PREFIX, INDICATORS_PREFIX, VERIFICATIONS_PREFIX } from './layout.js';
import { readLeases, type LeaseEntry } from './lease.js';

/** Verification, check and indicator records kept per restore point by prune (only the newest is consulted). */
const KEEP_VERIFICATIONS = 3;

/**
 * The bookkeeping of garbage collection (DESIGN.md §Garbage collection, ADR 0006, FORMAT.md §11) as the repository
 * stores it: condemned generations, rescues, leases, and the housekeeping of records that outlive their points.
 * The protocol itself (who writes what when) lives in engine/gc.ts and engine/gc-guard.ts.
 */
export class GcRecords {
  constructor(private readonly store: BlobStore) {}

  /** Names of the condemned generations, oldest first. */
  listCondemned(op?: Op): Promise<BlobName[]> {
    return listCondemned(this.store, op);
  }

  writeCondemned(sets: GcIdSets, now = Date.now(), op?: Op): Promise<BlobName> {
    return writeCondemned(this.store, sets, now, op);
  }

  readSets(kind: 'condemned' | 'rescue', name: BlobName, op?: Op): Promise<GcIdSets> {
    return readGcSets(this.store, kind, name, op);
  }

  writeRescue(holder: string, sets: GcIdSets, now = Date.now(), op?: Op): Promise<BlobName> {
    return writeRescue(this.store, holder, sets, now, op);
  }

  listRescues(op?: Op): Promise<{ name: BlobName; holder: string }[]> {
    return listRescues(this.store, op);
  }

  /** Deletes a condemned generation or a rescue (names from the listings above). */
  delete(name: BlobName, op?: Op): Promise<void> {
    return this.store.delete(name, op);
  }

  /** Every lease (or one scope's), judged stale or not (lease.ts readLeases). */
  readLeases(scope?: string): Promise<LeaseEntry[]> {
    return readLeases(this.store, scope);
  }

  /** Removes a lease blob (a stale one: its holder is dead). */
  removeLease(name: BlobName): Promise<void> {
    return this.store.delete(name);
  }

  /** Whether the store keeps temporary files of crashed puts (see sweepTemp). */
  get keepsTempFiles(): boolean {
    return capabilityOf(this.store, 'tempFiles') !== undefined;
  }

  /**
   * Removes temporary files of crashed puts older than `maxAgeMs`, when the store keeps such files (a local
   * directory, also under wrappers such as append-only). Undefined when the store has none.
   */
  async sweepTemp(maxAgeMs: number, now?: number): Promise<number | undefined> {
    const sweeper = capabilityOf(this.store, 'tempFiles');
    return sweeper ? sweeper.sweepTemp(maxAgeMs, now) : undefined;
  }

  /**
   * Verification, check (FORMAT.md §8.1) and indicator (§8.2) records and holds of restore points not in `points`,
   * and such records beyond the newest three of each point and kind. Returns how many were removed.
   */
  async removeOrphanRecords(points: ReadonlySet<string>, op?: Op): Promise<number> {
    let removed = 0;
    const records = new Map<string, BlobName[]>();
    for (const prefix of [VERIFICATIONS_PREFIX, CHECKS_PREFIX, INDICATORS_PREFIX, HOLDS_PREFIX]) {
      for await (const b of this.store.list(prefix, op)) {
        const pointId = b.name.slice(prefix.length).split('/')[0]!;
        if (!/^[0-9a-f]{32}$/.test(pointId)) continue;
        if (!points.has(pointId)) {
          await this.store.delete(b.name, op);
          removed++;
        } else if (prefix !== HOLDS_PREFIX) {
          const list = records.get(prefix + pointId) ?? [];
          list.push(b.name);
          records.set(prefix + pointId, list);
        }
      }
    }
    for (const names of records.values()) {
      if (names.length <= KEEP_VERIFICATIONS) continue;
      // names end in <15-digit ms>-<outcome>: sorting by name sorts by time
      for (const name of names.sort().slice(0, names.length - KEEP_VERIFICATIONS)) {
        await this.store.delete(name, op);
        removed++;
      }
    }
    return removed;
  }
}
