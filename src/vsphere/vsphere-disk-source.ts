import type { BlockSource, ChangeTracking, Extent } from '../sources/index.js';
import { CofferError, type Op } from '../shared/index.js';
import type { DiskReader } from './disk-transport.js';
import { returnval, type VimClient } from './vim-client.js';
import type { VmDisk } from './vm-model.js';
import { children, intOf, type MoRef } from './xml.js';

export interface VsphereDiskSourceOptions {
  client: VimClient;
  vm: MoRef;
  snapshot: MoRef;
  disk: VmDisk;
  reader: DiskReader;
  uri: string;
  warn?: ((message: string) => void) | undefined;
}

/** Statistics of change-tracking queries, for tests and the --json result. */
export interface CbtStats {
  queries: number;
  changedBytes: number;
}

/**
 * One disk of a vSphere snapshot as a BlockSource: reads go through the transport; QueryChangedDiskAreas gives the
 * allocated areas (changeId "*") for full backups and the areas changed since the previous restore point's changeId
 * for incrementals (the engine passes that changeId as the base token). A changeId vCenter rejects makes the engine
 * fall back to a full read of that disk.
 */
export class VsphereDiskSource implements BlockSource {
  readonly uri: string;
  readonly sizeBytes: number;
  readonly changeTracking: ChangeTracking | undefined;
  readonly cbt: CbtStats = { queries: 0, changedBytes: 0 };

  constructor(private readonly o: VsphereDiskSourceOptions) {
    this.uri = o.uri;
    this.sizeBytes = o.disk.capacityBytes;
    const changeId = o.disk.changeId;
    this.changeTracking = changeId
      ? {
          token: changeId,
          needsBaseToken: true,
          changedExtents: (op?: Op, base?: string | null) => this.changed(base ?? '', op),
        }
      : undefined;
  }

  read(offset: number, length: number, into: Buffer, op?: Op): Promise<void> {
    return this.o.reader.read(offset, length, into, op);
  }

  /** Allocated areas (QueryChangedDiskAreas with "*"); the whole disk when vCenter cannot tell. */
  async *dataExtents(op?: Op): AsyncIterable<Extent> {
    if (!this.o.disk.changeId) {
      yield { offset: 0, length: this.sizeBytes };
      return;
    }
    let areas: Extent[];
    try {
      areas = await this.query('*', op);
    } catch (e) {
      if (!(e instanceof CofferError) || e.code !== 'VSPHERE_FAULT' || !e.details.fault) throw e;
      this.o.warn?.(`${this.uri}: vCenter could not list the allocated areas (${e.message}); reading the whole disk`);
      areas = [{ offset: 0, length: this.sizeBytes }];
    }
    yield* areas;
  }

  private async *changed(base: string, op?: Op): AsyncIterable<Extent> {
    if (!base || base === '*')
      throw new CofferError('SOURCE_UNREADABLE', 'no base changeId', { details: { changeTrackingUnusable: true } });
    let areas: Extent[];
    try {
      areas = await this.query(base, op);
    } catch (e) {
      if (e instanceof CofferError && e.code === 'VSPHERE_FAULT' && e.details.fault) {
        throw new CofferError(
          'VSPHERE_FAULT',
          `vCenter rejected the previous changeId ${JSON.stringify(base)} (${e.message}); this disk is read in full`,
          { details: { ...e.details, changeTrackingUnusable: true } },
        );
      }
      throw e;
    }
    this.cbt.changedBytes += areas.reduce((a, x) => a + x.length, 0);
    yield* areas;
  }

  /** QueryChangedDiskAreas paged by startOffset until the whole disk is covered; areas checked, sorted, merged. */
  async query(changeId: string, op?: Op): Promise<Extent[]> {
    const size = this.sizeBytes;
    const raw: Extent[] = [];
    let offset = 0;
    while (offset < size) {
      op?.signal?.throwIfAborted();
      this.cbt.queries++;
      const res = await this.o.client.invoke(
        'QueryChangedDiskAreas',
        this.o.vm,
        { snapshot: this.o.snapshot, deviceKey: this.o.disk.key, startOffset: offset, changeId },
        op,
      );
      const info = returnval(res);
      const start = intOf(info, 'startOffset') ?? offset;
      const length = intOf(info, 'length') ?? 0;
      if (start !== offset || length <= 0 || start + length > size + 512) {
        throw new CofferError(
          'VSPHERE_FAULT',
          `QueryChangedDiskAreas answered [${start}, +${length}) for a query at ${offset} of a ${size}-byte disk`,
          { details: { protocol: true } },
        );
      }
      for (const a of children(info, 'changedArea')) {
        const s = intOf(a, 'start');
        const l = intOf(a, 'length');
        if (s === undefined || l === undefined || s < start || l < 0 || s + l > Math.min(size, start + length) + 0) {
          if (s !== undefined && l !== undefined && s >= start && l >= 0 && s + l <= start + length && s < size) {
            raw.push({ offset: s, length: Math.min(l, size - s) });
            continue;
          }
          throw new CofferError(
            'VSPHERE_FAULT',
            `QueryChangedDiskAreas reported an area [${s}, +${l}) outside [${start}, +${length}) of a ${size}-byte ` +
              `disk`,
            { details: { protocol: true } },
          );
        }
        if (l > 0) raw.push({ offset: s, length: l });
      }
      offset = start + length;
    }
    raw.sort((a, b) => a.offset - b.offset);
    const out: Extent[] = [];
    for (const e of raw) {
      const last = out[out.length - 1];
      if (last && e.offset <= last.offset + last.length)
        last.length = Math.max(last.length, e.offset + e.length - last.offset);
      else out.push({ ...e });
    }
    return out;
  }

  async close(): Promise<void> {
    await this.o.reader.close();
  }
}
