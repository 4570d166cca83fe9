import type { Command } from 'commander';
import { archivePoints, rehydratePoints, tierSummary } from '../../engine/index.js';
import type { Repository } from '../../repository/index.js';
import { ACCESS_TIERS, type AccessTier } from '../../storage/index.js';
import { CofferError } from '../../shared/index.js';
import type { CommandKit, CommonOpts } from '../kit/index.js';

function tierArg(s: string, what: string): AccessTier {
  const t = ACCESS_TIERS.find((x) => x.toLowerCase() === s.toLowerCase());
  if (!t) throw new CofferError('USAGE', `${what} must be one of ${ACCESS_TIERS.join(', ')}`);
  return t;
}

async function select(
  repo: Repository,
  ids: string[],
  olderThanDays: string | undefined,
  signal: AbortSignal,
): Promise<string[]> {
  if (ids.length > 0 && olderThanDays)
    throw new CofferError('USAGE', 'give restore point ids or --older-than, not both');
  if (ids.length > 0) {
    const out: string[] = [];
    for (const ref of ids) out.push(await repo.resolvePoint(ref, { signal }));
    return out;
  }
  if (!olderThanDays) throw new CofferError('USAGE', 'give restore point ids or --older-than DAYS');
  if (!/^\d+$/.test(olderThanDays)) throw new CofferError('USAGE', '--older-than must be a whole number of days');
  const cutoff = Date.now() - Number(olderThanDays) * 86_400_000;
  return (await repo.listPoints({ signal })).filter((p) => Date.parse(p.time) < cutoff).map((p) => p.id);
}

/** `coffer archive move|status|rehydrate`: access tiers of restore point data (Azure). */
export function archiveCommand(program: Command, kit: CommandKit): void {
  const { deps, write } = kit;
  const archive = program
    .command('archive')
    .description('move restore point data to Cool/Cold/Archive tiers and bring it back');

  kit
    .common(
      archive.command('move').description('move the data of restore points to a cooler tier (metadata stays hot)'),
    )
    .argument('[ids...]', 'restore point ids or unique prefixes')
    .option('--older-than <days>', 'every restore point older than DAYS')
    .requiredOption('--tier <tier>', 'Cool, Cold or Archive')
    .action(async (ids: string[], o: CommonOpts & { olderThan?: string; tier: string }) => {
      const tier = tierArg(o.tier, '--tier');
      const repo = await kit.openRepo(o, kit.logger(o));
      const points = await select(repo, ids, o.olderThan, deps.signal);
      const r = await archivePoints(repo, points, tier, { signal: deps.signal });
      if (o.json) write(JSON.stringify({ points, tier, ...r }) + '\n');
      else
        write(
          `${points.length} restore point(s): ${r.moved} chunk(s) moved to ${tier}, ${r.already} already ` +
            `there, ${r.shared} kept (shared with other points)\n`,
        );
    });

  kit
    .common(
      archive
        .command('status')
        .description('where the data of restore points is: chunks by tier, rehydrations in progress'),
    )
    .argument('<ids...>', 'restore point ids or unique prefixes')
    .action(async (ids: string[], o: CommonOpts) => {
      const repo = await kit.openRepo(o, kit.logger(o));
      const points = await select(repo, ids, undefined, deps.signal);
      const s = await tierSummary(repo, points, { signal: deps.signal });
      const ready = s.readable === s.total;
      if (o.json) write(JSON.stringify({ points, ready, ...s }) + '\n');
      else
        write(
          `${s.total} chunk(s): ${
            Object.entries(s.chunks)
              .filter(([, n]) => n > 0)
              .map(([t, n]) => `${n} ${t}`)
              .join(', ') || 'none'
          }; ${s.rehydrating} rehydrating; ${ready ? 'ready to restore' : 'not yet restorable'}\n`,
        );
    });

  kit
    .common(
      archive
        .command('rehydrate')
        .description(
          'start bringing archived data of restore points back online (returns at once; poll `archive status`)',
        ),
    )
    .argument('<ids...>', 'restore point ids or unique prefixes')
    .option('--priority <p>', 'standard (Azure: up to 15 h) or high (usually under 1 h, costs more)', 'standard')
    .option('--to <tier>', 'Hot or Cool', 'Hot')
    .action(async (ids: string[], o: CommonOpts & { priority: string; to: string }) => {
      const priority =
        o.priority.toLowerCase() === 'high' ? 'High' : o.priority.toLowerCase() === 'standard' ? 'Standard' : undefined;
      if (!priority) throw new CofferError('USAGE', '--priority must be standard or high');
      const to = tierArg(o.to, '--to');
      const repo = await kit.openRepo(o, kit.logger(o));
      const points = await select(repo, ids, undefined, deps.signal);
      const r = await rehydratePoints(repo, points, { priority, to }, { signal: deps.signal });
      if (o.json) write(JSON.stringify({ points, ...r }) + '\n');
      else
        write(
          `rehydration started for ${r.started} chunk(s) (${r.pending} already pending, ${r.online} online), ` +
            `priority ${r.priority}: ${r.estimate}\n`,
        );
    });
}
