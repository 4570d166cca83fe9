import type { Command } from 'commander';
import type { CommandKit, CommonOpts } from '../kit/index.js';

/** `coffer locks`: the retention locks of restore points. */
export function locksCommand(program: Command, kit: CommandKit): void {
  kit
    .common(program.command('locks').description('show the retention locks of restore points'))
    .action(async (o: CommonOpts) => {
      const repo = await kit.openRepo(o, kit.logger(o));
      const op = { signal: kit.deps.signal };
      const out: { id: string; lockedUntil: string | null; legalHold: boolean }[] = [];
      for await (const id of repo.pointIds(op)) {
        const r = await repo.pointRetention(id, op);
        out.push({ id, lockedUntil: r?.lockedUntil ?? null, legalHold: r?.legalHold ?? false });
      }
      out.sort((a, b) => a.id.localeCompare(b.id));
      if (o.json) kit.writeJson(out);
      else for (const r of out) kit.write(`${r.id}  ${r.lockedUntil ?? '-'}${r.legalHold ? '  legal hold' : ''}\n`);
    });
}
