import type { Command } from 'commander';
import { serveDisk } from '../../engine/index.js';
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
      const diskNo = parseInteger(o.disk, '--disk');
      await kit.withPool(repo, async (pool) => {
        const served = await serveDisk(repo, pool, {
          pointId,
          disk: diskNo,
          host,
          port: Number(m[2]),
          exportName: o.exportName,
          writable: Boolean(o.writable),
          cacheChunks: parseInteger(o.cacheChunks, '--cache-chunks'),
          overlayPath: o.overlay,
          logger,
        });
        try {
          const { close: _close, ...ready } = served;
          if (o.json) kit.writeJson(ready);
          else
            kit.write(
              `serving disk ${diskNo} of ${pointId} (${served.vm}, ${formatBytes(served.sizeBytes)}) ` +
                `at ${served.uri}${served.writable ? ` (writable, overlay ${served.overlay})` : ' (read-only)'}; ` +
                `stop with Ctrl-C\n`,
            );
          if (!deps.signal.aborted)
            await new Promise<void>((r) => deps.signal.addEventListener('abort', () => r(), { once: true }));
        } finally {
          await served.close();
        }
      });
    });
}
