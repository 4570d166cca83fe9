import { JsonReader } from './json-check.js';
import { HEX32, HEX64 } from '../shared/index.js';

/**
 * Restore-point manifest, blob 'points/<id>' in a 'CFRP' envelope (FORMAT.md §6). Committing it is what makes a
 * restore point exist; everything it references (indexes, chunks) is stored before it.
 */
export const MANIFEST_VERSION = 1;
export const MAX_DISKS = 256;
/** Version of the optional `signals` section (FORMAT.md §6.2); readers drop a section of a version they do not know. */
export const SIGNALS_VERSION = 1;
export const SIGNAL_REASONS_MAX = 64;

/** Change signals of one disk, measured during the backup (FORMAT.md §6.2). */
export interface DiskSignals {
  index: number;
  /** false: no usable parent, every chunk counts as changed (a first or fallback full backup) */
  hasParent: boolean;
  /** bytes of the chunks whose content differs from the parent's chunk at the same place */
  changedBytes: number;
  changedChunks: number;
  /** changed chunks this backup compressed (new to the repository): the denominator of the next field */
  measuredChunks: number;
  /** measured chunks that zstd could not shrink by 1/16: encrypted or already compressed data */
  incompressibleChunks: number;
  /** changed chunks in each of equal regions of the disk, in disk order */
  regions: number[];
}

/** The optional `signals` section of a manifest (FORMAT.md §6.2): ransomware signals and the anomaly score. */
export interface PointSignals {
  version: number;
  disks: DiskSignals[];
  /** 0..100, compared with the VM's own history; `suspicious` when at least `threshold` */
  score: number;
  threshold: number;
  suspicious: boolean;
  /** why, in words (empty when nothing stood out) */
  reasons: string[];
  /** how many earlier restore points of the VM the score was compared with */
  historyPoints: number;
}

export interface ManifestDisk {
  index: number;
  sizeBytes: number;
  chunkSizeBytes: number;
  /** Keyed digest (hex) of the fixed index plaintext; also its blob name 'indexes/<id>'. */
  indexId: string;
  chunkCount: number;
  zeroChunks: number;
  /** Where it was read from, for humans ('file:///...', 'nbd://...'); never trusted for anything. */
  source: string;
  /** Change-tracking token of the source at backup time (e.g. a vSphere changeId), if any. */
  changeToken: string | null;
  /** Optional (added in v1, ignored by older readers): how this disk was read. */
  readMode?: 'full' | 'incremental';
  /** Optional: bytes reported changed by change tracking (incremental reads). */
  changedBytes?: number;
  /** Optional: chunks whose content changed although change tracking did not report them (--verify-cbt). */
  cbtDriftChunks?: number;
}

export interface Manifest {
  formatVersion: number;
  id: string;
  vm: { name: string; id: string | null };
  /** Time the disks were captured (snapshot time), ISO 8601 UTC. */
  time: string;
  endTime: string;
  parent: string | null;
  mode: 'full' | 'incremental';
  host: string;
  tool: string;
  tags: string[];
  consistency: { snapshot: boolean; quiesced: boolean };
  disks: ManifestDisk[];
  stats: { bytesRead: number; bytesStored: number; chunksNew: number; chunksReused: number; durationMs: number };
  /**
   * Optional (added in v1, ignored by older readers): the VM's configuration at backup time (FORMAT.md §6.1), a JSON
   * object whose `kind` names its schema ('vsphere-vm'). Validated by the layer that uses it, not here.
   */
  vmConfig?: Record<string, unknown>;
  /** Optional (added in v1, ignored by older readers): ransomware signals (FORMAT.md §6.2). */
  signals?: PointSignals;
}

export function encodeManifest(m: Manifest): Buffer {
  return Buffer.from(JSON.stringify(m), 'utf8');
}

export function decodeManifest(bytes: Uint8Array, name: string): Manifest {
  const r = JsonReader.parse(`manifest ${name}`, bytes);
  const vm = r.field('vm');
  const consistency = r.field('consistency');
  const stats = r.field('stats');
  const m: Manifest = {
    formatVersion: r.int('formatVersion', MANIFEST_VERSION, MANIFEST_VERSION),
    id: r.matching('id', HEX32),
    vm: { name: vm.str('name', 512), id: vm.optStr('id', 512) ?? null },
    time: r.time('time'),
    endTime: r.time('endTime'),
    parent: r.has('parent') ? r.matching('parent', HEX32) : null,
    mode: r.literal('mode', ['full', 'incremental'] as const),
    host: r.str('host', 256),
    tool: r.str('tool', 256),
    tags: r.strings('tags', 100),
    consistency: { snapshot: consistency.bool('snapshot'), quiesced: consistency.bool('quiesced') },
    disks: r.array('disks', MAX_DISKS).map((d, i) => {
      const disk: ManifestDisk = {
        index: d.int('index', 0, MAX_DISKS - 1),
        sizeBytes: d.int('sizeBytes'),
        chunkSizeBytes: d.int('chunkSizeBytes', 1, 2 ** 31),
        indexId: d.matching('indexId', HEX64),
        chunkCount: d.int('chunkCount'),
        zeroChunks: d.int('zeroChunks'),
        source: d.str('source', 4096),
        changeToken: d.optStr('changeToken', 4096) ?? null,
      };
      if (d.has('readMode')) disk.readMode = d.literal('readMode', ['full', 'incremental'] as const);
      if (d.has('changedBytes')) disk.changedBytes = d.int('changedBytes');
      if (d.has('cbtDriftChunks')) disk.cbtDriftChunks = d.int('cbtDriftChunks');
      if (disk.index !== i) d.fail('disks must be listed in index order 0..n-1');
      return disk;
    }),
    stats: {
      bytesRead: stats.int('bytesRead'),
      bytesStored: stats.int('bytesStored'),
      chunksNew: stats.int('chunksNew'),
      chunksReused: stats.int('chunksReused'),
      durationMs: stats.int('durationMs'),
    },
  };
  if (r.has('vmConfig')) {
    const cfg = r.raw('vmConfig');
    r.field('vmConfig').str('kind', 64);
    m.vmConfig = cfg;
  }
  if (r.has('signals')) {
    const signals = decodeSignals(r.field('signals'));
    if (signals) m.signals = signals;
  }
  if (m.id !== name) r.fail(`id ${m.id} does not match its blob name ${name}`);
  return m;
}

/**
 * The `signals` section (FORMAT.md §6.2). It describes, nothing depends on it: a section of an unknown version or one
 * that does not check is dropped, and the restore point stays readable.
 */
function decodeSignals(s: JsonReader): PointSignals | undefined {
  try {
    if (s.int('version', 1) !== SIGNALS_VERSION) return undefined;
    return {
      version: SIGNALS_VERSION,
      disks: s.array('disks', MAX_DISKS).map((d) => ({
        index: d.int('index', 0, MAX_DISKS - 1),
        hasParent: d.bool('hasParent'),
        changedBytes: d.int('changedBytes'),
        changedChunks: d.int('changedChunks'),
        measuredChunks: d.int('measuredChunks'),
        incompressibleChunks: d.int('incompressibleChunks'),
        regions: d.ints('regions', 1024),
      })),
      score: s.int('score', 0, 100),
      threshold: s.int('threshold', 0, 100),
      suspicious: s.bool('suspicious'),
      reasons: s.strings('reasons', SIGNAL_REASONS_MAX),
      historyPoints: s.int('historyPoints'),
    };
  } catch {
    return undefined;
  }
}
