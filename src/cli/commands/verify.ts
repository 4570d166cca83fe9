import type { Command } from 'commander';
import { verifyFailure, verifyRepository } from '../../engine/index.js';
import { CofferError, formatDuration } from '../../shared/index.js';
import type { CommandKit, CommonOpts } from '../kit/index.js';

type VerifyOpts = CommonOpts & { readData?: boolean; readDataSubset?: string; record?: boolean };

/** `coffer verify`: the engine's verifyRepository; problems are printed (or the JSON report), then exit CORRUPT. */
export function verifyCommand(program: Command, kit: CommandKit): void {
  kit
    .common(
      program
        .command('verify')
        .description('check that every restore point is complete; --read-data also checks every byte'),
    )
    .option('--read-data', 'decrypt, decompress and re-hash every referenced chunk')
    .option('--read-data-subset <pct>', 'like --read-data for a deterministic sample of PCT percent of the chunks')
    .option('--no-record', 'do not record the outcome per restore point in the repository')
    .action(async (o: VerifyOpts) => {
      const repo = await kit.openRepo(o, kit.logger(o), true);
      let fraction = o.readData ? 1 : 0;
      if (o.readData && o.readDataSubset !== undefined)
        throw new CofferError('USAGE', 'use either --read-data or --read-data-subset, not both');
      if (o.readDataSubset !== undefined) {
        const pct = Number(o.readDataSubset.replace(/%$/, ''));
        if (!(pct > 0 && pct <= 100))
          throw new CofferError('USAGE', '--read-data-subset must be a percentage in (0, 100]');
        fraction = pct / 100;
      }
      const progress = kit.progress(o, 'verify', { unit: 'items' });
      const report = await verifyRepository(repo, kit.useCase, {
        readDataFraction: fraction,
        record: o.record !== false,
        onEvent: (p) => p.total > 0 && progress.update(p.done, p.total, p.phase),
      });
      progress.done();
      if (o.json) kit.writeJson(report);
      else {
        kit.write(
          `${report.points} restore points, ${report.disks} disks, ${report.chunksReferenced} chunks ` +
            `referenced, ${report.chunksStored} stored (${report.chunksUnreferenced} ` +
            `unreferenced), ${report.chunksRead} read and checked in ${formatDuration(report.durationMs)}\n`,
        );
        for (const p of report.problems.slice(0, 100))
          kit.write(
            `  ${p.kind}: ${p.message}${
              p.points ? ` (restore points ${p.points.map((x) => x.slice(0, 8)).join(', ')})` : ''
            }\n`,
          );
        if (report.problems.length > 100) kit.write(`  ... and ${report.problems.length - 100} more\n`);
        kit.write(report.ok ? 'no errors found\n' : `${report.problems.length} problem(s) found\n`);
      }
      const failure = verifyFailure(report, { reported: true });
      if (failure) throw failure;
    });
}
