import type { Command } from 'commander';
import { copyPoints } from '../engine/index.js';
import { Repository } from '../repository/index.js';
import { ThrottledBlobStore } from '../storage/index.js';
import { CofferError, formatBytes, formatDuration } from '../shared/index.js';
import { readPassword, stderrLogger } from './context.js';
import type { CommandModule } from './modules.js';
import type { CommandKit } from './program.js';

interface CopyOpts {
  from: string;
  to: string;
  vm?: string;
  latest?: boolean;
  passwordFile?: string;
  toPasswordFile?: string;
  limitUpload?: string;
  json?: boolean;
  progress?: boolean;
  quiet?: boolean;
}

/** `coffer copy`: backup copy to another repository (another region, account or provider). */
export const copyCommands: CommandModule = (program: Command, kit: CommandKit) => {
  const { deps, write } = kit;
  program
    .command('copy')
    .description('copy restore points to another repository (only chunks it lacks; resumable; re-encrypts for other keys)')
    .argument('[ids...]', 'restore point ids or unique prefixes (default: all, or those selected by --vm/--latest)')
    .requiredOption('--from <repo>', 'source repository')
    .requiredOption('--to <repo>', 'target repository (created with `coffer init`, or `coffer init --copy-of SOURCE` for a replica)')
    .option('--vm <name>', 'only restore points of this VM')
    .option('--latest', 'only the newest restore point (of each VM, or of --vm)')
    .option('--password-file <file>', 'password of the source (default: $COFFER_PASSWORD)')
    .option('--to-password-file <file>', 'password of the target (default: $COFFER_TO_PASSWORD, else the source password)')
    .option('--limit-upload <rate>', 'cap the upload to the target, bytes per second (e.g. 20M)')
    .option('--json', 'print a machine-readable JSON result on stdout')
    .option('--no-progress', 'no progress output on stderr')
    .option('-q, --quiet', 'only errors and warnings on stderr')
    .exitOverride()
    .action(async (ids: string[], o: CopyOpts) => {
      const logger = stderrLogger(deps, o.quiet);
      const rate = o.limitUpload ? parseRate(o.limitUpload) : undefined;
      if (rate !== undefined && rate < 1024) throw new CofferError('USAGE', '--limit-upload must be at least 1K (bytes per second)');
      const srcPassword = await readPassword(deps, o.passwordFile);
      const dstPassword =
        o.toPasswordFile || deps.env.COFFER_TO_PASSWORD || deps.env.COFFER_TO_PASSWORD_FILE ? await readPassword(deps, o.toPasswordFile, 'COFFER_TO_PASSWORD') : srcPassword;
      const [src, dst] = await Promise.all([
        deps.openStore(o.from, { create: false }).then((s) => Repository.open(s, srcPassword, { logger })),
        deps.openStore(o.to, { create: false }).then((s) => Repository.open(rate ? new ThrottledBlobStore(s, rate) : s, dstPassword, { logger })),
      ]);
      const op = { signal: deps.signal };
      let pointIds: string[];
      if (ids.length > 0) {
        if (o.vm || o.latest) throw new CofferError('USAGE', 'give restore point ids or --vm/--latest, not both');
        pointIds = [];
        for (const ref of ids) pointIds.push(await src.resolvePoint(ref, op));
      } else {
        let points = (await src.listPoints(op)).filter((p) => !o.vm || p.vm.name === o.vm);
        if (o.latest) {
          const newest = new Map<string, (typeof points)[number]>();
          for (const p of points) newest.set(p.vm.name, p); // oldest first: the last one wins
          points = [...newest.values()];
        }
        pointIds = points.map((p) => p.id);
      }
      if (pointIds.length === 0) throw new CofferError('NOT_FOUND', 'no restore points to copy');
      // copyPoints takes the target's VM leases and follows the GC protocol there; the source is only read
      const showProgress = kit.progressOn({ ...o, repo: o.to }) && deps.stderr.isTTY === true;
      const result = await kit.withPool(src, (srcPool) =>
        kit.withPool(dst, (dstPool) =>
          copyPoints(src, dst, srcPool, dstPool, {
            pointIds,
            signal: deps.signal,
            ...(showProgress ? { onProgress: (p) => deps.stderr.write(`\r${p.point.slice(0, 8)} ${p.chunksDone}/${p.chunksTotal} chunks`) } : {}),
            onPoint: (r) => {
              if (!o.json && !o.quiet) {
                deps.stderr.write(`${showProgress ? '\r' : ''}${r.id.slice(0, 8)} ${r.vm}: ${r.status === 'present' ? 'already in the target' : `copied (${r.chunksCopied} chunks copied, ${r.chunksPresent} present, ${formatBytes(r.bytesUploaded)} uploaded${r.serverSide ? `, ${r.serverSide} copied server-side` : ''})`}\n`);
              }
            },
          }),
        ),
      );
      if (o.json) write(JSON.stringify({ from: src.location, to: dst.location, ...result }) + '\n');
      else write(`copied ${result.points.filter((p) => p.status === 'copied').length} restore point(s) (${result.mode}) in ${formatDuration(result.durationMs)}\n`);
    });
};

/** '20M', '512K', '1G', '1000000' (bytes per second; a trailing /s or B/s is accepted). */
export function parseRate(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?(?:\/s)?$/i.exec(s.trim());
  if (!m) throw new CofferError('USAGE', `--limit-upload: cannot parse rate ${JSON.stringify(s)} (e.g. 20M for 20 MiB/s)`);
  return Math.round(Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G']);
}
