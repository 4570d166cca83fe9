import type { Command } from 'commander';
import { pruneRepository, type PruneReport } from '../../engine/index.js';
import { writePrune, type CommandKit, type CommonOpts } from '../kit/index.js';

/** `coffer prune`: the engine's pruneRepository (garbage collection while backups may run). */
export function pruneCommand(program: Command, kit: CommandKit): void {
  kit
    .common(
      program
        .command('prune')
        .description('delete unreferenced chunks and indexes (garbage collection); backups may run meanwhile'),
    )
    .action(async (o: CommonOpts) => {
      const logger = kit.logger(o);
      const repo = await kit.openRepo(o, logger);
      // without skipIfRunning a running prune elsewhere fails this one (LOCKED): the result is always a report
      const report = (await pruneRepository(repo, kit.useCase, {
        onEvent: (e) => e.type === 'warning' && logger.warn(e.message),
      })) as PruneReport;
      if (o.json) kit.writeJson(report);
      else writePrune(kit.write, report);
    });
}
