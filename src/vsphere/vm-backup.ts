import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { CofferError, silentLogger, type Logger, type Op } from '../shared/index.js';
import type { DiskTransport } from './disk-transport.js';
import { dcPathOf, type Inventory, type VmInfo } from './inventory.js';
import { retrieveOne } from './property-collector.js';
import { runTask } from './task.js';
import type { VimClient } from './vim-client.js';
import { toStoredConfig, type StoredVmConfig } from './vm-config.js';
import { parseConfigInfo, parseDatastorePath, parseSnapshotInfo, unsnapshottable } from './vm-model.js';
import { VsphereDiskSource } from './vsphere-disk-source.js';
import { boolOf, MoRef } from './xml.js';

export const SNAPSHOT_PREFIX = 'coffer-';
const SNAPSHOT_DESCRIPTION =
  'Created by Coffer for a backup and removed when it ends. A leftover one (from a killed backup) is removed by the ' +
  'next Coffer backup of this VM once its owner is gone or its lease ran out.';
/** How long a Coffer snapshot of another (or unknown) process is left alone (default 24 h; COFFER_SNAPSHOT_LEASE_S). */
export const DEFAULT_SNAPSHOT_LEASE_S = 24 * 3600;

/** Who made a Coffer snapshot, written into its description (vSphere keeps up to 4 KiB there). */
export interface SnapshotOwner {
  host: string;
  pid: number;
  job: string;
  started: string;
  leaseS: number;
}

export function ownerLine(o: SnapshotOwner): string {
  return (
    `coffer-owner: host=${encodeURIComponent(o.host)} pid=${o.pid} job=${encodeURIComponent(o.job)} ` +
    `started=${o.started} lease-s=${o.leaseS}`
  );
}

export function parseOwner(description: string): SnapshotOwner | undefined {
  const m = /coffer-owner: host=(\S+) pid=(\d+) job=(\S*) started=(\S+) lease-s=(\d+)/.exec(description);
  if (!m) return undefined;
  try {
    return {
      host: decodeURIComponent(m[1]!),
      pid: Number(m[2]),
      job: decodeURIComponent(m[3]!),
      started: m[4]!,
      leaseS: Number(m[5]),
    };
  } catch {
    return undefined;
  }
}

/**
 * Whether a Coffer snapshot found on a VM is an orphan to remove: one of this host's processes that is gone, or any
 * whose lease ran out; a snapshot of a live process (or of another host, within its lease) is left alone.
 * Snapshots without an owner line (older Coffer versions) are orphans.
 */
export function isOrphan(
  description: string,
  now: Date,
  self: { host: string; alive: (pid: number) => boolean },
): boolean {
  const o = parseOwner(description);
  if (!o) return true;
  const started = Date.parse(o.started);
  if (!Number.isFinite(started) || started + o.leaseS * 1000 <= now.getTime()) return true;
  if (o.host === self.host) return !self.alive(o.pid);
  return false;
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** --quiesce: what to ask for (auto: the best the guest offers, falling back down to crash-consistent). */
export type QuiesceRequest = 'auto' | 'app' | 'fs' | 'none';
/** What a snapshot obtained: application-consistent (VSS), file-system-consistent (guest freeze), crash-consistent. */
export type QuiesceMode = 'app' | 'fs' | 'crash';

export interface VmBackupOptions extends Op {
  /** Quiesce the guest when VMware Tools runs (default true; --no-quiesce turns it off): quiesceMode 'none'. */
  quiesce: boolean;
  /** default: 'auto' when quiesce, else 'none' */
  quiesceMode?: QuiesceRequest | undefined;
  /** fail (VSPHERE_QUIESCE) instead of falling back to a less consistent snapshot */
  quiesceRequired?: boolean | undefined;
  transport: DiskTransport;
  /** vsphere://HOST:PORT, for the sources' uri (no credentials). */
  display: string;
  logger?: Logger | undefined;
  taskTimeoutMs?: number;
  /** Job id written into the snapshot's owner line (server jobs); default "cli". */
  job?: string | undefined;
  /** Lease of the snapshot in seconds (default DEFAULT_SNAPSHOT_LEASE_S). */
  snapshotLeaseS?: number | undefined;
}

/** A VM prepared for backup: a Coffer snapshot exists until close() (which always tries to remove it). */
export interface VmBackupSession {
  vm: VmInfo;
  disks: VsphereDiskSource[];
  config: StoredVmConfig;
  consistency: { snapshot: true; quiesced: boolean };
  /** the consistency the snapshot obtained, and the fallbacks taken on the way (warnings) */
  quiesce: { requested: QuiesceRequest; mode: QuiesceMode; fallbacks: string[] };
  /** CBT was off and Coffer turned it on: this backup is full, the next one can be incremental. */
  cbtEnabledNow: boolean;
  orphansRemoved: string[];
  /** Independent and physical-mode RDM disks: not in the snapshot, not in the restore point (warned). */
  skippedDisks: { key: number; fileName: string; reason: string }[];
  snapshot: MoRef;
  snapshotName: string;
  /**
   * Before the restore point is committed: the snapshot read is still there with the same disk files
   * (VSPHERE_CAPTURE_LOST otherwise: removed by someone else mid-read, or its files moved). Returns warnings (a vMotion
   * to another host during the backup: harmless, the disks are on shared storage).
   */
  verify(op?: Op): Promise<string[]>;
  /** set once close() ran ConsolidateVMDisks_Task because vCenter reported consolidationNeeded */
  consolidated: () => boolean;
  /** Removes the snapshot (never with the caller's signal: a cancelled backup still cleans up). */
  close(): Promise<{ snapshotRemoved: boolean }>;
}

/**
 * The snapshot lifecycle of a backup (DESIGN.md §vSphere): enable CBT when off, remove orphaned Coffer snapshots,
 * CreateSnapshot_Task (no memory; quiesced when VMware Tools runs), read the snapshot's disks in device order through
 * the transport, and remove the snapshot again - also when anything here fails.
 */
export async function openVmBackup(
  client: VimClient,
  inv: Inventory,
  vm: VmInfo,
  opts: VmBackupOptions,
): Promise<VmBackupSession> {
  const logger = opts.logger ?? silentLogger;
  const task = { signal: opts.signal, timeoutMs: opts.taskTimeoutMs ?? 30 * 60_000 };
  if (!vm.config) throw new CofferError('VSPHERE_FAULT', `vCenter sent no configuration for VM ${vm.name}`);
  if (vm.config.template) throw new CofferError('USAGE', `${vm.name} is a template; back up a VM`);
  if (vm.config.disks.length === 0) throw new CofferError('SOURCE_UNREADABLE', `VM ${vm.name} has no virtual disks`);

  let cbtEnabledNow = false;
  if (!vm.config.changeTrackingEnabled) {
    logger.warn(
      `VM ${vm.name}: changed block tracking (CBT) is off; turning it on. This backup reads every allocated block; ` +
        `the next one can be incremental.`,
    );
    await runTask(
      client,
      'ReconfigVM_Task',
      vm.ref,
      { spec: { _type: 'VirtualMachineConfigSpec', changeTrackingEnabled: true } },
      `enabling CBT on ${vm.name}`,
      task,
    );
    cbtEnabledNow = true;
  }

  const orphansRemoved: string[] = [];
  const self = { host: hostname(), alive: pidAlive };
  for (const s of vm.snapshots.filter((x) => x.name.startsWith(SNAPSHOT_PREFIX))) {
    if (!isOrphan(s.description, new Date(), self)) {
      const o = parseOwner(s.description);
      logger.warn(
        `VM ${vm.name}: leaving Coffer snapshot ${s.name} alone: it belongs to a running backup (host ${o?.host}, ` +
          `pid ${o?.pid}, job ${o?.job}, started ${o?.started})`,
      );
      continue;
    }
    logger.warn(`VM ${vm.name}: removing the orphaned Coffer snapshot ${s.name} (left by an interrupted backup)`);
    await runTask(
      client,
      'RemoveSnapshot_Task',
      s.ref,
      { removeChildren: false, consolidate: true },
      `removing orphaned snapshot ${s.name}`,
      task,
    );
    orphansRemoved.push(s.name);
  }

  await consolidateIfNeeded(client, vm, logger, task, 'before the backup');

  const requested: QuiesceRequest = opts.quiesceMode ?? (opts.quiesce ? 'auto' : 'none');
  const plan = quiescePlan(vm, requested, Boolean(opts.quiesceRequired));
  const fallbacks = [...plan.notes];
  for (const n of plan.notes) logger.warn(`VM ${vm.name}: ${n}`);
  const owner: SnapshotOwner = {
    host: self.host,
    pid: process.pid,
    job: opts.job ?? 'cli',
    started: new Date().toISOString(),
    leaseS: opts.snapshotLeaseS ?? DEFAULT_SNAPSHOT_LEASE_S,
  };
  const description = `${SNAPSHOT_DESCRIPTION}\n${ownerLine(owner)}`;
  const snapshotName = `${SNAPSHOT_PREFIX}${randomUUID()}`;
  let snapshot: MoRef | undefined;
  let mode: QuiesceMode = 'crash';
  for (const [i, attempt] of plan.attempts.entries()) {
    try {
      const result = await runTask(
        client,
        'CreateSnapshot_Task',
        vm.ref,
        { name: snapshotName, description, memory: false, quiesce: attempt !== 'crash' },
        `creating ${attempt === 'crash' ? 'a crash-consistent' : `a quiesced (${attempt})`} snapshot ${snapshotName} ` +
          `of ${vm.name}`,
        task,
      );
      if (!result?.attrs['type'])
        throw new CofferError('VSPHERE_FAULT', 'CreateSnapshot_Task returned no snapshot', {
          details: { protocol: true },
        });
      snapshot = MoRef.from(result);
      mode = attempt;
      break;
    } catch (e) {
      // A snapshot created although we saw a failure (timeout, cancel) is found by name and removed.
      await removeByName(client, vm.ref, snapshotName, logger).catch(() => undefined);
      const quiesceFault =
        attempt !== 'crash' && e instanceof CofferError && e.code === 'VSPHERE_FAULT' && e.details.fault;
      if (!quiesceFault) throw e;
      const next = plan.attempts[i + 1];
      if (!next) {
        throw new CofferError(
          'VSPHERE_QUIESCE',
          `VM ${vm.name}: the quiesced snapshot failed (${(e as Error).message}) and --quiesce-required forbids a ` +
            `less consistent one`,
          {
            cause: e,
            details: { requested, fault: (e as CofferError).details.fault },
            hint: 'check VMware Tools and the guest (VSS writers, freeze scripts), or drop --quiesce-required',
          },
        );
      }
      const note = `a quiesced (${attempt}) snapshot failed (${(e as Error).message}); falling back to ${next}`;
      logger.warn(`VM ${vm.name}: ${note}`);
      fallbacks.push(note);
    }
  }
  if (!snapshot) throw new CofferError('INTERNAL', 'no snapshot attempt was made');
  const quiesce = mode !== 'crash';

  let removed = false;
  let consolidated = false;
  const afterRemoval = async () => {
    try {
      consolidated = await consolidateIfNeeded(client, vm, logger, { timeoutMs: task.timeoutMs }, 'after the backup');
    } catch (e) {
      logger.warn(
        `VM ${vm.name}: consolidating its disks failed (${(e as Error).message}); the next Coffer backup tries again ` +
          `(or run "Consolidate" in vCenter)`,
      );
    }
  };
  const remove = async (): Promise<{ snapshotRemoved: boolean }> => {
    if (removed) return { snapshotRemoved: true };
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        await runTask(
          client,
          'RemoveSnapshot_Task',
          snapshot,
          { removeChildren: false, consolidate: true },
          `removing snapshot ${snapshotName}`,
          { timeoutMs: task.timeoutMs },
        );
        removed = true;
        await afterRemoval();
        return { snapshotRemoved: true };
      } catch (e) {
        if (e instanceof CofferError && e.code === 'NOT_FOUND') {
          removed = true;
          await afterRemoval();
          return { snapshotRemoved: true };
        }
        logger.warn(
          `VM ${vm.name}: removing snapshot ${snapshotName} failed (attempt ${attempt} of 3): ${(e as Error).message}`,
        );
        if (attempt < 3) await new Promise((r) => setTimeout(r, 1000 * attempt));
      }
    }
    logger.warn(
      `VM ${vm.name}: snapshot ${snapshotName} is still on the VM; the next Coffer backup ` +
        `removes it (or delete it in vCenter)`,
    );
    return { snapshotRemoved: false };
  };

  const opened: VsphereDiskSource[] = [];
  try {
    const fullCfg = parseConfigInfo(
      need((await retrieveOne(client, snapshot, ['config'], opts)).props.get('config'), 'snapshot config'),
    );
    const skipped: { key: number; fileName: string; reason: string }[] = [];
    for (const d of fullCfg.disks) {
      const why = unsnapshottable(d);
      if (why) {
        logger.warn(`VM ${vm.name}: skipping disk ${d.key} (${d.fileName}): ${why}; back it up from inside the guest`);
        skipped.push({ key: d.key, fileName: d.fileName, reason: why });
      }
    }
    const snapCfg = { ...fullCfg, disks: fullCfg.disks.filter((d) => !unsnapshottable(d)) };
    if (snapCfg.disks.length === 0)
      throw new CofferError(
        'VSPHERE_DISK_LAYOUT',
        `VM ${vm.name} has no disk a snapshot can capture (${skipped.map((s) => s.reason).join('; ')})`,
      );
    const config = toStoredConfig(vm, snapCfg, inv, {
      quiesced: quiesce,
      snapshotName,
      quiesceMode: mode,
      quiesceRequested: requested,
    });
    // the datacenter's inventory path, not its name: /folder URLs need it for datacenters inside folders
    const ctx = { datacenter: vm.datacenter ? dcPathOf(vm.datacenter) : '', vmName: vm.name };
    if (!ctx.datacenter) throw new CofferError('VSPHERE_FAULT', `cannot find the datacenter of VM ${vm.name}`);
    opts.transport.prepare?.(vm.ref, snapshot);
    for (const [i, disk] of snapCfg.disks.entries()) {
      if (!disk.fileName)
        throw new CofferError(
          'SOURCE_UNREADABLE',
          `disk ${disk.key} of ${vm.name} has no file backing (${disk.backingType || 'unknown'}); RDMs and other ` +
            `backings are not supported`,
        );
      parseDatastorePath(disk.fileName);
      const reader = await opts.transport.open(disk, i, ctx, opts);
      opened.push(
        new VsphereDiskSource({
          client,
          vm: vm.ref,
          snapshot,
          disk,
          reader,
          uri:
            `${opts.display}/${encodeURIComponent(vm.name)}` +
            `?disk=${disk.key}&file=${encodeURIComponent(disk.fileName)}`,
          warn: (m) => logger.warn(m),
        }),
      );
    }
    return {
      vm,
      disks: opened,
      config,
      consistency: { snapshot: true, quiesced: quiesce },
      quiesce: { requested, mode, fallbacks },
      cbtEnabledNow,
      orphansRemoved,
      skippedDisks: skipped,
      snapshot,
      snapshotName,
      consolidated: () => consolidated,
      verify: (op?: Op) =>
        verifyCapture(
          client,
          vm,
          snapshot,
          snapshotName,
          snapCfg.disks,
          opts.signal ? { signal: opts.signal } : (op ?? {}),
        ),
      async close() {
        await Promise.allSettled(opened.map((d) => d.close()));
        return remove();
      },
    };
  } catch (e) {
    await Promise.allSettled(opened.map((d) => d.close()));
    await remove();
    throw e;
  }
}

/** Runs ConsolidateVMDisks_Task when vCenter says the VM needs it (a snapshot removal that left redo logs behind). */
async function consolidateIfNeeded(
  client: VimClient,
  vm: VmInfo,
  logger: Logger,
  task: { signal?: AbortSignal | undefined; timeoutMs: number },
  when: string,
): Promise<boolean> {
  const o = await retrieveOne(client, vm.ref, ['runtime'], task);
  const rt = o.props.get('runtime');
  if (!rt || boolOf(rt, 'consolidationNeeded') !== true) return false;
  logger.warn(`VM ${vm.name}: vCenter reports that its disks need consolidation; consolidating ${when}`);
  await runTask(client, 'ConsolidateVMDisks_Task', vm.ref, {}, `consolidating the disks of ${vm.name}`, task);
  return true;
}

/**
 * The check before a restore point is committed (DESIGN.md §vSphere, faults): the snapshot still exists and still
 * names the files that were read. A vMotion (another host) changes neither and is only reported.
 */
async function verifyCapture(
  client: VimClient,
  vm: VmInfo,
  snapshot: MoRef,
  snapshotName: string,
  disks: { key: number; fileName: string }[],
  op: Op,
): Promise<string[]> {
  const lost = (why: string, cause?: unknown) =>
    new CofferError(
      'VSPHERE_CAPTURE_LOST',
      `VM ${vm.name}: ${why} during the backup; what was read cannot be trusted, no restore point is made`,
      {
        cause,
        details: { vm: vm.name, snapshot: snapshotName },
        hint: 'do not remove or move Coffer snapshots while a backup runs; run the backup again',
      },
    );
  const o = await retrieveOne(client, vm.ref, ['snapshot', 'runtime.host'], op);
  if (!parseSnapshotInfo(o.props.get('snapshot')).some((x) => x.ref.equals(snapshot)))
    throw lost(`the snapshot ${snapshotName} was removed by someone else`);
  let cfg;
  try {
    cfg = parseConfigInfo(need((await retrieveOne(client, snapshot, ['config'], op)).props.get('config'), 'config'));
  } catch (e) {
    if (e instanceof CofferError && e.code === 'NOT_FOUND')
      throw lost(`the snapshot ${snapshotName} was removed by someone else`, e);
    throw e;
  }
  for (const d of disks) {
    const now = cfg.disks.find((x) => x.key === d.key);
    if (!now || now.fileName !== d.fileName)
      throw lost(`disk ${d.key} of snapshot ${snapshotName} moved from ${d.fileName} to ${now?.fileName ?? 'nowhere'}`);
  }
  const warnings: string[] = [];
  const hostNow = o.props.get('runtime.host')?.text.trim();
  if (vm.host && hostNow && hostNow !== vm.host.value)
    warnings.push(
      `VM ${vm.name} moved from host ${vm.host.value} to ${hostNow} during the backup (vMotion); the snapshot's ` +
        `disks did not change, the restore point is complete`,
    );
  return warnings;
}

/**
 * The snapshots to try, best first (DESIGN.md §vSphere, quiescing). A quiesced CreateSnapshot_Task on a Windows guest
 * goes through VMware Tools' VSS requestor (application-consistent); on other guests it freezes the file systems
 * (file-system-consistent; application-consistent only with the guest's own pre-freeze scripts, which Coffer cannot
 * see). Without running Tools nothing can be quiesced. `required`: never fall below the requested level.
 */
export function quiescePlan(
  vm: Pick<VmInfo, 'name' | 'toolsRunningStatus'> & { config?: { guestId?: string | undefined } | undefined },
  requested: QuiesceRequest,
  required: boolean,
): { attempts: QuiesceMode[]; notes: string[] } {
  if (requested === 'none') return { attempts: ['crash'], notes: [] };
  const tools = vm.toolsRunningStatus === 'guestToolsRunning';
  const windows = /^win/i.test(vm.config?.guestId ?? '');
  const quiesced: QuiesceMode = windows ? 'app' : 'fs';
  const fail = (why: string) =>
    new CofferError('VSPHERE_QUIESCE', `VM ${vm.name}: ${why}; --quiesce-required forbids a less consistent snapshot`, {
      details: { requested },
      hint: 'start VMware Tools in the guest, ask for less (--quiesce fs/none), or drop --quiesce-required',
    });
  if (!tools) {
    if (required) throw fail(`VMware Tools is not running, so the guest cannot be quiesced (${requested} asked)`);
    return {
      attempts: ['crash'],
      notes: ['VMware Tools is not running; the snapshot is crash-consistent (not quiesced)'],
    };
  }
  const notes: string[] = [];
  if (requested === 'app' && !windows) {
    if (required)
      throw fail(
        `application-consistent snapshots need a Windows guest (VSS); guest ${vm.config?.guestId ?? '?'} can be ` +
          `frozen (file-system-consistent) only`,
      );
    notes.push(`guest ${vm.config?.guestId ?? '?'} has no VSS: asking for a file-system-consistent snapshot instead`);
  }
  return { attempts: required ? [quiesced] : [quiesced, 'crash'], notes };
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined)
    throw new CofferError('VSPHERE_FAULT', `vCenter sent no ${what}`, { details: { protocol: true } });
  return v;
}

/** Removes every snapshot of the VM with this name (cleanup after an uncertain CreateSnapshot_Task). */
async function removeByName(client: VimClient, vm: MoRef, name: string, logger: Logger): Promise<void> {
  const o = await retrieveOne(client, vm, ['snapshot']);
  for (const s of parseSnapshotInfo(o.props.get('snapshot')).filter((x) => x.name === name)) {
    logger.warn(`removing snapshot ${name} created by the failed attempt`);
    await runTask(
      client,
      'RemoveSnapshot_Task',
      s.ref,
      { removeChildren: false, consolidate: true },
      `removing snapshot ${name}`,
      {},
    );
  }
}

/** The Coffer snapshots currently on a VM (tests and diagnostics). */
export async function cofferSnapshots(client: VimClient, vm: MoRef, op: Op = {}): Promise<string[]> {
  const o = await retrieveOne(client, vm, ['snapshot'], op);
  return parseSnapshotInfo(o.props.get('snapshot'))
    .filter((s) => s.name.startsWith(SNAPSHOT_PREFIX))
    .map((s) => s.name);
}
