import type { Command } from 'commander';
import { lockPoints } from '../../engine/index.js';
import { CofferError } from '../../shared/index.js';
import type { CommandKit, CommonOpts } from '../kit/index.js';

/** `coffer lock`: retention locks on restore points. */
export function lockCommand(program: Command, kit: CommandKit): void {
  kit
    .common(
      program
        .command('lock')
        .description('retention-lock restore points: nobody can delete them (or their data) before the time passes'),
    )
    .argument('<ids...>', 'restore point ids, unique prefixes or "latest"')
    .option('--until <time>', 'ISO 8601 time until which the points are locked')
    .option('--days <n>', 'lock for N days from now')
    .option('--legal-hold', 'also put a legal hold (no deletion until an administrator clears it)')
    .action(async (ids: string[], o: CommonOpts & { until?: string; days?: string; legalHold?: boolean }) => {
      const until = lockEnd(o);
      const repo = await kit.openRepo(o, kit.logger(o));
      const op = { signal: kit.deps.signal };
      const resolved: string[] = [];
      for (const ref of ids) resolved.push(await repo.resolvePoint(ref, op));
      const results = await lockPoints(repo, resolved, {
        ...(until ? { until } : {}),
        ...(o.legalHold ? { legalHold: true } : {}),
        signal: kit.deps.signal,
      });
      if (o.json) kit.writeJson(results);
      else
        for (const r of results)
          kit.write(
            `locked ${r.id}: ${r.lockedUntil ? `until ${r.lockedUntil}` : ''}` +
              `${r.legalHold ? `${r.lockedUntil ? ', ' : ''}legal hold` : ''}` +
              ` (${r.chunks} chunks, ${r.indexes} index(es), manifest)\n`,
          );
    });
}

function lockEnd(o: { until?: string; days?: string }): Date | undefined {
  if (o.until && o.days) throw new CofferError('USAGE', 'give --until or --days, not both');
  let until: Date | undefined;
  if (o.until) {
    until = new Date(o.until);
    if (Number.isNaN(until.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(o.until))
      throw new CofferError('USAGE', `--until ${JSON.stringify(o.until)} is not an ISO 8601 time`);
  }
  if (o.days !== undefined) {
    if (!/^\d+$/.test(o.days) || Number(o.days) < 1 || Number(o.days) > 36500)
      throw new CofferError('USAGE', '--days must be a whole number from 1 to 36500');
    until = new Date(Date.now() + Number(o.days) * 86_400_000);
  }
  return until;
}
