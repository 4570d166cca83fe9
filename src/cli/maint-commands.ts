import type { Command } from 'commander';
import { RULES, forget, isEmptyPolicy, prune, repair, type PruneReport, type RetentionPolicy } from '../engine/index.js';
import { Repository } from '../repository/index.js';
import { CofferError, formatBytes, formatDuration } from '../shared/index.js';
import { readPassword, stderrLogger } from './context.js';
import type { CommandModule } from './modules.js';
import { parseInteger, type CommonOpts, type CommandKit } from './program.js';

type KeepOpts = { keepLast?: string; keepHourly?: string; keepDaily?: string; keepWeekly?: string; keepMonthly?: string; keepYearly?: string };
const KEEP_FLAG: Record<(typeof RULES)[number], keyof KeepOpts> = {
  last: 'keepLast',
  hourly: 'keepHourly',
  daily: 'keepDaily',
  weekly: 'keepWeekly',
  monthly: 'keepMonthly',
  yearly: 'keepYearly',
};

/** Retention and maintenance: forget, prune, hold, repair (DESIGN.md §Retention, §Garbage collection, §Repair). */
export const maintCommands: CommandModule = (program: Command, kit: CommandKit) => {
  const { deps, write, common, openRepo } = kit;

  const forgetCmd = common(program.command('forget').description('remove restore points by a retention policy (GFS); --prune also collects the garbage'))
    .option('--vm <name>', 'only this VM (default: every VM, each decided on its own)');
  for (const rule of RULES) forgetCmd.option(`--keep-${rule} <n>`, rule === 'last' ? 'keep the N newest points' : `keep the newest point of each of the last N ${rule === 'daily' ? 'days' : rule.replace(/ly$/, 's')} (UTC)`);
  forgetCmd
    .option('--prune', 'run prune afterwards')
    .option('--dry-run', 'only show what would be removed and which rule keeps the rest')
    .action(async (o: CommonOpts & KeepOpts & { vm?: string; prune?: boolean; dryRun?: boolean }) => {
      const policy: RetentionPolicy = {};
      for (const rule of RULES) {
        const v = o[KEEP_FLAG[rule]];
        if (v === undefined) continue;
        const n = parseInteger(v, `--keep-${rule}`);
        if (n < 0) throw new CofferError('USAGE', `--keep-${rule} must not be negative`);
        policy[rule] = n;
      }
      if (isEmptyPolicy(policy)) {
        throw new CofferError('USAGE', 'forget needs at least one --keep-* option with a count above 0 (it would remove every restore point)', {
          hint: 'e.g. --keep-daily 7 --keep-weekly 4 --keep-monthly 12',
        });
      }
      const logger = stderrLogger(deps, o.quiet);
      const repo = await openRepo(o, logger);
      const report = await forget(repo, { policy, ...(o.vm !== undefined ? { vm: o.vm } : {}), dryRun: Boolean(o.dryRun), signal: deps.signal, onWarning: (m) => logger.warn(m) });
      let pruned: PruneReport | undefined;
      if (o.prune && !o.dryRun) {
        pruned = await prune(repo, { signal: deps.signal, onWarning: (m) => logger.warn(m) });
      }
      if (o.json) {
        write(JSON.stringify({ ...report, ...(pruned ? { prune: pruned } : {}) }) + '\n');
        return;
      }
      const verb = report.dryRun ? 'would remove' : 'removed';
      for (const k of report.kept) write(`keep    ${k.id.slice(0, 8)}  ${k.time.slice(0, 19).replace('T', ' ')}  ${k.vm}  (${k.reasons.join(', ')}${k.lockedUntil ? ` until ${k.lockedUntil}` : ''})\n`);
      for (const r of report.removed) write(`${report.dryRun ? 'remove' : 'removed'} ${r.id.slice(0, 8)}  ${r.time.slice(0, 19).replace('T', ' ')}  ${r.vm}\n`);
      write(`${report.kept.length} kept, ${verb} ${report.removed.length}${report.unreadable.length ? `, ${report.unreadable.length} unreadable left alone` : ''}\n`);
      if (pruned) writePrune(write, pruned);
    });

  common(program.command('prune').description('delete unreferenced chunks and indexes (garbage collection); backups may run meanwhile'))
    .action(async (o: CommonOpts) => {
      const logger = stderrLogger(deps, o.quiet);
      const repo = await openRepo(o, logger);
      const report = await prune(repo, { signal: deps.signal, onWarning: (m) => logger.warn(m) });
      if (o.json) write(JSON.stringify(report) + '\n');
      else writePrune(write, report);
    });

  const hold = program.command('hold').description('holds: restore points that forget never removes');
  common(hold.command('add').description('put a hold on a restore point'))
    .argument('<id>', 'restore point id, unique prefix, or "latest"')
    .option('--until <iso>', 'the hold ends at this time (ISO 8601); default: until removed')
    .option('--reason <text>', 'why (stored in plaintext in the repository)')
    .action(async (ref: string, o: CommonOpts & { until?: string; reason?: string }) => {
      if (o.until !== undefined && Number.isNaN(Date.parse(o.until))) throw new CofferError('USAGE', `--until must be an ISO 8601 time, not ${JSON.stringify(o.until)}`);
      if (o.reason !== undefined && o.reason.length > 4096) throw new CofferError('USAGE', '--reason is limited to 4096 characters');
      const repo = await openRepo(o, stderrLogger(deps, o.quiet));
      const id = await repo.resolvePoint(ref);
      const h = await repo.addHold(id, {
        ...(o.until !== undefined ? { until: new Date(o.until).toISOString() } : {}),
        ...(o.reason !== undefined ? { reason: o.reason } : {}),
      });
      if (o.json) write(JSON.stringify(h) + '\n');
      else write(`hold on ${id}${h.until ? ` until ${h.until}` : ''}${h.reason ? `: ${h.reason}` : ''}\n`);
    });
  common(hold.command('remove').description('remove every hold of a restore point'))
    .argument('<id>', 'restore point id or unique prefix')
    .action(async (ref: string, o: CommonOpts) => {
      const repo = await openRepo(o, stderrLogger(deps, o.quiet));
      const id = await repo.resolvePoint(ref);
      const n = await repo.removeHolds(id);
      if (n === 0) throw new CofferError('NOT_FOUND', `restore point ${id} has no hold`);
      if (o.json) write(JSON.stringify({ id, removed: n }) + '\n');
      else write(`removed ${n} hold(s) of ${id}\n`);
    });
  common(hold.command('list').description('list holds'))
    .action(async (o: CommonOpts) => {
      const repo = await openRepo(o, stderrLogger(deps, o.quiet));
      const now = Date.now();
      const holds = (await repo.listHolds()).map((h) => ({ ...h, active: h.until === undefined || Date.parse(h.until) > now }));
      if (o.json) write(JSON.stringify(holds) + '\n');
      else for (const h of holds) write(`${h.pointId}  ${h.active ? 'active ' : 'expired'}  since ${h.createdAt}${h.until ? ` until ${h.until}` : ''}  ${h.user}@${h.host}${h.reason ? `  ${h.reason}` : ''}\n`);
    });

  common(program.command('repair').description('re-fetch damaged or missing chunks from a copy repository (another Coffer repository)'))
    .requiredOption('--from <path>', 'the copy repository to take the data from')
    .option('--from-password-file <file>', "the copy repository's password (default: $COFFER_FROM_PASSWORD, else the same password)")
    .option('--read-data', 'find damaged chunks by reading every chunk (default: presence check + chunks named by failed verifications)')
    .action(async (o: CommonOpts & { from: string; fromPasswordFile?: string; readData?: boolean }) => {
      const logger = stderrLogger(deps, o.quiet);
      const repo = await openRepo(o, logger, true);
      const fromPassword = o.fromPasswordFile !== undefined || deps.env.COFFER_FROM_PASSWORD !== undefined || deps.env.COFFER_FROM_PASSWORD_FILE !== undefined
        ? await readPassword(deps, o.fromPasswordFile, 'COFFER_FROM_PASSWORD')
        : await readPassword(deps, o.passwordFile);
      const fromStore = await deps.openStore(o.from, { create: false });
      const from = await Repository.open(fromStore, fromPassword, { logger });
      const report = await kit.withPool(repo, (pool) => repair(repo, from, pool, { readData: Boolean(o.readData), signal: deps.signal, onWarning: (m) => logger.warn(m) }));
      if (o.json) write(JSON.stringify(report) + '\n');
      else {
        write(`${report.damaged} damaged or missing chunk(s): ${report.repaired} repaired from ${o.from}, ${report.unrepaired.length} not found there; ${formatDuration(report.durationMs)}\n`);
        for (const u of report.unrepaired.slice(0, 50)) write(`  not repaired: chunk ${u}\n`);
        if (report.repaired > 0) write('run `coffer verify` to record the restore points as ok again\n');
      }
      if (report.unrepaired.length > 0) {
        throw new CofferError('PARTIAL', `${report.unrepaired.length} chunk(s) could not be repaired from ${o.from}`, { details: { unrepaired: report.unrepaired.slice(0, 100), reported: true } });
      }
    });
};

function writePrune(write: (s: string) => void, r: PruneReport): void {
  write(`prune: ${r.points} restore points, ${r.chunksReferenced} chunks referenced; deleted ${r.chunksDeleted} chunks (${formatBytes(r.bytesDeleted)}) and ${r.indexesDeleted} indexes`);
  if (r.deferred.length) write(`; deferred ${r.deferred.length} condemned generation(s) to the next prune: ${r.deferredReason}`);
  if (r.rescued) write(`; ${r.rescued} rescued by running writers`);
  if (r.locked) write(`; ${r.locked} kept: locked`);
  write(`; ${r.tempFilesRemoved} temp files, ${r.staleLeasesRemoved} stale leases, ${r.orphansRemoved} orphan records removed; ${formatDuration(r.durationMs)}\n`);
}
