import { CofferError, type Logger, type Op } from '../shared/index.js';
import { parseStoredConfig, type StoredVmConfig } from './vm-config.js';
import type { VsphereVmBackup } from './vsphere-backup.js';
import { openVsphereRestore, type VsphereRestoreOptions, type VsphereVmRestore } from './vsphere-restore.js';
import {
  quickRollback,
  type QuickRollbackOptions,
  type QuickRollbackResult,
  type RollbackPoint,
} from './restore-quick-rollback.js';

/*
 * vSphere as the engine's use cases see it (engine VmSource, VmSourceOpener, VmRestoreTargetOpener in
 * src/engine/use-cases): vsphere/ may not import the engine (docs/DESIGN.md §Layers), so these satisfy the engine's
 * interfaces structurally and the composition root (bin, cli, server, jobs) injects them.
 */

/**
 * A VM opened for backup as an engine VM source: finishing it removes the snapshot; its report goes under `vsphere`.
 */
export function vsphereVmSource(vmb: VsphereVmBackup) {
  let finished: Promise<{ kind: string; cleanedUp: boolean; details: Record<string, unknown> }> | undefined;
  return {
    vmName: vmb.vmName,
    vmId: vmb.vmId,
    disks: vmb.disks,
    consistency: vmb.consistency,
    vmConfig: vmb.vmConfig as unknown as Record<string, unknown>,
    verifyCapture: (op: Op) => vmb.verify(op),
    finish() {
      finished ??= vmb.close().then(({ snapshotRemoved }) => ({
        kind: 'vsphere',
        cleanedUp: snapshotRemoved,
        details: { ...vmb.report(), snapshotRemoved },
      }));
      return finished;
    },
  };
}

/** An engine VmSourceOpener for vsphere://HOST/VM: opened after the repository (no snapshot for a wrong password). */
export function vsphereSourceOpener(open: (op: Op) => Promise<VsphereVmBackup>) {
  return { afterRepository: true, open: async (op: Op) => vsphereVmSource(await open(op)) };
}

/** What the opener needs of a manifest (structurally the engine's Manifest). */
interface StoredPoint {
  id: string;
  vmConfig?: Record<string, unknown> | undefined;
  disks: readonly { sizeBytes: number }[];
}

/**
 * An engine VmRestoreTargetOpener for vCenter: the stored configuration must describe the restore point's disks
 * (count and sizes) before a VM is created from it.
 */
export function vsphereRestoreTargetOpener(
  open: (cfg: StoredVmConfig, opts: VsphereRestoreOptions) => Promise<VsphereVmRestore>,
  opts: Omit<VsphereRestoreOptions, 'signal'>,
) {
  return {
    async open(manifest: StoredPoint, op: Op): Promise<VsphereVmRestore> {
      const pointId = manifest.id;
      const cfg = parseStoredConfig(manifest.vmConfig, pointId);
      if (cfg.disks.length !== manifest.disks.length)
        throw new CofferError(
          'CORRUPT',
          `restore point ${pointId}: the stored configuration lists ${cfg.disks.length} disks, the ` +
            `manifest ${manifest.disks.length}`,
        );
      for (const [i, d] of cfg.disks.entries()) {
        if (d.capacityBytes !== manifest.disks[i]!.sizeBytes)
          throw new CofferError(
            'CORRUPT',
            `restore point ${pointId}: disk ${i} is ${manifest.disks[i]!.sizeBytes} bytes, its stored configuration ` +
              `says ${d.capacityBytes}`,
          );
      }
      return open(cfg, { ...opts, signal: op.signal });
    },
  };
}

/**
 * An engine VmRollback (rollbackVm) for vCenter: the stored configuration must list the restore point's disks; the
 * existing VM `spec` (vsphere://HOST/VM) is rolled back by src/vsphere's quickRollback.
 */
export function vsphereQuickRollback(spec: string, opts: Omit<QuickRollbackOptions, 'onProgress'>) {
  return (
    manifest: StoredPoint,
    point: RollbackPoint,
    onProgress: (done: number, total: number) => void,
  ): Promise<QuickRollbackResult> => {
    const cfg = parseStoredConfig(manifest.vmConfig, manifest.id);
    if (cfg.disks.length !== manifest.disks.length)
      throw new CofferError(
        'CORRUPT',
        `restore point ${manifest.id}: its configuration and manifest disagree on the disks`,
      );
    return quickRollback(spec, cfg, point, { ...opts, onProgress });
  };
}

/** A vCenter as a process executing a job reaches it: its base URL (vsphere://HOST:PORT), credentials, TLS policy. */
export interface VcenterAccess {
  name: string;
  url: string;
  user: string;
  password: string;
  thumbprint?: string | undefined;
  insecureTls: boolean;
}

/** What a whole-VM restore job says about its target (structurally src/jobs' RestoreVmJob). */
export interface VmRestoreJobSpec {
  to: string;
  vcenter?: string | undefined;
  datastore: string;
  datacenter?: string | undefined;
  storagePolicy?: string | undefined;
  folder?: string | undefined;
  pool?: string | undefined;
  host?: string | undefined;
  force: boolean;
  networkMap?: Record<string, string> | undefined;
  nicsDisconnected: boolean;
  keepMac: boolean;
  keepUuid: boolean;
  dryRun: boolean;
  proxyVm?: string | undefined;
  powerOn: boolean;
}

/** The environment variables that tell hot-add (quick rollback) where it runs; the rest of an environment stays out. */
export const HOTADD_ENV = ['COFFER_PRODUCT_UUID_PATH', 'COFFER_DISK_BY_ID_DIR', 'COFFER_HOTADD_STATE_DIR'] as const;

/**
 * The engine-side targets of a `restore-vm` job into a configured vCenter (the server's own runner and a remote proxy
 * alike): the job's `to` must be a VM of that vCenter; credentials and TLS policy come from `access`, never the job.
 */
export function vcenterVmRestore(
  access: VcenterAccess,
  job: VmRestoreJobSpec,
  logger?: Logger,
  /** where hot-add finds this machine (COFFER_PRODUCT_UUID_PATH, COFFER_DISK_BY_ID_DIR, COFFER_HOTADD_STATE_DIR) */
  hotaddEnv: Record<string, string | undefined> = {},
) {
  if (job.vcenter !== undefined && job.vcenter !== access.name)
    throw new CofferError('USAGE', `the job names vCenter ${job.vcenter}, its access is for ${access.name}`);
  if (!job.to.startsWith(`${access.url}/`))
    throw new CofferError('USAGE', `${job.to} is not a VM of vCenter ${access.name} (${access.url})`);
  const base = {
    tls: { thumbprint: access.thumbprint, insecure: access.insecureTls },
    env: { ...hotaddEnv, COFFER_VSPHERE_USER: access.user, COFFER_VSPHERE_PASSWORD: access.password },
    logger,
    datastore: job.datastore,
  };
  return {
    target: () =>
      vsphereRestoreTargetOpener((cfg, opts) => openVsphereRestore(job.to, cfg, opts), {
        ...base,
        datacenter: job.datacenter,
        storagePolicy: job.storagePolicy,
        folder: job.folder,
        pool: job.pool,
        host: job.host,
        force: job.force,
        networkMap: job.networkMap,
        nicsDisconnected: job.nicsDisconnected,
        keepMac: job.keepMac,
        keepUuid: job.keepUuid,
        dryRun: job.dryRun,
      }),
    rollback: () => vsphereQuickRollback(job.to, { ...base, proxyVm: job.proxyVm, powerOn: job.powerOn }),
  };
}
