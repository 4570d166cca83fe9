import type { Command } from 'commander';
import { CofferError } from '../../shared/index.js';
import type { CommandKit, CommonOpts } from '../kit/index.js';

/** `coffer hold add|remove|list`: restore points that forget never removes. */
export function holdCommand(program: Command, kit: CommandKit): void {
  const { write } = kit;
  const hold = program.command('hold').description('holds: restore points that forget never removes');
  kit
    .common(hold.command('add').description('put a hold on a restore point'))
    .argument('<id>', 'restore point id, unique prefix, or "latest"')
    .option('--until <iso>', 'the hold ends at this time (ISO 8601); default: until removed')
    .option('--reason <text>', 'why (stored in plaintext in the repository)')
    .action(async (ref: string, o: CommonOpts & { until?: string; reason?: string }) => {
      if (o.until !== undefined && Number.isNaN(Date.parse(o.until)))
        throw new CofferError('USAGE', `--until must be an ISO 8601 time, not ${JSON.stringify(o.until)}`);
      if (o.reason !== undefined && o.reason.length > 4096)
        throw new CofferError('USAGE', '--reason is limited to 4096 characters');
      const repo = await kit.openRepo(o, kit.logger(o));
      const id = await repo.resolvePoint(ref);
      const h = await repo.addHold(id, {
        ...(o.until !== undefined ? { until: new Date(o.until).toISOString() } : {}),
        ...(o.reason !== undefined ? { reason: o.reason } : {}),
      });
      if (o.json) kit.writeJson(h);
      else write(`hold on ${id}${h.until ? ` until ${h.until}` : ''}${h.reason ? `: ${h.reason}` : ''}\n`);
    });
  kit
    .common(hold.command('remove').description('remove every hold of a restore point'))
    .argument('<id>', 'restore point id or unique prefix')
    .action(async (ref: string, o: CommonOpts) => {
      const repo = await kit.openRepo(o, kit.logger(o));
      const id = await repo.resolvePoint(ref);
      const n = await repo.removeHolds(id);
      if (n === 0) throw new CofferError('NOT_FOUND', `restore point ${id} has no hold`);
      if (o.json) kit.writeJson({ id, removed: n });
      else write(`removed ${n} hold(s) of ${id}\n`);
    });
  kit.common(hold.command('list').description('list holds')).action(async (o: CommonOpts) => {
    const repo = await kit.openRepo(o, kit.logger(o));
    const now = Date.now();
    const holds = (await repo.listHolds()).map((h) => ({
      ...h,
      active: h.until === undefined || Date.parse(h.until) > now,
    }));
    if (o.json) kit.writeJson(holds);
    else
      for (const h of holds)
        write(
          `${h.pointId}  ${h.active ? 'active ' : 'expired'}  ` +
            `since ${h.createdAt}${h.until ? ` until ${h.until}` : ''} ` +
            ` ${h.user}@${h.host}${h.reason ? `  ${h.reason}` : ''}\n`,
        );
  });
}
