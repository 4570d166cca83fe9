import type { Command } from 'commander';
import { RestorePointDevice } from '../../engine/index.js';
import { NbdServer } from '../../nbd/index.js';
import { CofferError, formatBytes } from '../../shared/index.js';
import { parseInteger, type CommandKit, type CommonOpts } from '../kit/index.js';

type MountOpts = CommonOpts & {
  disk: string;
  nbd: string;
  exportName: string;
  writable?: boolean;
  overlay?: string;
  cacheChunks: string;
};

/** `coffer mount`: instant recovery, one disk of a restore point served over NBD until the process is stopped. */
export function mountCommand(program: Command, kit: CommandKit): void {
  kit
    .common(
      program
        .command('mount')
        .description('instant recovery: serve one disk of a restore point over NBD until SIGINT/SIGTERM'),
    )
    .argument('<id>', 'restore point id, unique prefix, or "latest"')
    .requiredOption('--disk <n>', 'disk index (0-based)')
    .option('--nbd <host:port>', 'address to listen on', '127.0.0.1:10809')
    .option('--export-name <name>', 'NBD export name', '')
    .option('--writable', 'accept writes into a local copy-on-write overlay (the repository is never written)')
    .option('--overlay <file>', 'overlay file for --writable (default: a temporary file removed at exit)')
    .option('--cache-chunks <n>', 'decoded chunks kept in memory', '24')
    .action(async (ref: string, o: MountOpts) => {
      const { deps } = kit;
      const logger = kit.logger(o);
      const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(o.nbd);
      if (!m || Number(m[2]) > 65535)
        throw new CofferError('USAGE', `--nbd must be HOST:PORT, not ${JSON.stringify(o.nbd)}`);
      const host = m[1]!.replace(/^\[(.*)\]$/, '$1');
      const repo = await kit.openRepo(o, logger, true);
      const pointId = await repo.resolvePoint(ref);
      const manifest = await repo.loadManifest(pointId);
      const diskNo = parseInteger(o.disk, '--disk');
      const disk = manifest.disks[diskNo];
      if (!disk) throw new CofferError('NOT_FOUND', `restore point ${pointId} has no disk ${diskNo}`);
      const index = await repo.loadIndex(disk.indexId);
      await kit.withPool(repo, async (pool) => {
        const device = await RestorePointDevice.open(repo, pool, index, {
          writable: Boolean(o.writable),
          cacheChunks: parseInteger(o.cacheChunks, '--cache-chunks'),
          ...(o.overlay ? { overlayPath: o.overlay } : {}),
        });
        const server = new NbdServer(device, {
          exportName: o.exportName,
          description: `coffer ${manifest.vm.name} ${pointId} disk ${diskNo}`,
          logger,
        });
        try {
          const addr = await server.listen(host, Number(m[2]));
          const shownHost = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
          const uri = `nbd://${shownHost}:${addr.port}/${encodeURIComponent(o.exportName)}`;
          const ready = {
            uri,
            id: pointId,
            vm: manifest.vm.name,
            disk: diskNo,
            sizeBytes: index.diskSizeBytes,
            writable: device.writable,
            overlay: device.overlayPath ?? null,
          };
          if (o.json) kit.writeJson(ready);
          else
            kit.write(
              `serving disk ${diskNo} of ${pointId} (${manifest.vm.name}, ${formatBytes(index.diskSizeBytes)}) ` +
                `at ${uri}${device.writable ? ` (writable, overlay ${device.overlayPath})` : ' (read-only)'}; stop ` +
                `with Ctrl-C\n`,
            );
          if (!deps.signal.aborted)
            await new Promise<void>((r) => deps.signal.addEventListener('abort', () => r(), { once: true }));
        } finally {
          await server.close();
          await device.close();
        }
      });
    });
}
