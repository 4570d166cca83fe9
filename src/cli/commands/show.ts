import type { Command } from 'commander';
import { lastBootCheck, resolvePointRef, statusOf } from '../../engine/index.js';
import { formatBytes, formatDuration } from '../../shared/index.js';
import type { CommandKit, CommonOpts } from '../kit/index.js';

/** `coffer show`: one restore point's manifest. */
export function showCommand(program: Command, kit: CommandKit): void {
  kit
    .common(program.command('show').description('show one restore point'))
    .argument('<id>', 'restore point id, unique prefix, "latest" or "latest-clean[:VM]"')
    .action(async (ref: string, o: CommonOpts) => {
      const repo = await kit.openRepo(o, kit.logger(o));
      const m = await repo.loadManifest(await resolvePointRef(repo, ref));
      const status = await statusOf(repo, m);
      const boot = status.check ? await lastBootCheck(repo, m.id) : null;
      if (o.json)
        return kit.writeJson({ ...m, status: { ...status, check: status.check && { ...status.check, boot } } });
      kit.write(
        `restore point ${m.id}\n  VM        ${m.vm.name}\n  time      ${m.time} ` +
          `(took ${formatDuration(m.stats.durationMs)})\n  mode      ${m.mode}\n  parent    ${m.parent ?? '-'}\n  ` +
          `host      ${m.host}\n  tags      ${m.tags.join(', ') || '-'}\n`,
      );
      kit.write(`  capture   ${captureLine(m.consistency, m.vmConfig)}\n`);
      for (const d of m.disks)
        kit.write(
          `  disk ${d.index}    ${formatBytes(d.sizeBytes)} from ${d.source}, ${d.chunkCount} chunks ` +
            `(${d.zeroChunks} zero)\n`,
        );
      kit.write(`  stored    ${formatBytes(m.stats.bytesStored)} new of ${formatBytes(m.stats.bytesRead)} read\n`);
      const score = status.score === null ? 'no signals (written before they existed)' : `score ${status.score}`;
      kit.write(`  state     ${status.state}, ${score}\n`);
      for (const r of status.reasons) kit.write(`    ${r}\n`);
      const outcome = (x: { time: string; ok: boolean } | null) => (x ? `${x.ok ? 'ok' : 'FAILED'} at ${x.time}` : '-');
      kit.write(`  verified  ${outcome(status.verification)}\n  checked   ${outcome(status.check)}\n`);
      if (boot) {
        const accel = boot.accel ? `, ${boot.accel.toUpperCase()}` : '';
        const how = `after ${Math.round(boot.elapsedMs / 100) / 10} s${accel}`;
        const seen = boot.signal === 'agent' ? 'guest agent answered' : `"${boot.marker}" seen`;
        const what = boot.ok ? `ok (${seen} ${how})` : `${boot.ok === null ? 'not booted' : 'FAILED'}`;
        kit.write(`  booted    ${what}${boot.ok ? '' : `: ${boot.note ?? ''}`}\n`);
        if (boot.script) {
          const name = boot.script.path.split('/').at(-1);
          const end = boot.script.timedOut
            ? 'killed at its time limit'
            : boot.script.signal
              ? `ended by ${boot.script.signal}`
              : `exit ${boot.script.exitCode}`;
          kit.write(`  script    ${name}: ${boot.script.ok ? 'ok' : 'FAILED'} (${end})\n`);
        }
      }
    });
}

/** How the disks were captured; vSphere restore points name the quiesce mode obtained (FORMAT.md §6.1). */
function captureLine(
  c: { snapshot: boolean; quiesced: boolean },
  vmConfig: Record<string, unknown> | undefined,
): string {
  if (!c.snapshot) return 'no snapshot';
  const mode = vmConfig?.['quiesceMode'];
  const asked = vmConfig?.['quiesceRequested'];
  const what =
    mode === 'app'
      ? 'application-consistent (app)'
      : mode === 'fs'
        ? 'file-system-consistent (fs)'
        : mode === 'crash'
          ? 'crash-consistent'
          : c.quiesced
            ? 'quiesced'
            : 'crash-consistent';
  return `snapshot, ${what}${typeof asked === 'string' ? `; --quiesce ${asked}` : ''}`;
}
