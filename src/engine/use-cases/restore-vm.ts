import { PassThrough, type Readable } from 'node:stream';
import type { Manifest } from '../../format/index.js';
import type { Repository } from '../../repository/index.js';
import type { Op } from '../../shared/index.js';
import { restoreDisk } from '../restore.js';
import { withCodecPool, type EventSink, type ProgressEvent, type UseCaseContext } from './context.js';

/**
 * A VM being restored into a hypervisor (src/vsphere implements it for vCenter): the VM exists (created from the
 * stored configuration, or an existing one taken over); each disk is uploaded from a stream; then finish (power on)
 * or abort (delete a VM this restore created, never an existing one); close always.
 */
export interface VmRestoreTarget {
  readonly vmName: string;
  readonly vmId: string;
  readonly created: boolean;
  readonly disks: readonly { fileName: string; capacityBytes: number }[];
  readonly warnings: readonly string[];
  /** how the disks are written (e.g. nfc, folder), when the target says */
  readonly transport?: string;
  /** opened for a dry run: what the restore would do (nothing was created; upload must not be called) */
  readonly plan?: object | undefined;
  /** bytes sent to the hypervisor for the disks so far, when the target counts them */
  bytesSent?(): number;
  /** resolves to the name of the uploaded disk file */
  upload(disk: number, body: Readable, op?: Op): Promise<string>;
  finish(opts: { powerOn: boolean }): Promise<void>;
  abort(): Promise<void>;
  close(): Promise<void>;
}

/** Opens the target for a restore point (it checks the stored VM configuration against the manifest). */
export interface VmRestoreTargetOpener {
  open(manifest: Manifest, op: Op): Promise<VmRestoreTarget>;
}

export interface RestoreVmRequest {
  pointId: string;
  target: VmRestoreTargetOpener;
  powerOn?: boolean | undefined;
  checkIds?: boolean | undefined;
  onEvent?: EventSink<RestoreVmEvent> | undefined;
}

export type RestoreVmEvent = ProgressEvent | { type: 'disk-uploaded'; disk: number; fileName: string };

export interface RestoreVmResult {
  id: string;
  /** the VM name stored in the restore point */
  sourceVm: string;
  vm: string;
  moref: string;
  created: boolean;
  poweredOn: boolean;
  disks: { index: number; fileName: string; sizeBytes: number }[];
  warnings: string[];
  transport?: string | undefined;
  /** bytes that crossed the wire for the disks (a sparse disk over NFC: about its allocated data) */
  bytesSent?: number | undefined;
  durationMs: number;
}

/**
 * Restores a whole VM (DESIGN.md §vSphere): the target VM is prepared from the stored configuration, each disk is
 * streamed from the restore engine into the target's upload; a VM created here is deleted again if anything fails.
 */
export async function restoreVm(
  repo: Repository,
  ctx: UseCaseContext,
  req: RestoreVmRequest,
): Promise<RestoreVmResult> {
  const started = Date.now();
  const op = { signal: ctx.signal };
  const manifest = await repo.loadManifest(req.pointId, op);
  const target = await req.target.open(manifest, op);
  let ok = false;
  try {
    const total = manifest.disks.reduce((a, d) => a + d.sizeBytes, 0);
    let before = 0;
    await withCodecPool(ctx, repo.codecParams, async (pool) => {
      for (const [i, d] of manifest.disks.entries()) {
        const body = new PassThrough({ highWaterMark: 4 << 20 });
        // errors surface through `put` and restoreDisk; an upload refused before reading must not crash the process
        body.on('error', () => undefined);
        const put = target.upload(i, body, op);
        // an upload that fails (even before reading a byte) ends this disk at once: the restore engine is stopped
        // and the upload's error is the one reported
        const stop = new AbortController();
        const onAbort = () => stop.abort(ctx.signal?.reason);
        ctx.signal?.addEventListener('abort', onAbort, { once: true });
        let putError: unknown;
        const failed = put.then(
          () => new Promise<never>(() => undefined),
          (e: unknown) => {
            putError = e;
            body.destroy(e as Error);
            stop.abort(e);
            throw e;
          },
        );
        failed.catch(() => undefined);
        try {
          await Promise.race([
            restoreDisk(repo, pool, {
              pointId: req.pointId,
              disk: i,
              target: { kind: 'stream', stream: body },
              signal: stop.signal,
              checkIds: Boolean(req.checkIds),
              onProgress: (p) => req.onEvent?.({ type: 'progress', unit: 'bytes', done: before + p.bytesDone, total }),
            }),
            failed,
          ]);
          body.end();
        } catch (e) {
          body.destroy(e as Error);
          await put.catch(() => undefined);
          throw putError ?? e;
        } finally {
          ctx.signal?.removeEventListener('abort', onAbort);
        }
        req.onEvent?.({ type: 'disk-uploaded', disk: i, fileName: await put });
        before += d.sizeBytes;
      }
    });
    await target.finish({ powerOn: Boolean(req.powerOn) });
    ok = true;
  } finally {
    if (!ok) await target.abort();
    await target.close();
  }
  return {
    id: req.pointId,
    sourceVm: manifest.vm.name,
    vm: target.vmName,
    moref: target.vmId,
    created: target.created,
    poweredOn: Boolean(req.powerOn),
    disks: target.disks.map((d, i) => ({ index: i, fileName: d.fileName, sizeBytes: d.capacityBytes })),
    warnings: [...target.warnings],
    transport: target.transport,
    bytesSent: target.bytesSent?.(),
    durationMs: Date.now() - started,
  };
}
