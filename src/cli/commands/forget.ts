import type { Command } from 'commander';
import { RULES, forgetPoints, isEmptyPolicy, type RetentionPolicy } from '../../engine/index.js';
import { CofferError } from '../../shared/index.js';
import { parseInteger, writePrune, type CommandKit, type CommonOpts } from '../kit/index.js';

type KeepOpts = {
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
};
type ForgetOpts = CommonOpts & KeepOpts & { vm?: string; prune?: boolean; dryRun?: boolean };
const KEEP_FLAG: Record<(typeof RULES)[number], keyof KeepOpts> = {
  last: 'keepLast',
  hourly: 'keepHourly',
  daily: 'keepDaily',
  weekly: 'keepWeekly',
  monthly: 'keepMonthly',
  yearly: 'keepYearly',
};

/** `coffer forget`: the engine's forgetPoints (GFS retention; --prune collects the garbage afterwards). */
export function forgetCommand(program: Command, kit: CommandKit): void {
  const forgetCmd = kit
    .common(
      program
        .command('forget')
        .description('remove restore points by a retention policy (GFS); --prune also collects the garbage'),
    )
    .option('--vm <name>', 'only this VM (default: every VM, each decided on its own)');
  for (const rule of RULES)
    forgetCmd.option(
      `--keep-${rule} <n>`,
      rule === 'last'
        ? 'keep the N newest points'
        : `keep the newest point of each of the last N ${rule === 'daily' ? 'days' : rule.replace(/ly$/, 's')} (UTC)`,
    );
  forgetCmd
    .option('--prune', 'run prune afterwards')
    .option('--dry-run', 'only show what would be removed and which rule keeps the rest')
    .action(async (o: ForgetOpts) => {
      const policy = policyOf(o);
      const logger = kit.logger(o);
      const repo = await kit.openRepo(o, logger);
      const report = await forgetPoints(repo, kit.useCase, {
        policy,
        vm: o.vm,
        dryRun: Boolean(o.dryRun),
        prune: Boolean(o.prune),
        onEvent: (e) => logger.warn(e.message),
      });
      if (o.json) return kit.writeJson(report);
      const { write } = kit;
      const verb = report.dryRun ? 'would remove' : 'removed';
      for (const k of report.kept)
        write(
          `keep    ${k.id.slice(0, 8)}  ${k.time.slice(0, 19).replace('T', ' ')}  ${k.vm}  ` +
            `(${k.reasons.join(', ')}${k.lockedUntil ? ` until ${k.lockedUntil}` : ''})\n`,
        );
      for (const r of report.removed)
        write(
          `${report.dryRun ? 'remove' : 'removed'} ${r.id.slice(0, 8)}  ${r.time.slice(0, 19).replace('T', ' ')} ` +
            ` ${r.vm}\n`,
        );
      write(
        `${report.kept.length} kept, ${verb} ${report.removed.length}` +
          `${report.unreadable.length ? `, ${report.unreadable.length} unreadable left alone` : ''}\n`,
      );
      if (report.prune) writePrune(write, report.prune);
    });
}

function policyOf(o: ForgetOpts): RetentionPolicy {
  const policy: RetentionPolicy = {};
  for (const rule of RULES) {
    const v = o[KEEP_FLAG[rule]];
    if (v === undefined) continue;
    const n = parseInteger(v, `--keep-${rule}`);
    if (n < 0) throw new CofferError('USAGE', `--keep-${rule} must not be negative`);
    policy[rule] = n;
  }
  if (isEmptyPolicy(policy)) {
    throw new CofferError(
      'USAGE',
      'forget needs at least one --keep-* option with a count above 0 (it would remove every restore point)',
      {
        hint: 'e.g. --keep-daily 7 --keep-weekly 4 --keep-monthly 12',
      },
    );
  }
  return policy;
}
