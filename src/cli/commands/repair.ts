import type { Command } from 'commander';
import { repair } from '../../engine/index.js';
import { CofferError, formatDuration } from '../../shared/index.js';
import { readPassword, secondRepositoryPassword, type CommandKit, type CommonOpts } from '../kit/index.js';

/** `coffer repair --from COPY`: damaged or missing chunks re-fetched from a copy repository (DESIGN.md §Repair). */
export function repairCommand(program: Command, kit: CommandKit): void {
  const { deps, write } = kit;
  kit
    .common(
      program
        .command('repair')
        .description('re-fetch damaged or missing chunks from a copy repository (another Coffer repository)'),
    )
    .requiredOption('--from <path>', 'the copy repository to take the data from')
    .option(
      '--from-password-file <file>',
      "the copy repository's password (default: $COFFER_FROM_PASSWORD, else the same password)",
    )
    .option(
      '--read-data',
      'find damaged chunks by reading every chunk (default: presence check + chunks named by failed verifications)',
    )
    .action(async (o: CommonOpts & { from: string; fromPasswordFile?: string; readData?: boolean }) => {
      const logger = kit.logger(o);
      const repo = await kit.openRepo(o, logger, true);
      const fromPassword = await secondRepositoryPassword(deps, 'FROM', o.fromPasswordFile, () =>
        readPassword(deps, o.passwordFile),
      );
      const from = await kit.openRepoAt(o.from, fromPassword, logger);
      const report = await kit.withPool(repo, (pool) =>
        repair(repo, from, pool, {
          readData: Boolean(o.readData),
          signal: deps.signal,
          onWarning: (m) => logger.warn(m),
        }),
      );
      if (o.json) kit.writeJson(report);
      else {
        write(
          `${report.damaged} damaged or missing chunk(s): ${report.repaired} repaired ` +
            `from ${o.from}, ${report.unrepaired.length} not found there; ${formatDuration(report.durationMs)}\n`,
        );
        for (const u of report.unrepaired.slice(0, 50)) write(`  not repaired: chunk ${u}\n`);
        if (report.repaired > 0) write('run `coffer verify` to record the restore points as ok again\n');
      }
      if (report.unrepaired.length > 0) {
        throw new CofferError('PARTIAL', `${report.unrepaired.length} chunk(s) could not be repaired from ${o.from}`, {
          details: { unrepaired: report.unrepaired.slice(0, 100), reported: true },
        });
      }
    });
}
