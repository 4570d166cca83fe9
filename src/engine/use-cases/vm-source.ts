import type { BlockSource } from '../../sources/index.js';
import { CofferError, type Op } from '../../shared/index.js';

/**
 * What happened to the capture of a VM when it was finished, for the backup result: `kind` names it for front ends
 * (the CLI and the server show `details` under that key, e.g. `vsphere`), `cleanedUp` says whether the capture left
 * nothing behind (vSphere: the snapshot was removed).
 */
export interface CaptureReport {
  kind: string;
  cleanedUp: boolean;
  details: Record<string, unknown>;
}

/**
 * The disks of one VM, opened for a backup: disk images, NBD exports, or a vSphere VM's snapshot (src/vsphere
 * implements this for vCenter; the engine does not know vSphere). `finish` ends the capture: closes the disks and,
 * for a hypervisor, removes the snapshot. It is idempotent and never throws.
 */
export interface VmSource {
  /** the VM's own name where the source knows it (vSphere); restore points are grouped by the backup's VM name */
  readonly vmName?: string | undefined;
  /** a stable id of the VM in its hypervisor (vSphere: the moref) */
  readonly vmId?: string | null | undefined;
  /** in device order: disk i of the restore point */
  readonly disks: readonly BlockSource[];
  /** how the disks were captured (default: no snapshot, not quiesced) */
  readonly consistency?: { snapshot: boolean; quiesced: boolean } | undefined;
  /** the VM's configuration, stored in the manifest (FORMAT.md §6.1) */
  readonly vmConfig?: Record<string, unknown> | undefined;
  /**
   * Called after every disk was read and before the restore point is committed: throws when the capture cannot be
   * trusted any more (vSphere: the snapshot was removed mid-read); returns warnings.
   */
  verifyCapture?(op: Op): Promise<string[]>;
  finish(): Promise<CaptureReport | undefined>;
}

/** How a use case gets its VM source; the caller injects it (files, NBD, vSphere ...). */
export interface VmSourceOpener {
  open(op: Op): Promise<VmSource>;
  /**
   * Open only once the repository is open: a source with side effects (a vSphere snapshot) is not touched when the
   * repository cannot be opened (wrong password). Otherwise both open in parallel.
   */
  afterRepository?: boolean;
}

/**
 * A VM source from disks opened one by one (images, NBD exports): all open in parallel, every open settles before we
 * return (so a disk opened late is still closed), the first failure is thrown after closing the opened ones.
 */
export async function openDiskSet(openers: ((op: Op) => Promise<BlockSource>)[], op: Op = {}): Promise<VmSource> {
  if (openers.length === 0) throw new CofferError('USAGE', 'a backup needs at least one source disk');
  const opened: (BlockSource | undefined)[] = [];
  const results = await Promise.allSettled(
    openers.map(async (open, i) => {
      opened[i] = await open(op);
    }),
  );
  const disks = opened.filter((d): d is BlockSource => d !== undefined);
  const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bad) {
    await Promise.allSettled(disks.map((d) => d.close()));
    throw bad.reason;
  }
  let finished: Promise<undefined> | undefined;
  return {
    disks,
    finish() {
      finished ??= Promise.allSettled(disks.map((d) => d.close())).then(() => undefined);
      return finished;
    },
  };
}
