import {
  SliceReader,
  checkRange,
  listPartitions,
  probeFilesystem,
  scanVolumeGroups,
  type BlockReader,
} from '../../fs/index.js';
import type { Repository } from '../../repository/index.js';
import { CofferError, type Op } from '../../shared/index.js';
import type { CodecPool } from '../codec-pool.js';
import { RestorePointDevice } from '../mount.js';
import { bootCheck, type BootCheck, type BootCheckOptions } from './boot-check.js';
import { requireBootScript } from './boot-script.js';
import { FSCK_TOOLS, runTool, throwIfCancelled } from './fsck-tools.js';
import { requireQemu } from './qemu-boot.js';
import { withVolumeFile } from './volume-export.js';

/** One volume's outcome: `ok` true (clean), false (the checker found errors), null (not checked, `note` says why). */
export interface VolumeCheck {
  disk: number;
  /** partition number as `files ls` lists it (0: a disk without partition table), or an LVM2 volume "VG/LV" */
  volume: number | string;
  filesystem: string | null;
  tool: string | null;
  ok: boolean | null;
  exitCode: number | null;
  note?: string;
  /** the end of the checker's output */
  output?: string;
}

/** A recoverability check record (FORMAT.md §8.1). */
export interface CheckRecord {
  pointId: string;
  time: string;
  ok: boolean;
  kind: 'fsck';
  volumes: VolumeCheck[];
  /** why it failed, in words */
  problems: string[];
  /** the boot check (`--boot`; FORMAT.md §8.1 `boot`, version 1); absent: not asked for */
  boot?: BootCheck;
}

export interface CheckPointOptions extends Op {
  /** per checker run (default 10 minutes) */
  timeoutMs?: number;
  onVolume?: (v: VolumeCheck) => void;
  /** also boot the point in QEMU (after the filesystem checks) */
  boot?: BootCheckOptions | undefined;
}

const MAX_PROBLEMS = 100;

/** A restore point's disk as a bounds-checked BlockReader. */
class DeviceReader implements BlockReader {
  readonly sizeBytes: number;
  constructor(private readonly dev: RestorePointDevice) {
    this.sizeBytes = dev.sizeBytes;
  }
  read(offset: number, length: number, op?: Op): Promise<Buffer> {
    checkRange(this.sizeBytes, offset, length);
    return this.dev.read(offset, length, op);
  }
}

/**
 * Checks that a restore point is recoverable (DESIGN.md §Recoverability checks): reads each disk's partition table
 * from the repository (instant recovery), finds the filesystems (partitions, LVM2 logical volumes), serves each over
 * NBD and runs its read-only checker on it. Passes when every filesystem found checks clean and at least one was
 * checked. Nothing is written, neither to the repository nor to the point. The caller records the result.
 */
export async function checkPoint(
  repo: Repository,
  pool: CodecPool,
  pointId: string,
  opts: CheckPointOptions = {},
): Promise<CheckRecord> {
  const op: Op = { signal: opts.signal };
  const time = new Date().toISOString();
  const manifest = await repo.loadManifest(pointId, op);
  // QEMU_MISSING and a bad script path (USAGE) before minutes of filesystem checks
  if (opts.boot) await requireQemu();
  const boot_ = opts.boot?.script ? { ...opts.boot, script: await requireBootScript(opts.boot.script) } : opts.boot;
  const devices: RestorePointDevice[] = [];
  const volumes: VolumeCheck[] = [];
  const problems: string[] = [];
  const done = (v: VolumeCheck) => {
    volumes.push(v);
    if (v.ok === false && problems.length < MAX_PROBLEMS)
      problems.push(`disk ${v.disk} volume ${v.volume}: ${v.note ?? `${v.tool} found errors`}`);
    opts.onVolume?.(v);
  };
  try {
    const readers: DeviceReader[] = [];
    for (const d of manifest.disks) {
      const dev = await RestorePointDevice.open(repo, pool, await repo.loadIndex(d.indexId, op), { cacheChunks: 32 });
      devices.push(dev);
      readers.push(new DeviceReader(dev));
    }
    let lvm = false;
    for (const [disk, reader] of readers.entries()) {
      throwIfCancelled(op);
      let listed: Awaited<ReturnType<typeof listPartitions>>;
      try {
        listed = await listPartitions(reader, op);
      } catch (e) {
        if (e instanceof CofferError && e.code === 'CANCELLED') throw e;
        done(failure(disk, 0, `the partition table cannot be read: ${(e as Error).message}`));
        continue;
      }
      for (const p of listed.partitions) {
        if (p.container) continue;
        if (p.problem) {
          done(failure(disk, p.number, `partition ${p.number} ${p.problem}`));
          continue;
        }
        if (p.filesystem === 'lvm2') {
          lvm = true;
          continue;
        }
        const vol = new SliceReader(reader, p.startBytes, p.sizeBytes);
        done(await checkVolume(disk, p.number, p.filesystem, vol, listed.table.scheme === 'none', opts));
      }
    }
    if (lvm) {
      const groups = await scanVolumeGroups(readers, op);
      for (const w of groups.warnings) if (problems.length < MAX_PROBLEMS) problems.push(`LVM2: ${w}`);
      for (const lv of groups.list()) {
        const disk = lv.disks[0] ?? 0;
        if (lv.problem) {
          done(failure(disk, lv.name, `logical volume ${lv.name}: ${lv.problem}`));
          continue;
        }
        const vol = groups.open(lv.name);
        const fs = await probeFilesystem(vol, op).catch(() => undefined);
        done(await checkVolume(disk, lv.name, fs, vol, false, opts));
      }
    }
  } finally {
    for (const d of devices) await d.close();
  }
  if (!volumes.some((v) => v.ok !== null) && problems.length === 0)
    problems.push('no filesystem could be checked (none found, or no checker for them)');
  let boot: BootCheck | undefined;
  if (opts.boot) {
    throwIfCancelled(op);
    boot = await bootCheck(repo, pool, manifest, { ...boot_, signal: opts.signal });
    if (boot.ok !== true) problems.push(`boot: ${boot.ok === null ? 'not booted: ' : ''}${boot.note ?? 'failed'}`);
  }
  const ok = problems.length === 0 && volumes.every((v) => v.ok !== false);
  return { pointId, time, ok, kind: 'fsck', volumes, problems, ...(boot ? { boot } : {}) };
}

function failure(disk: number, volume: number | string, note: string): VolumeCheck {
  return { disk, volume, filesystem: null, tool: null, ok: false, exitCode: null, note };
}

async function checkVolume(
  disk: number,
  volume: number | string,
  filesystem: string | undefined,
  reader: BlockReader,
  wholeDisk: boolean,
  opts: CheckPointOptions,
): Promise<VolumeCheck> {
  const base = { disk, volume, filesystem: filesystem ?? null };
  if (!filesystem) {
    // a whole disk without partition table and without a filesystem: nothing there can be recovered
    if (wholeDisk)
      return {
        ...base,
        tool: null,
        ok: false,
        exitCode: null,
        note: 'no partition table and no filesystem recognised (a damaged superblock?)',
      };
    return { ...base, tool: null, ok: null, exitCode: null, note: 'no filesystem recognised; not checked' };
  }
  const tool = FSCK_TOOLS[filesystem];
  if (!tool) return { ...base, tool: null, ok: null, exitCode: null, note: `no checker for ${filesystem}` };
  const run = await withVolumeFile(
    reader,
    (file) => runTool(tool.cmd, tool.args(file), { timeoutMs: opts.timeoutMs ?? 600_000, signal: opts.signal }),
    { signal: opts.signal },
  );
  throwIfCancelled(opts);
  if (run.problem && run.exitCode === null && / is not installed$/.test(run.problem))
    return { ...base, tool: tool.cmd, ok: null, exitCode: null, note: run.problem };
  const ok = run.exitCode !== null && tool.okCodes.includes(run.exitCode);
  return {
    ...base,
    tool: tool.cmd,
    ok,
    exitCode: run.exitCode,
    output: run.output,
    ...(ok ? {} : { note: run.problem ?? `${tool.cmd} exited with ${run.exitCode}: ${lastLines(run.output)}` }),
  };
}

function lastLines(s: string): string {
  return s.split('\n').filter(Boolean).slice(-3).join(' / ').slice(0, 500);
}
