import { spawn } from 'node:child_process';
import { link, mkdtemp, rename, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { NbdServer } from '../nbd/index.js';
import type { Repository } from '../repository/index.js';
import { CofferError, type Op } from '../shared/index.js';
import type { CodecPool } from './codec-pool.js';
import { RestorePointDevice } from './mount.js';

export type ExportFormat = 'qcow2' | 'vmdk' | 'vhdx';

export interface ExportRequest extends Op {
  pointId: string;
  disk: number;
  format: ExportFormat;
  target: string;
  force?: boolean;
  onProgress?: (p: { bytesDone: number; bytesTotal: number }) => void;
}

const QEMU_ARGS: Record<ExportFormat, string[]> = {
  qcow2: ['-O', 'qcow2'],
  // streamOptimized: what OVAs carry and what vSphere accepts for upload
  vmdk: ['-O', 'vmdk', '-o', 'subformat=streamOptimized'],
  vhdx: ['-O', 'vhdx'],
};

/**
 * Restores one disk as a qcow2, VMDK (streamOptimized) or VHDX image: the restore point is served read-only over NBD
 * on a private Unix socket (the instant-recovery device) and `qemu-img convert` writes the image, skipping what block
 * status reports as zeros. The image is written under a temporary name and renamed over the target when complete.
 */
export async function exportDisk(
  repo: Repository,
  pool: CodecPool,
  req: ExportRequest,
): Promise<{ id: string; disk: number; format: ExportFormat; sizeBytes: number; target: string; durationMs: number }> {
  const started = Date.now();
  const manifest = await repo.loadManifest(req.pointId, req);
  const disk = manifest.disks[req.disk];
  if (!disk) throw new CofferError('NOT_FOUND', `restore point ${manifest.id} has no disk ${req.disk}`);
  const exists = await stat(req.target).then(
    () => true,
    () => false,
  );
  if (exists && !req.force)
    throw new CofferError('TARGET_EXISTS', `restore target ${req.target} exists`, {
      hint: 'pass --force to overwrite it',
    });
  const index = await repo.loadIndex(disk.indexId, req);
  const device = await RestorePointDevice.open(repo, pool, index);
  const dir = await mkdtemp(join(tmpdir(), 'coffer-export-'));
  const socket = join(dir, 'nbd.sock');
  const server = new NbdServer(device);
  const tmp = join(dirname(req.target), `.${basename(req.target)}.coffer-partial-${process.pid}`);
  try {
    await server.listenPath(socket);
    await runQemuImg(
      ['convert', '-p', '-f', 'raw', ...QEMU_ARGS[req.format], `nbd+unix:///?socket=${socket}`, tmp],
      index.diskSizeBytes,
      req,
    );
    if (req.force) await rename(tmp, req.target);
    else {
      try {
        await link(tmp, req.target);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST')
          throw new CofferError('TARGET_EXISTS', `restore target ${req.target} appeared during the restore`);
        throw e;
      }
      await unlink(tmp);
    }
    return {
      id: manifest.id,
      disk: req.disk,
      format: req.format,
      sizeBytes: index.diskSizeBytes,
      target: req.target,
      durationMs: Date.now() - started,
    };
  } finally {
    await unlink(tmp).catch(() => undefined);
    await server.close();
    await device.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function runQemuImg(args: string[], total: number, req: ExportRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('qemu-img', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const onAbort = () => child.kill('SIGTERM');
    req.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (d: Buffer) => {
      // qemu-img -p prints "    (12.34/100%)"
      const m = /\((\d+(?:\.\d+)?)\/100%\)/.exec(d.toString());
      if (m) req.onProgress?.({ bytesDone: Math.round((Number(m[1]) / 100) * total), bytesTotal: total });
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4096);
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      req.signal?.removeEventListener('abort', onAbort);
      reject(
        new CofferError(
          'TARGET_UNWRITABLE',
          e.code === 'ENOENT'
            ? 'qemu-img is not installed: it writes qcow2, VMDK and VHDX images'
            : `cannot run qemu-img: ${e.message}`,
          { hint: 'install qemu-utils (scripts/setup.sh does)', cause: e },
        ),
      );
    });
    child.on('close', (code) => {
      req.signal?.removeEventListener('abort', onAbort);
      if (req.signal?.aborted) return reject(new CofferError('CANCELLED', 'cancelled'));
      if (code === 0) return resolve();
      const msg = stderr.trim().split('\n').pop() ?? '';
      reject(
        new CofferError(
          /No space left/i.test(msg) ? 'STORAGE_FULL' : 'TARGET_UNWRITABLE',
          `qemu-img convert failed: ${msg.replace(/^qemu-img: /, '') || `exit ${code}`}`,
        ),
      );
    });
  });
}
