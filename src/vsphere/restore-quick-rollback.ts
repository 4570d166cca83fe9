import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { CofferError, silentLogger, type Logger, type Op } from '../shared/index.js';
import type { Extent } from '../sources/index.js';
import type { TlsPolicy } from './https-client.js';
import { loadInventory, type VmInfo } from './inventory.js';
import { runTask } from './task.js';
import { HotAddTransport, hotAddEnv, type DiskWriter } from './transports/hotadd-transport.js';
import { VddkTransport, vddkConnection } from './transports/vddk-transport.js';
import type { VimClient } from './vim-client.js';
import { DEFAULT_SNAPSHOT_LEASE_S, SNAPSHOT_PREFIX, ownerLine } from './vm-backup.js';
import type { StoredVmConfig } from './vm-config.js';
import type { VmDisk } from './vm-model.js';
import { findInPlaceTarget, powerOnVm } from './vm-restore.js';
import { VsphereDiskSource } from './vsphere-disk-source.js';
import { connectVsphere, parseVsphereUrl } from './vsphere-url.js';
import { MoRef } from './xml.js';

/** The restore point as quick rollback reads it: random access to its disks (the engine's RestorePointDevice). */
export interface RollbackPoint {
  id: string;
  disks: readonly { sizeBytes: number; changeToken: string | null }[];
  read(disk: number, offset: number, length: number, op?: Op): Promise<Buffer>;
}

export interface QuickRollbackOptions extends Op {
  tls: TlsPolicy;
  env: Record<string, string | undefined>;
  logger?: Logger | undefined;
  datastore: string;
  /** how the VM's disks are written: hot-add to the proxy VM (default) or VDDK NBD/NBDSSL (nbdkit vddk, read-write) */
  transport?: 'hotadd' | 'nbd' | undefined;
  /** hot-add: the VM Coffer runs in (default: found by this machine's SMBIOS UUID) */
  proxyVm?: string | undefined;
  /** nbd: VMware VDDK's directory (one nbdkit vddk per disk, opened read-write) */
  vddkLibdir?: string | undefined;
  /** only these disks (indexes into the VM's disks, as in the restore point); default: every disk */
  disks?: readonly number[] | undefined;
  powerOn?: boolean | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/** How one disk was rolled back: `cbt` wrote the areas vCenter reported changed since the restore point's changeId;
 *  `compare` read the whole disk and the restore point and wrote the blocks that differ. */
export interface QuickRollbackDisk {
  index: number;
  fileName: string;
  capacityBytes: number;
  mode: 'cbt' | 'compare';
  /** why `compare` was used */
  reason?: string | undefined;
  /** cbt: the areas vCenter reported (merged) */
  changedAreas?: number | undefined;
  changedBytes?: number | undefined;
  bytesCompared: number;
  bytesWritten: number;
}

export interface QuickRollbackResult {
  vm: string;
  moref: string;
  mode: 'cbt' | 'compare' | 'mixed';
  transport: 'hotadd' | 'nbd';
  bytesCompared: number;
  bytesWritten: number;
  /** reset: switched off and on after the disks were opened for writing (hot-added writes are not tracked by the
   *  VM's CBT); kept: nothing was opened for writing, or CBT is off on the VM */
  changeTracking: 'reset' | 'kept';
  poweredOn: boolean;
  disks: QuickRollbackDisk[];
  warnings: string[];
}

/** Pieces written or compared at a time; differences are found (and written) at COMPARE_GRAIN granularity. */
const STEP_BYTES = 1 << 20;
const COMPARE_GRAIN = 64 << 10;

/**
 * Quick rollback (DESIGN.md §vSphere, quick rollback; ADR 0022): restores a powered-off VM in place over itself by
 * writing only what differs from the restore point. A fresh snapshot of the VM gives QueryChangedDiskAreas from the
 * restore point's changeId per disk (the areas written since the point); the snapshot is removed again, and the VM's
 * own disks are hot-added to the proxy VM (persistent, read-write) to write those areas from the restore point.
 * When vCenter rejects the changeId (change tracking reset or disabled since the point, another disk) or the point
 * has none, that disk is compared in full instead and only differing 64 KiB blocks are written. Afterwards change
 * tracking is switched off and on (the writes came through the proxy VM, which the VM's CBT does not see), so the
 * next backup cannot trust a stale changeId.
 */
export async function quickRollback(
  spec: string,
  cfg: StoredVmConfig,
  point: RollbackPoint,
  opts: QuickRollbackOptions,
): Promise<QuickRollbackResult> {
  const logger = opts.logger ?? silentLogger;
  const url = parseVsphereUrl(spec);
  const name = url.vm;
  if (!name) throw new CofferError('USAGE', `--to ${url.display}: name the VM to roll back (vsphere://HOST/VM)`);
  const client = await connectVsphere(url, { tls: opts.tls, env: opts.env, logger, signal: opts.signal });
  try {
    const inv = await loadInventory(client, opts);
    const target = findInPlaceTarget(inv, cfg, {
      name,
      datastore: opts.datastore,
      force: true,
      logger,
      signal: opts.signal,
    });
    if (!target)
      throw new CofferError('NOT_FOUND', `no VM named ${name}: quick rollback restores over an existing VM`, {
        hint: 'leave out --quick to restore as a new VM',
      });
    const vm = inv.vms.find((v) => v.ref.equals(target.vm))!;
    const disks = vm.config?.disks ?? [];
    const transport = opts.transport ?? 'hotadd';
    if (transport === 'nbd' && !opts.vddkLibdir)
      throw new CofferError('USAGE', '--transport nbd needs --vddk-libdir DIR (VMware VDDK: one nbdkit vddk per disk)');
    let openWriter: (disk: VmDisk, i: number) => Promise<DiskWriter>;
    if (transport === 'nbd') {
      const vddk = new VddkTransport({
        libdir: opts.vddkLibdir!,
        ...vddkConnection(url, opts.env),
        vm: vm.ref,
        writable: true,
        logger,
      });
      openWriter = (d) => vddk.openWriter(d, opts);
    } else {
      const hot = new HotAddTransport({
        client,
        inventory: inv,
        proxyVm: opts.proxyVm,
        ...hotAddEnv(opts.env),
        writable: true,
        logger,
      });
      // the proxy must be able to attach every disk before the VM is touched at all
      await hot.check(vm, disks, opts);
      openWriter = (d, i) => hot.open(d, i, undefined, opts);
    }
    for (const d of opts.disks ?? [])
      if (!Number.isInteger(d) || d < 0 || d >= disks.length)
        throw new CofferError('USAGE', `--disk ${d}: ${vm.name} has disks 0 to ${disks.length - 1}`);
    const plans = (await plan(client, vm, disks, cfg, point, opts, logger)).filter(
      (p) => !opts.disks || opts.disks.includes(p.index),
    );
    const warnings = plans.filter((p) => p.mode === 'compare').map((p) => `disk ${p.index}: ${p.reason}`);
    for (const w of warnings) logger.warn(w);
    const total = plans.reduce((a, p) => a + (p.mode === 'cbt' ? p.changedBytes! : p.capacityBytes), 0);
    let done = 0;
    const progress = (n: number) => {
      done += n;
      opts.onProgress?.(done, total);
    };
    let changeTracking: 'reset' | 'kept' = 'kept';
    let touched = false;
    let failure: unknown;
    try {
      for (const p of plans) {
        const i = p.index;
        if (p.mode === 'cbt' && p.areas.length === 0) continue; // nothing changed since the point: not even attached
        touched = true;
        const dev = await openWriter(disks[i]!, i);
        try {
          if (p.mode === 'cbt') await writeAreas(dev, i, p, point, opts, progress);
          else await compareAndWrite(dev, i, p, point, opts, progress);
        } finally {
          await dev.close();
        }
      }
    } catch (e) {
      failure = e;
    }
    // also after a failure part-way: whatever was written must not hide behind a changeId from before it
    if (vm.config?.changeTrackingEnabled && touched) {
      try {
        await setChangeTracking(client, vm, false);
        await setChangeTracking(client, vm, true);
        changeTracking = 'reset';
      } catch (e) {
        logger.warn(
          `could not reset change tracking on ${vm.name} after writing its disks (${(e as Error).message}): ` +
            `turn CBT off and on before the next backup, or its next incremental may miss the rollback's writes`,
        );
        failure ??= e;
      }
    }
    if (failure !== undefined) throw failure;
    if (opts.powerOn) await powerOnVm(client, vm.ref, opts);
    const modes = new Set(plans.map((p) => p.mode));
    return {
      vm: name,
      moref: vm.ref.value,
      mode: modes.size === 1 ? [...modes][0]! : modes.size === 0 ? 'cbt' : 'mixed',
      transport,
      bytesCompared: plans.reduce((a, p) => a + p.bytesCompared, 0),
      bytesWritten: plans.reduce((a, p) => a + p.bytesWritten, 0),
      changeTracking,
      poweredOn: Boolean(opts.powerOn),
      disks: plans.map(({ areas: _a, ...p }) => p),
      warnings,
    };
  } finally {
    await client.close();
  }
}

type DiskPlan = QuickRollbackDisk & { areas: Extent[] };

/**
 * A snapshot of the VM as it is now; per disk QueryChangedDiskAreas(snapshot, changeId of the restore point). The
 * snapshot is removed before anything is written (the VM is powered off: nothing changes in between).
 */
async function plan(
  client: VimClient,
  vm: VmInfo,
  disks: VmDisk[],
  cfg: StoredVmConfig,
  point: RollbackPoint,
  op: Op,
  logger: Logger,
): Promise<DiskPlan[]> {
  const compare = (i: number, reason: string): DiskPlan => ({
    index: i,
    fileName: disks[i]!.fileName,
    capacityBytes: disks[i]!.capacityBytes,
    mode: 'compare',
    reason,
    bytesCompared: 0,
    bytesWritten: 0,
    areas: [],
  });
  const tokens = disks.map((_, i) => point.disks[i]?.changeToken ?? cfg.disks[i]?.changeId ?? null);
  if (!vm.config?.changeTrackingEnabled)
    return disks.map((_, i) => compare(i, 'change tracking is off on the VM; comparing the whole disk'));
  if (tokens.every((t) => !t))
    return disks.map((_, i) => compare(i, 'the restore point has no changeId; comparing the whole disk'));
  const snapName = `${SNAPSHOT_PREFIX}rollback-${randomUUID()}`;
  const owner = ownerLine({
    host: hostname(),
    pid: process.pid,
    job: 'quick-rollback',
    started: new Date().toISOString(),
    leaseS: DEFAULT_SNAPSHOT_LEASE_S,
  });
  const res = await runTask(
    client,
    'CreateSnapshot_Task',
    vm.ref,
    { name: snapName, description: `Coffer quick rollback (changed areas)\n${owner}`, memory: false, quiesce: false },
    `creating snapshot ${snapName} of ${vm.name} (quick rollback)`,
    op,
  );
  if (!res?.attrs['type'])
    throw new CofferError('VSPHERE_FAULT', 'CreateSnapshot_Task returned no snapshot', { details: { protocol: true } });
  const snapshot = MoRef.from(res);
  const out: DiskPlan[] = [];
  try {
    for (const [i, d] of disks.entries()) {
      const token = tokens[i];
      if (!token) {
        out.push(compare(i, 'the restore point has no changeId for this disk; comparing the whole disk'));
        continue;
      }
      const src = new VsphereDiskSource({
        client,
        vm: vm.ref,
        snapshot,
        disk: d,
        uri: d.fileName,
        reader: { description: d.fileName, read: () => Promise.reject(new Error('unused')), close: async () => {} },
      });
      try {
        const areas = await src.query(token, op);
        const changedBytes = areas.reduce((a, x) => a + x.length, 0);
        out.push({
          index: i,
          fileName: d.fileName,
          capacityBytes: d.capacityBytes,
          mode: 'cbt',
          changedAreas: areas.length,
          changedBytes,
          bytesCompared: 0,
          bytesWritten: 0,
          areas,
        });
      } catch (e) {
        if (!(e instanceof CofferError && e.code === 'VSPHERE_FAULT' && e.details.fault)) throw e;
        out.push(
          compare(
            i,
            `vCenter rejected the restore point's changeId ${JSON.stringify(token)} (${e.message}): change tracking ` +
              `was reset since the restore point; comparing the whole disk`,
          ),
        );
      }
    }
  } finally {
    // cleanup without the caller's signal: a Ctrl-C must still remove the snapshot
    await runTask(
      client,
      'RemoveSnapshot_Task',
      snapshot,
      { removeChildren: false, consolidate: true },
      `removing snapshot ${snapName}`,
      {},
    ).catch((e: Error) => logger.warn(`could not remove the quick-rollback snapshot ${snapName}: ${e.message}`));
  }
  return out;
}

async function writeAreas(
  dev: DiskWriter,
  i: number,
  p: DiskPlan,
  point: RollbackPoint,
  op: Op,
  progress: (n: number) => void,
): Promise<void> {
  for (const a of p.areas) {
    for (let off = a.offset; off < a.offset + a.length; off += STEP_BYTES) {
      op.signal?.throwIfAborted();
      const len = Math.min(STEP_BYTES, a.offset + a.length - off);
      const data = await point.read(i, off, len, op);
      await dev.write(off, data, op);
      p.bytesWritten += len;
      progress(len);
    }
  }
}

async function compareAndWrite(
  dev: DiskWriter,
  i: number,
  p: DiskPlan,
  point: RollbackPoint,
  op: Op,
  progress: (n: number) => void,
): Promise<void> {
  const cur = Buffer.alloc(STEP_BYTES);
  for (let off = 0; off < p.capacityBytes; off += STEP_BYTES) {
    op.signal?.throwIfAborted();
    const len = Math.min(STEP_BYTES, p.capacityBytes - off);
    const have = cur.subarray(0, len);
    const [, want] = await Promise.all([dev.read(off, len, have, op), point.read(i, off, len, op)]);
    // runs of differing grains, written as one piece each
    let runStart = -1;
    const flush = async (end: number) => {
      await dev.write(off + runStart, want.subarray(runStart, end), op);
      p.bytesWritten += end - runStart;
      runStart = -1;
    };
    for (let g = 0; g < len; g += COMPARE_GRAIN) {
      const end = Math.min(g + COMPARE_GRAIN, len);
      const differs = !have.subarray(g, end).equals(want.subarray(g, end));
      if (differs && runStart < 0) runStart = g;
      else if (!differs && runStart >= 0) await flush(g);
    }
    if (runStart >= 0) await flush(len);
    p.bytesCompared += len;
    progress(len);
  }
}

async function setChangeTracking(client: VimClient, vm: VmInfo, enabled: boolean): Promise<void> {
  await runTask(
    client,
    'ReconfigVM_Task',
    vm.ref,
    { spec: { _type: 'VirtualMachineConfigSpec', changeTrackingEnabled: enabled } },
    `${enabled ? 'enabling' : 'disabling'} change tracking on ${vm.name}`,
    {},
  );
}
