import type { BackupResult, PruneReport } from '../../engine/index.js';
import { formatBytes, formatDuration } from '../../shared/index.js';

/** The human-readable summary of a backup. */
export function printBackupResult(write: (s: string) => void, result: BackupResult): void {
  write(
    `restore point ${result.id} of VM ${result.vm} (${result.mode}${
      result.parent ? `, parent ${result.parent.slice(0, 8)}` : ''
    })\n`,
  );
  for (const d of result.disks) {
    if (d.changeToken)
      write(
        `  disk ${d.index}: ${d.mode}${d.mode === 'incremental' ? `, ${formatBytes(d.changedBytes)} changed` : ''} ` +
          `(change tracking ${d.changeToken})\n`,
      );
    if (d.fallbackReason) write(`  disk ${d.index}: read in full: ${d.fallbackReason}\n`);
    if (d.cbtDrift && d.cbtDrift.length > 0)
      write(`  disk ${d.index}: CHANGE TRACKING DRIFT in ${d.cbtDrift.length} range(s)\n`);
  }
  write(
    `  read ${formatBytes(result.bytesRead)}, stored ${formatBytes(result.bytesStored)} in ${result.chunksNew} new ` +
      `chunks; ${result.chunksReused} reused, ${result.zeroChunks} zero; ${formatDuration(result.durationMs)}\n`,
  );
}

/** The human-readable summary of a prune (also after `forget --prune`). */
export function writePrune(write: (s: string) => void, r: PruneReport): void {
  write(
    `prune: ${r.points} restore points, ${r.chunksReferenced} chunks referenced; deleted ${r.chunksDeleted} chunks ` +
      `(${formatBytes(r.bytesDeleted)}) and ${r.indexesDeleted} indexes`,
  );
  if (r.deferred.length)
    write(`; deferred ${r.deferred.length} condemned generation(s) to the next prune: ${r.deferredReason}`);
  if (r.rescued) write(`; ${r.rescued} rescued by running writers`);
  if (r.locked) write(`; ${r.locked} kept: locked`);
  write(
    `; ${r.tempFilesRemoved} temp files, ${r.staleLeasesRemoved} stale leases, ${r.orphansRemoved} orphan records ` +
      `removed; ${formatDuration(r.durationMs)}\n`,
  );
}
