import type { Command } from 'commander';
import { CofferError, formatBytes } from '../../shared/index.js';
import type { CommandKit, CommonOpts } from '../kit/index.js';

/** one VM's figures in `coffer stats` */
interface VmStats {
  vm: { name: string; id: string | null };
  points: number;
  /** non-zero data its restore points reference, counted once per point (what a copy of each would take) */
  logicalBytes: number;
  /** the new bytes its backups stored (after deduplication and compression, when each was made) */
  bytesStored: number;
  newest: string | null;
}

/**
 * `coffer stats`: what the repository holds and what it saves: stored bytes (every blob), chunk bytes, logical bytes
 * and the dedup ratio (logical / chunk bytes: deduplication and compression together, as the server reports it),
 * and per VM its restore points, logical size and the new data its backups stored.
 */
export function statsCommand(program: Command, kit: CommandKit): void {
  kit
    .common(program.command('stats').description('stored size, dedup ratio and per-VM figures of a repository'))
    .option('--vm <name>', 'only this VM in the per-VM figures')
    .action(async (o: CommonOpts & { vm?: string }) => {
      const logger = kit.logger(o);
      const repo = await kit.openRepo(o, logger);
      const op = { signal: kit.deps.signal };
      const damaged: string[] = [];
      const points = await repo.listPoints(op, (id, e) => {
        damaged.push(id);
        logger.warn(`restore point ${id} is unreadable: ${e.message}`);
      });
      const { storedBytes, chunkBytes, chunks } = await repo.storedBytes(op);
      const byVm = new Map<string, VmStats>();
      let logicalBytes = 0;
      for (const p of points) {
        const logical = p.disks.reduce(
          (a, d) => a + Math.min(d.sizeBytes, (d.chunkCount - d.zeroChunks) * d.chunkSizeBytes),
          0,
        );
        logicalBytes += logical;
        const s = byVm.get(p.vm.name) ?? {
          vm: { name: p.vm.name, id: p.vm.id },
          points: 0,
          logicalBytes: 0,
          bytesStored: 0,
          newest: null,
        };
        s.points++;
        s.logicalBytes += logical;
        s.bytesStored += p.stats.bytesStored;
        if (s.newest === null || p.time > s.newest) s.newest = p.time;
        byVm.set(p.vm.name, s);
      }
      const vms = [...byVm.values()]
        .filter((v) => !o.vm || v.vm.name === o.vm)
        .sort((a, b) => a.vm.name.localeCompare(b.vm.name));
      if (o.vm && vms.length === 0) throw new CofferError('NOT_FOUND', `no restore points of VM ${o.vm}`);
      const dedupRatio = chunkBytes > 0 ? logicalBytes / chunkBytes : null;
      if (o.json) {
        kit.writeJson({
          repository: repo.id,
          storedBytes,
          chunkBytes,
          chunks,
          logicalBytes,
          dedupRatio,
          points: points.length,
          vms,
          unreadable: damaged,
        });
      } else {
        kit.write(
          `repository ${repo.id}: ${points.length} restore points, ${byVm.size} VMs\n` +
            `  stored      ${formatBytes(storedBytes)} (chunks ${formatBytes(chunkBytes)} in ${chunks})\n` +
            `  logical     ${formatBytes(logicalBytes)} (the data of every restore point, each counted whole)\n` +
            `  dedup ratio ${dedupRatio === null ? '-' : `${dedupRatio.toFixed(2)}x`} ` +
            '(logical / chunks: deduplication and compression together)\n\n',
        );
        kit.write(
          `${'VM'.padEnd(24)} ${'POINTS'.padStart(6)} ${'LOGICAL'.padStart(10)} ` +
            `${'NEW STORED'.padStart(10)} NEWEST (UTC)\n`,
        );
        for (const v of vms)
          kit.write(
            `${v.vm.name.padEnd(24)} ${String(v.points).padStart(6)} ${formatBytes(v.logicalBytes).padStart(10)} ` +
              `${formatBytes(v.bytesStored).padStart(10)} ${v.newest ? `${v.newest.slice(0, 19)}Z` : '-'}\n`,
          );
      }
      if (damaged.length > 0)
        throw new CofferError(
          'CORRUPT',
          `${damaged.length} restore point(s) could not be read: ${damaged.join(', ')}`,
          {
            details: { damaged, reported: true },
          },
        );
    });
}
