import type { Command } from 'commander';
import { copyRestorePoints } from '../../engine/index.js';
import { CofferError, formatBytes, formatDuration } from '../../shared/index.js';
import {
  addPasswordOption,
  parseRate,
  readPassword,
  secondRepositoryPassword,
  type CommandKit,
  type OutputOpts,
} from '../kit/index.js';

type CopyOpts = OutputOpts & {
  from: string;
  to: string;
  vm?: string;
  latest?: boolean;
  passwordFile?: string;
  toPasswordFile?: string;
  limitUpload?: string;
};

/** `coffer copy`: the engine's copyRestorePoints to another repository (another region, account or provider). */
export function copyCommand(program: Command, kit: CommandKit): void {
  const c = program
    .command('copy')
    .description(
      'copy restore points to another repository (only chunks it lacks; resumable; re-encrypts for other keys)',
    )
    .argument('[ids...]', 'restore point ids or unique prefixes (default: all, or those selected by --vm/--latest)')
    .requiredOption('--from <repo>', 'source repository')
    .requiredOption(
      '--to <repo>',
      'target repository (created with `coffer init`, or `coffer init --copy-of SOURCE` for a replica)',
    )
    .option('--vm <name>', 'only restore points of this VM')
    .option('--latest', 'only the newest restore point (of each VM, or of --vm)');
  addPasswordOption(c, 'password of the source (default: $COFFER_PASSWORD)')
    .option(
      '--to-password-file <file>',
      'password of the target (default: $COFFER_TO_PASSWORD, else the source password)',
    )
    .option('--limit-upload <rate>', 'cap the upload to the target, bytes per second (e.g. 20M)');
  kit.output(c).action((ids: string[], o: CopyOpts) => copy(kit, ids, o));
}

async function copy(kit: CommandKit, ids: string[], o: CopyOpts): Promise<void> {
  const { deps } = kit;
  const logger = kit.logger(o);
  const rate = o.limitUpload ? parseRate(o.limitUpload) : undefined;
  if (rate !== undefined && rate < 1024)
    throw new CofferError('USAGE', '--limit-upload must be at least 1K (bytes per second)');
  const srcPassword = await readPassword(deps, o.passwordFile);
  const dstPassword = await secondRepositoryPassword(deps, 'TO', o.toPasswordFile, async () => srcPassword);
  const [from, to] = await Promise.all([
    kit.openRepoAt(o.from, srcPassword, logger),
    kit.openRepoAt(o.to, dstPassword, logger, { limitUploadBytesPerSecond: rate }),
  ]);
  if (ids.length > 0 && (o.vm || o.latest))
    throw new CofferError('USAGE', 'give restore point ids or --vm/--latest, not both');
  // a redrawn chunk counter on a terminal only; one line per restore point unless --json or -q
  const progress = kit.progress(o, 'copy', { unit: 'items', ttyOnly: true });
  const result = await copyRestorePoints(kit.useCase, {
    from,
    to,
    select: ids.length > 0 ? { ids } : { vm: o.vm, latest: o.latest },
    onEvent: (e) => {
      if (e.type === 'progress') return progress.update(e.done, e.total, e.point.slice(0, 8));
      progress.done();
      const r = e.point;
      if (!o.json && !o.quiet) {
        deps.stderr.write(
          `${r.id.slice(0, 8)} ${r.vm}: ${
            r.status === 'present'
              ? 'already in the target'
              : `copied ` +
                `(${r.chunksCopied} chunks copied, ${r.chunksPresent} present, ${formatBytes(r.bytesUploaded)} ` +
                `uploaded${r.serverSide ? `, ${r.serverSide} copied server-side` : ''})`
          }\n`,
        );
      }
    },
  });
  progress.done();
  if (o.json) kit.writeJson({ from: from.location, to: to.location, ...result });
  else
    kit.write(
      `copied ${result.points.filter((p) => p.status === 'copied').length} restore point(s) (${result.mode}) ` +
        `in ${formatDuration(result.durationMs)}\n`,
    );
}
