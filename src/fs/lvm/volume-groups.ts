import { CofferError, type Op } from '../../shared/index.js';
import { checkRange, type BlockReader } from '../block-reader.js';
import { isSection, parseConfig, type ConfigSection, type ConfigValue } from './config-text.js';
import { readLabel, readMetadataText, type PvLabel } from './label.js';

/**
 * LVM2 volume groups assembled from the physical volumes found on the disks of one restore point (docs/DESIGN.md
 * §LVM2): the newest metadata (highest seqno) of each VG wins; linear and striped logical volumes are mapped onto their
 * PVs' data areas; every other segment type (thin, RAID, mirror, snapshot, cache, VDO ...) is recognised and refused.
 */

/** A volume (partition or whole disk) of the restore point that carries an LVM2 label. */
export interface PvCandidate {
  volume: BlockReader;
  /** the disk it is on (index in the restore point) */
  disk: number;
  /** human-readable place, e.g. "disk 1 partition 2" */
  where: string;
}

export interface LogicalVolumeInfo {
  /** "vg/lv" */
  name: string;
  vg: string;
  lv: string;
  sizeBytes: number;
  /** segment types in order (striped = linear when one stripe) */
  segmentTypes: string[];
  /** disks holding its extents (or, when it cannot be opened, the VG's disks) */
  disks: number[];
  /** why it cannot be read; undefined when it can */
  problem?: string;
  /** the code opening it fails with */
  problemCode?: 'FS_CORRUPT' | 'FS_UNSUPPORTED';
}

interface Segment {
  startBytes: number;
  sizeBytes: number;
  stripeBytes: number;
  areas: { pv: PvCandidate; startBytes: number }[];
}

const MAX_SEGMENTS = 4096;
const MAX_STRIPES = 128;
const SECTOR = 512;

function corrupt(msg: string): CofferError {
  return new CofferError('FS_CORRUPT', `lvm2: ${msg}`);
}

const num = (s: ConfigSection, key: string, what: string): number => {
  const v = s[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw corrupt(`${what}: ${key} is missing or not a count (${JSON.stringify(v)?.slice(0, 40)})`);
  return v;
};
const strings = (v: ConfigValue | undefined): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];

/** Reads a logical volume through its segments (linear: one area; striped: stripe-size chunks round-robin). */
export class LogicalVolumeReader implements BlockReader {
  constructor(
    readonly name: string,
    readonly sizeBytes: number,
    private readonly segments: Segment[],
  ) {}

  async read(offset: number, length: number, op?: Op): Promise<Buffer> {
    checkRange(this.sizeBytes, offset, length, `read of ${this.name}`);
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const pos = offset + done;
      const seg = this.segments.find((s) => pos >= s.startBytes && pos < s.startBytes + s.sizeBytes);
      if (!seg) throw corrupt(`${this.name}: no segment maps byte ${pos}`);
      const inSeg = pos - seg.startBytes;
      let n = Math.min(length - done, seg.sizeBytes - inSeg);
      let area: { pv: PvCandidate; startBytes: number };
      let at: number;
      if (seg.areas.length === 1) {
        area = seg.areas[0]!;
        at = area.startBytes + inSeg;
      } else {
        const chunk = Math.floor(inSeg / seg.stripeBytes);
        const inChunk = inSeg % seg.stripeBytes;
        area = seg.areas[chunk % seg.areas.length]!;
        at = area.startBytes + Math.floor(chunk / seg.areas.length) * seg.stripeBytes + inChunk;
        n = Math.min(n, seg.stripeBytes - inChunk);
      }
      (await area.pv.volume.read(at, n, op)).copy(out, done);
      done += n;
    }
    return out;
  }
}

interface VgMeta {
  name: string;
  id: string;
  seqno: number;
  section: ConfigSection;
}

/** The LVM2 view of one restore point: every VG found, its LVs, and readers for the LVs that can be read. */
export class VolumeGroups {
  readonly warnings: string[] = [];
  private readonly lvs = new Map<string, { info: LogicalVolumeInfo; reader?: LogicalVolumeReader }>();

  /** PV uuid -> where it is */
  private readonly pvs = new Map<string, PvCandidate & { label: PvLabel }>();

  static async scan(candidates: PvCandidate[], op?: Op): Promise<VolumeGroups> {
    const g = new VolumeGroups();
    const metas = new Map<string, VgMeta>();
    for (const c of candidates) {
      let label: PvLabel;
      try {
        label = await readLabel(c.volume, op);
      } catch (e) {
        if (!(e instanceof CofferError) || e.code === 'CANCELLED') throw e;
        g.warnings.push(`${c.where}: ${e.message}`);
        continue;
      }
      if (g.pvs.has(label.uuid)) {
        g.warnings.push(
          `${c.where}: PV ${label.uuid} is also on ${g.pvs.get(label.uuid)!.where} (a duplicate, ignored)`,
        );
        continue;
      }
      g.pvs.set(label.uuid, { ...c, label });
      for (const area of label.metadataAreas) {
        try {
          const text = await readMetadataText(c.volume, area, op);
          if (text === undefined) continue;
          const cfg = parseConfig(text);
          for (const [name, v] of Object.entries(cfg)) {
            if (!isSection(v) || typeof v.id !== 'string' || typeof v.seqno !== 'number') continue;
            const prev = metas.get(v.id);
            if (!prev || v.seqno > prev.seqno) metas.set(v.id, { name, id: v.id, seqno: v.seqno, section: v });
          }
        } catch (e) {
          if (!(e instanceof CofferError) || e.code === 'CANCELLED') throw e;
          g.warnings.push(`${c.where}: metadata area at ${area.offset}: ${e.message}`);
        }
      }
    }
    for (const m of metas.values()) {
      try {
        g.addVg(m);
      } catch (e) {
        if (!(e instanceof CofferError) || e.code === 'CANCELLED') throw e;
        g.warnings.push(`volume group ${m.name}: ${e.message}`);
      }
    }
    return g;
  }

  private addVg(m: VgMeta): void {
    const s = m.section;
    const extentBytes = num(s, 'extent_size', `VG ${m.name}`) * SECTOR;
    if (extentBytes === 0) throw corrupt(`VG ${m.name}: extent size 0`);
    const pvSec = s.physical_volumes;
    const pvByName = new Map<string, { pv?: PvCandidate; peStartBytes: number; peCount: number; id: string }>();
    const vgDisks = new Set<number>();
    if (isSection(pvSec)) {
      for (const [pvName, p] of Object.entries(pvSec)) {
        if (!isSection(p) || typeof p.id !== 'string')
          throw corrupt(`VG ${m.name}: physical volume ${pvName} has no id`);
        const found = this.pvs.get(p.id.replace(/-/g, ''));
        if (found) vgDisks.add(found.disk);
        pvByName.set(pvName, {
          pv: found,
          peStartBytes: num(p, 'pe_start', `PV ${pvName}`) * SECTOR,
          peCount: num(p, 'pe_count', `PV ${pvName}`),
          id: p.id,
        });
      }
    }
    const lvSec = isSection(s.logical_volumes) ? s.logical_volumes : {};
    // snapshots: the visible COW store LV would read as garbage; find them first
    const cowOf = new Map<string, string>();
    for (const lv of Object.values(lvSec)) {
      if (!isSection(lv)) continue;
      for (const seg of Object.values(lv))
        if (isSection(seg) && seg.type === 'snapshot' && typeof seg.cow_store === 'string')
          cowOf.set(seg.cow_store, typeof seg.origin === 'string' ? seg.origin : '?');
    }
    for (const [lvName, lv] of Object.entries(lvSec)) {
      if (!isSection(lv)) continue;
      if (!strings(lv.status).includes('VISIBLE')) continue;
      const info: LogicalVolumeInfo = {
        name: `${m.name}/${lvName}`,
        vg: m.name,
        lv: lvName,
        sizeBytes: 0,
        segmentTypes: [],
        disks: [...vgDisks].sort((a, b) => a - b),
      };
      try {
        const reader = this.mapLv(info, lv, extentBytes, pvByName, cowOf.get(lvName));
        info.disks = reader.disks;
        this.lvs.set(info.name, { info, reader: reader.reader });
      } catch (e) {
        if (!(e instanceof CofferError) || e.code === 'CANCELLED') throw e;
        info.problem = e.message;
        info.problemCode = e.code === 'FS_UNSUPPORTED' ? 'FS_UNSUPPORTED' : 'FS_CORRUPT';
        this.lvs.set(info.name, { info });
      }
    }
  }

  private mapLv(
    info: LogicalVolumeInfo,
    lv: ConfigSection,
    extentBytes: number,
    pvs: Map<string, { pv?: PvCandidate; peStartBytes: number; peCount: number; id: string }>,
    cowOrigin: string | undefined,
  ): { reader: LogicalVolumeReader; disks: number[] } {
    const segs = Object.entries(lv)
      .filter(([k, v]) => /^segment[0-9]+$/.test(k) && isSection(v))
      .map(([, v]) => v as ConfigSection);
    if (segs.length === 0 || segs.length > MAX_SEGMENTS) throw corrupt(`LV ${info.name} has ${segs.length} segments`);
    segs.sort((a, b) => num(a, 'start_extent', info.name) - num(b, 'start_extent', info.name));
    info.segmentTypes = segs.map((s) =>
      typeof s.type === 'string' ? (s.type === 'striped' && s.stripe_count === 1 ? 'linear' : s.type) : '?',
    );
    let extents = 0;
    for (const seg of segs) extents += num(seg, 'extent_count', info.name);
    info.sizeBytes = extents * extentBytes;
    if (!Number.isSafeInteger(info.sizeBytes)) throw corrupt(`LV ${info.name}: absurd size`);
    if (cowOrigin !== undefined)
      throw new CofferError(
        'FS_UNSUPPORTED',
        `lvm2: ${info.name} is a snapshot of ${cowOrigin} (segment type snapshot: its copy-on-write store is not read)`,
      );
    const other = info.segmentTypes.find((t) => t !== 'linear' && t !== 'striped');
    if (other)
      throw new CofferError(
        'FS_UNSUPPORTED',
        `lvm2: ${info.name} uses segment type ${other}, which file-level restore cannot read (linear and striped can)`,
        { details: { segmentType: other } },
      );
    const segments: Segment[] = [];
    const disks = new Set<number>();
    let next = 0;
    for (const seg of segs) {
      const start = num(seg, 'start_extent', info.name);
      const count = num(seg, 'extent_count', info.name);
      if (start !== next || count === 0)
        throw corrupt(`LV ${info.name}: segments do not follow each other (extent ${start}, expected ${next})`);
      next = start + count;
      const stripeCount = num(seg, 'stripe_count', info.name);
      const stripes = Array.isArray(seg.stripes) ? seg.stripes : [];
      if (
        stripeCount === 0 ||
        stripeCount > MAX_STRIPES ||
        stripes.length !== stripeCount * 2 ||
        count % stripeCount !== 0
      )
        throw corrupt(`LV ${info.name}: ${stripeCount} stripes with ${stripes.length / 2} areas over ${count} extents`);
      const stripeBytes = stripeCount > 1 ? num(seg, 'stripe_size', info.name) * SECTOR : count * extentBytes;
      if (stripeBytes === 0) throw corrupt(`LV ${info.name}: stripe size 0`);
      const perArea = count / stripeCount;
      const areas: Segment['areas'] = [];
      for (let i = 0; i < stripeCount; i++) {
        const pvName = stripes[i * 2];
        const pe = stripes[i * 2 + 1];
        if (typeof pvName !== 'string' || typeof pe !== 'number' || !Number.isSafeInteger(pe) || pe < 0)
          throw corrupt(`LV ${info.name}: bad stripe area ${i}`);
        const p = pvs.get(pvName);
        if (!p)
          throw new CofferError(
            'FS_UNSUPPORTED',
            `lvm2: ${info.name} is stacked on ${pvName}, not on a physical volume (layered LVs are not read)`,
          );
        if (!p.pv)
          throw corrupt(
            `${info.name} needs physical volume ${pvName} (${p.id}), which is on none of ` +
              `the disks of this restore point`,
          );
        if (pe + perArea > p.peCount)
          throw corrupt(`LV ${info.name}: extents ${pe}+${perArea} past the ${p.peCount} extents of ${pvName}`);
        const startBytes = p.peStartBytes + pe * extentBytes;
        if (!Number.isSafeInteger(startBytes) || startBytes + perArea * extentBytes > p.pv.volume.sizeBytes)
          throw corrupt(
            `LV ${info.name}: extents of ${pvName} lie past the end of ${p.pv.where} (${p.pv.volume.sizeBytes} bytes)`,
          );
        areas.push({ pv: p.pv, startBytes });
        disks.add(p.pv.disk);
      }
      segments.push({ startBytes: start * extentBytes, sizeBytes: count * extentBytes, stripeBytes, areas });
    }
    return {
      reader: new LogicalVolumeReader(info.name, info.sizeBytes, segments),
      disks: [...disks].sort((a, b) => a - b),
    };
  }

  /** Every visible LV of every VG found, in metadata order. */
  list(): LogicalVolumeInfo[] {
    return [...this.lvs.values()].map((x) => x.info);
  }

  /** A reader over LV `name` ("vg/lv"): NOT_FOUND, or the LV's problem as FS_UNSUPPORTED / FS_CORRUPT. */
  open(name: string): LogicalVolumeReader {
    const x = this.lvs.get(name);
    if (!x) {
      const known = [...this.lvs.keys()];
      throw new CofferError(
        'NOT_FOUND',
        `no logical volume ${name} on the disks of this restore point ` +
          `(${known.length ? known.join(', ') : 'none found'})`,
        { details: { logicalVolumes: known } },
      );
    }
    if (!x.reader)
      throw new CofferError(x.info.problemCode ?? 'FS_CORRUPT', x.info.problem ?? 'unreadable', {
        details: { logicalVolume: name },
      });
    return x.reader;
  }
}
