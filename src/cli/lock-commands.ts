import type { Command } from 'commander';
import { lockPoints } from '../engine/index.js';
import { CofferError } from '../shared/index.js';
import { stderrLogger } from './context.js';
import type { CommandModule } from './modules.js';
import type { CommandKit, CommonOpts } from './program.js';

/** `coffer lock` (retention locks on restore points) and `coffer locks` (show them). */
export const lockCommands: CommandModule = (program: Command, kit: CommandKit) => {
  const { deps, write } = kit;
  kit
    .common(program.command('lock').description('retention-lock restore points: nobody can delete them (or their data) before the time passes'))
    .argument('<ids...>', 'restore point ids, unique prefixes or "latest"')
    .option('--until <time>', 'ISO 8601 time until which the points are locked')
    .option('--days <n>', 'lock for N days from now')
    .option('--legal-hold', 'also put a legal hold (no deletion until an administrator clears it)')
    .action(async (ids: string[], o: CommonOpts & { until?: string; days?: string; legalHold?: boolean }) => {
      if (o.until && o.days) throw new CofferError('USAGE', 'give --until or --days, not both');
      let until: Date | undefined;
      if (o.until) {
        until = new Date(o.until);
        if (Number.isNaN(until.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(o.until)) throw new CofferError('USAGE', `--until ${JSON.stringify(o.until)} is not an ISO 8601 time`);
      }
      if (o.days !== undefined) {
        if (!/^\d+$/.test(o.days) || Number(o.days) < 1 || Number(o.days) > 36500) throw new CofferError('USAGE', '--days must be a whole number from 1 to 36500');
        until = new Date(Date.now() + Number(o.days) * 86_400_000);
      }
      const repo = await kit.openRepo(o, stderrLogger(deps, o.quiet));
      const op = { signal: deps.signal };
      const resolved: string[] = [];
      for (const ref of ids) resolved.push(await repo.resolvePoint(ref, op));
      const results = await lockPoints(repo, resolved, { ...(until ? { until } : {}), ...(o.legalHold ? { legalHold: true } : {}), signal: deps.signal });
      if (o.json) write(JSON.stringify(results) + '\n');
      else for (const r of results) write(`locked ${r.id}: ${r.lockedUntil ? `until ${r.lockedUntil}` : ''}${r.legalHold ? `${r.lockedUntil ? ', ' : ''}legal hold` : ''} (${r.chunks} chunks, ${r.indexes} index(es), manifest)\n`);
    });

  kit
    .common(program.command('locks').description('show the retention locks of restore points'))
    .action(async (o: CommonOpts) => {
      const repo = await kit.openRepo(o, stderrLogger(deps, o.quiet));
      const op = { signal: deps.signal };
      const out: { id: string; lockedUntil: string | null; legalHold: boolean }[] = [];
      for await (const id of repo.pointIds(op)) {
        const r = await repo.pointRetention(id, op);
        out.push({ id, lockedUntil: r?.lockedUntil ?? null, legalHold: r?.legalHold ?? false });
      }
      out.sort((a, b) => a.id.localeCompare(b.id));
      if (o.json) write(JSON.stringify(out) + '\n');
      else for (const r of out) write(`${r.id}  ${r.lockedUntil ?? '-'}${r.legalHold ? '  legal hold' : ''}\n`);
    });
};
