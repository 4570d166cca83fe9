import type { Command } from 'commander';
import { lastBootCheck, pointStatuses } from '../../engine/index.js';
import { CofferError, formatBytes } from '../../shared/index.js';
import type { CommandKit, CommonOpts } from '../kit/index.js';

/** `coffer list`: restore points, oldest first; unreadable ones are reported and make the exit code CORRUPT. */
export function listCommand(program: Command, kit: CommandKit): void {
  kit
    .common(program.command('list').description('list restore points'))
    .option('--vm <name>', 'only this VM')
    .action(async (o: CommonOpts & { vm?: string }) => {
      const logger = kit.logger(o);
      const repo = await kit.openRepo(o, logger);
      const damaged: string[] = [];
      const points = (
        await repo.listPoints({ signal: kit.deps.signal }, (id, e) => {
          damaged.push(id);
          logger.warn(`restore point ${id} is unreadable: ${e.message}`);
        })
      ).filter((p) => !o.vm || p.vm.name === o.vm);
      const statuses = await pointStatuses(repo, points, { signal: kit.deps.signal });
      if (o.json) {
        // the boot part of the newest check record: one read per checked point (the outcome is in the blob name)
        const boots = new Map<string, Awaited<ReturnType<typeof lastBootCheck>>>();
        for (const { manifest: p, status } of statuses)
          if (status.check) boots.set(p.id, await lastBootCheck(repo, p.id, { signal: kit.deps.signal }));
        kit.writeJson(
          statuses.map(({ manifest: p, status }) => ({
            id: p.id,
            // the same shape as `show` (and the server): { name, id }
            vm: { name: p.vm.name, id: p.vm.id },
            time: p.time,
            parent: p.parent,
            mode: p.mode,
            tags: p.tags,
            bytesStored: p.stats.bytesStored,
            disks: p.disks.map((d) => ({ index: d.index, sizeBytes: d.sizeBytes })),
            state: status.state,
            suspicious: status.suspicious,
            score: status.score,
            reasons: status.reasons,
            verification: status.verification,
            check: status.check && { ...status.check, boot: boots.get(p.id) ?? null },
          })),
        );
      } else {
        // times in UTC, said so: the column header and the Z of each time
        kit.write(
          `${'ID'.padEnd(10)} ${'TIME (UTC)'.padEnd(21)} ${'VM'.padEnd(20)} ${'MODE'.padEnd(11)} ` +
            `${'STATE'.padEnd(16)} ${'STORED'.padEnd(10)} ${'VERIFIED'.padEnd(10)} ${'TAGS'.padEnd(16)} DISKS\n`,
        );
        for (const { manifest: p, status } of statuses) {
          const state = status.score === null ? status.state : `${status.state} (${status.score})`;
          const v = status.verification;
          kit.write(
            `${p.id.slice(0, 8).padEnd(10)} ${`${p.time.slice(0, 19)}Z`.padEnd(21)} ` +
              `${p.vm.name.padEnd(20)} ${p.mode.padEnd(11)} ${state.padEnd(16)} ` +
              `${formatBytes(p.stats.bytesStored).padEnd(10)} ` +
              `${(v ? (v.ok ? 'ok' : 'FAILED') : '-').padEnd(10)} ${(p.tags.join(',') || '-').padEnd(16)} ` +
              `${p.disks.map((d) => formatBytes(d.sizeBytes)).join(', ')}\n`,
          );
        }
      }
      if (damaged.length > 0)
        throw new CofferError(
          'CORRUPT',
          `${damaged.length} restore point(s) could not be read: ${damaged.join(', ')}`,
          { details: { damaged, reported: true } },
        );
    });
}
