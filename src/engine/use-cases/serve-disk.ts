import { NbdServer } from '../../nbd/index.js';
import type { Repository } from '../../repository/index.js';
import { CofferError, type Logger } from '../../shared/index.js';
import type { CodecPool } from '../codec-pool.js';
import { RestorePointDevice } from '../mount.js';

export interface ServeDiskRequest {
  pointId: string;
  disk: number;
  /** address to listen on; port 0: any free port */
  host: string;
  port: number;
  exportName?: string | undefined;
  /** writes go to a local copy-on-write overlay (the repository is never written) */
  writable?: boolean | undefined;
  overlayPath?: string | undefined;
  cacheChunks?: number | undefined;
  logger?: Logger | undefined;
}

/** One disk of a restore point being served over NBD (instant recovery) until close(). */
export interface ServedDisk {
  /** nbd://HOST:PORT/EXPORT */
  uri: string;
  id: string;
  vm: string;
  disk: number;
  sizeBytes: number;
  writable: boolean;
  overlay: string | null;
  close(): Promise<void>;
}

/**
 * Instant recovery (`coffer mount`, the server's instant recoveries): one disk of a restore point as an NBD export,
 * read straight from the repository (RestorePointDevice); the caller keeps the pool open until close().
 */
export async function serveDisk(repo: Repository, pool: CodecPool, req: ServeDiskRequest): Promise<ServedDisk> {
  const manifest = await repo.loadManifest(req.pointId);
  const disk = manifest.disks[req.disk];
  if (!disk) throw new CofferError('NOT_FOUND', `restore point ${req.pointId} has no disk ${req.disk}`);
  const index = await repo.loadIndex(disk.indexId);
  const device = await RestorePointDevice.open(repo, pool, index, {
    writable: Boolean(req.writable),
    ...(req.cacheChunks !== undefined ? { cacheChunks: req.cacheChunks } : {}),
    ...(req.overlayPath ? { overlayPath: req.overlayPath } : {}),
  });
  const exportName = req.exportName ?? '';
  const server = new NbdServer(device, {
    exportName,
    description: `coffer ${manifest.vm.name} ${req.pointId} disk ${req.disk}`,
    ...(req.logger ? { logger: req.logger } : {}),
  });
  let addr: { host: string; port: number };
  try {
    addr = await server.listen(req.host, req.port);
  } catch (e) {
    await server.close().catch(() => undefined);
    await device.close();
    throw e;
  }
  const shownHost = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
  let closed: Promise<void> | undefined;
  return {
    uri: `nbd://${shownHost}:${addr.port}/${encodeURIComponent(exportName)}`,
    id: req.pointId,
    vm: manifest.vm.name,
    disk: req.disk,
    sizeBytes: index.diskSizeBytes,
    writable: device.writable,
    overlay: device.overlayPath ?? null,
    close() {
      closed ??= (async () => {
        try {
          await server.close();
        } finally {
          await device.close();
        }
      })();
      return closed;
    },
  };
}
