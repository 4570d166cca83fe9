import { join, posix } from 'node:path';
import type { Command } from 'commander';
import {
  diffFiles,
  findFiles,
  FIND_DEFAULTS,
  listGuestFiles,
  listGuestPartitions,
  restoreFiles,
  type FileInfo,
} from '../../engine/index.js';
import { CofferError, formatBytes, formatDuration } from '../../shared/index.js';
import { parseInteger, type CommandKit, type CommonOpts } from '../kit/index.js';

interface FilesOpts extends CommonOpts {
  disk: string;
  partition?: string;
}

const TYPE_CHAR: Record<string, string> = {
  file: '-',
  dir: 'd',
  symlink: 'l',
  chardev: 'c',
  blockdev: 'b',
  fifo: 'p',
  socket: 's',
  unknown: '?',
};

/** `drwxr-xr-x`, with setuid/setgid/sticky as ls shows them. */
export function modeString(type: string, mode: number): string {
  const rwx = (bits: number, special: boolean, ch: string) =>
    (bits & 4 ? 'r' : '-') +
    (bits & 2 ? 'w' : '-') +
    (special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-');
  return (
    (TYPE_CHAR[type] ?? '?') +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't')
  );
}

/** Guest names are untrusted: control characters are shown escaped on a terminal. */
function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function lsLine(f: FileInfo): string {
  const time = f.mtime ? f.mtime.slice(0, 16).replace('T', ' ') : '-'.padEnd(16);
  const link =
    f.type === 'symlink'
      ? ` -> ${f.linkTarget !== undefined ? printable(f.linkTarget) : `? (${f.error?.message ?? 'unreadable'})`}`
      : '';
  if (f.error)
    return (
      `?????????? ${'?'.padStart(3)} ${'?'.padStart(5)} ${'?'.padStart(5)} ${'?'.padStart(12)} ${'?'.padEnd(16)} ` +
      `${printable(f.name)} (${f.error.code}: ${f.error.message})\n`
    );
  return (
    `${modeString(f.type, f.mode)} ${String(f.nlink).padStart(3)} ${String(f.uid).padStart(5)} ` +
    `${String(f.gid).padStart(5)} ${String(f.size).padStart(12)} ${time} ${printable(f.name)}${link}\n`
  );
}

/** `--partition`: a number as `files ls --partitions` shows it, or an LVM2 logical volume as VG/LV. */
function parsePartition(v: string | undefined): number | string | undefined {
  if (v === undefined) return undefined;
  return /^[^/]+\/[^/]+$/.test(v) ? v : parseInteger(v, '--partition');
}

/** `coffer files ls|get`: file-level restore (get: the engine's restoreFiles). */
export function filesCommand(program: Command, kit: CommandKit): void {
  const files = program
    .command('files')
    .description(
      'file-level restore: list and copy files out of a disk of a restore point (ext2/3/4, XFS, FAT12/16/32, ' +
        'NTFS, inside partitions or LVM2 logical volumes)',
    );
  const location = (c: Command) =>
    kit
      .common(c)
      .requiredOption('--disk <n>', 'disk index (0-based)')
      .option(
        '--partition <n>',
        'partition number as `files ls --partitions` shows it (0 = a disk without partition table), or an LVM2 ' +
          'logical volume as VG/LV; default: the only one',
      );

  location(
    files
      .command('ls')
      .description(
        'list a directory or show a file of a guest filesystem; ' +
          'without PATH (or with --partitions) list the partitions',
      ),
  )
    .argument('<id>', 'restore point id, unique prefix, or "latest"')
    .argument('[path]', 'path inside the guest filesystem')
    .option('--partitions', 'list the partitions and the filesystems found on them')
    .action(async (ref: string, path: string | undefined, o: FilesOpts & { partitions?: boolean }) => {
      const repo = await kit.openRepo(o, kit.logger(o), true);
      const pointId = await repo.resolvePoint(ref);
      const disk = parseInteger(o.disk, '--disk');
      const partition = parsePartition(o.partition);
      const signal = kit.deps.signal;
      await kit.withPool(repo, async (pool) => {
        if (path === undefined || o.partitions || typeof partition === 'number') {
          const t = await listGuestPartitions(repo, pool, { pointId, disk }, { signal });
          // a partition the disk does not have is an error, not an empty listing with exit 0 (issue 20)
          if (typeof partition === 'number' && !t.partitions.some((p) => p.number === partition))
            throw new CofferError(
              'NOT_FOUND',
              `disk ${disk} of ${pointId.slice(0, 8)} has no partition ${partition} ` +
                `(${
                  t.scheme === 'none'
                    ? 'no partition table: the filesystem is --partition 0'
                    : `it has ${t.partitions.map((p) => p.number).join(', ') || 'none'}`
                })`,
              { details: { disk, partition, scheme: t.scheme, partitions: t.partitions.map((p) => p.number) } },
            );
        }
        if (path === undefined || o.partitions) {
          const t = await listGuestPartitions(repo, pool, { pointId, disk }, { signal });
          if (o.json) kit.write(JSON.stringify({ id: pointId, disk, ...t }) + '\n');
          else {
            kit.write(
              `disk ${disk} of ${pointId}: ${formatBytes(t.sizeBytes)}, ` +
                `${t.scheme === 'none' ? 'no partition table' : `${t.scheme.toUpperCase()} partition table`}\n`,
            );
            kit.write(
              `${'#'.padStart(3)}  ${'START'.padStart(14)}  ${'SIZE'.padStart(10)}  ${'TYPE'.padEnd(36)}  ` +
                `${'FS'.padEnd(6)}  NAME / PROBLEM\n`,
            );
            for (const p of t.partitions) {
              const note = [
                p.name ? printable(p.name) : '',
                p.role ? `(${p.role})` : '',
                p.container ? '(extended)' : '',
                p.problem ? `PROBLEM: ${p.problem}` : '',
                p.unsupported ? 'NOT READABLE (LDM)' : '',
              ]
                .filter(Boolean)
                .join(' ');
              kit.write(
                `${String(p.number).padStart(3)}  ${String(p.startBytes).padStart(14)}  ` +
                  `${formatBytes(p.sizeBytes).padStart(10)}  ${p.type.padEnd(36)}  ` +
                  `${(p.filesystem ?? '-').padEnd(6)}  ${note}\n`,
              );
            }
          }
          return;
        }
        const r = await listGuestFiles(repo, pool, { pointId, disk, partition, path }, { signal });
        for (const w of r.warnings) kit.logger(o).warn(w);
        if (o.json) kit.write(JSON.stringify(r) + '\n');
        else for (const f of r.entries ?? [r.entry]) kit.write(lsLine(f));
      });
    });

  location(
    files
      .command('get')
      .description('copy files or directories (recursively) out of a guest filesystem into a local directory'),
  )
    .argument('<id>', 'restore point id, unique prefix, or "latest"')
    .argument('<path...>', 'paths inside the guest filesystem')
    .requiredOption('--target <dir>', 'local directory to copy into (created if missing)')
    .option(
      '--force',
      'replace existing files and symlinks in the target (symlinks are replaced, never written through)',
    )
    .option('--streams', 'also write the alternate data streams of NTFS files, as name:stream files beside them')
    .option('--flat', 'put each path directly in the target (its directories dropped), as before issue 20')
    .action(
      async (
        ref: string,
        paths: string[],
        o: FilesOpts & { target: string; force?: boolean; streams?: boolean; flat?: boolean },
      ) => {
        const logger = kit.logger(o);
        const repo = await kit.openRepo(o, logger, true);
        const pointId = await repo.resolvePoint(ref);
        const disk = parseInteger(o.disk, '--disk');
        const partition = parsePartition(o.partition);
        const req = { pointId, disk, partition, force: Boolean(o.force), streams: Boolean(o.streams) };
        // paths kept: /a/b/c.txt lands in TARGET/a/b/c.txt (normalised below TARGET: no way out with ..)
        const groups = new Map<string, string[]>();
        for (const p of paths) {
          const dir = o.flat ? '' : posix.dirname(posix.normalize(`/${p}`)).slice(1);
          groups.set(dir, [...(groups.get(dir) ?? []), p]);
        }
        let r: Awaited<ReturnType<typeof restoreFiles>> | undefined;
        for (const [dir, group] of groups) {
          const one = await restoreFiles(repo, kit.useCase, { ...req, paths: group, target: join(o.target, dir) });
          r = r ? mergeRestored(r, one, o.target) : { ...one, target: o.target };
        }
        if (!r) return;
        for (const w of r.warnings) logger.warn(w);
        if (o.json) kit.writeJson(r);
        else {
          kit.write(
            `copied ${r.files} files, ${r.dirs} directories, ${r.symlinks} symlinks, ${r.hardlinks} hard links ` +
              `(${formatBytes(r.bytes)}) from ${r.filesystem} partition ${r.partition} to ${r.target} ` +
              `in ${formatDuration(r.durationMs)}\n`,
          );
          for (const s of r.skipped) logger.warn(`skipped ${printable(s.path)} (${s.type}): ${s.reason}`);
          for (const f of r.failed) kit.deps.stderr.write(`coffer: ${printable(f.path)}: [${f.code}] ${f.message}\n`);
        }
        if (r.failed.length > 0)
          throw new CofferError('PARTIAL', `${r.failed.length} file(s) could not be restored`, {
            details: { failed: r.failed.length, reported: Boolean(o.json) },
          });
      },
    );

  const bounds = (c: Command) =>
    c
      .option('--disk <n>', 'only this disk (0-based); default every disk')
      .option(
        '--partition <n>',
        'only this partition (or LVM2 VG/LV); default every partition holding a readable filesystem',
      )
      .option(
        '--max-entries <n>',
        `entries walked at most per restore point (default ${FIND_DEFAULTS.entriesPerPoint})`,
      )
      .option('--limit <n>', 'results returned at most');

  bounds(
    kit.common(
      files
        .command('find')
        .description(
          'find where a guest path or glob (*, ?, **, [a-z]) exists across restore points, ' +
            'newest first, with size and mtime',
        ),
    ),
  )
    .argument('<pattern>', 'a full guest path (matched exactly) or a glob over the full path, e.g. "/etc/**/*.conf"')
    .option('--vm <name>', 'only restore points of this VM (name or id)')
    .option('--since <date>', 'only restore points taken at or after this date (ISO 8601)')
    .option('--max-points <n>', `search only the newest N restore points (default ${FIND_DEFAULTS.maxPoints})`)
    .action(
      async (
        pattern: string,
        o: CommonOpts & {
          vm?: string;
          since?: string;
          disk?: string;
          partition?: string;
          maxPoints?: string;
          maxEntries?: string;
          limit?: string;
        },
      ) => {
        const logger = kit.logger(o);
        const repo = await kit.openRepo(o, logger, true);
        const num = (v: string | undefined, what: string) => (v === undefined ? undefined : parseInteger(v, what));
        const r = await findFiles(repo, kit.useCase, {
          pattern,
          vm: o.vm,
          since: o.since,
          disk: num(o.disk, '--disk'),
          partition: parsePartition(o.partition),
          maxPoints: num(o.maxPoints, '--max-points'),
          entriesPerPoint: num(o.maxEntries, '--max-entries'),
          maxResults: num(o.limit, '--limit') ?? FIND_DEFAULTS.maxResults,
        });
        if (o.json) kit.writeJson(r);
        else {
          for (const m of r.matches) {
            const time = m.mtime ? m.mtime.slice(0, 19).replace('T', ' ') : '-';
            kit.write(
              `${m.pointId}  ${m.time.slice(0, 19).replace('T', ' ')}  disk ${m.disk} part ${m.partition}  ` +
                `${TYPE_CHAR[m.type] ?? '?'} ${String(m.size).padStart(12)}  ${time}  ${printable(m.path)}\n`,
            );
          }
          kit.write(
            `${r.matches.length} match(es) in ${r.points.length} restore point(s), ` +
              `${r.points.reduce((n, p) => n + p.entriesWalked, 0)} entries walked in ${formatDuration(r.durationMs)}` +
              `${r.partial ? ' (PARTIAL: see the notes)' : ''}\n`,
          );
          for (const n of r.notes) logger.warn(printable(n));
        }
      },
    );

  bounds(
    kit.common(
      files
        .command('diff')
        .description(
          'list what changed between two restore points of one VM: added, removed, changed (type, size, mtime, ' +
            'mode; content with --content)',
        ),
    ),
  )
    .argument('<a>', 'the older restore point (id, unique prefix or "latest")')
    .argument('<b>', 'the newer restore point')
    .argument('[path]', 'compare only this subtree of the guest filesystem', '/')
    .option('--content', 'read and compare files whose size and mtime are equal')
    .option('--force', 'compare restore points of different VMs')
    .action(
      async (
        refA: string,
        refB: string,
        path: string,
        o: CommonOpts & {
          disk?: string;
          partition?: string;
          maxEntries?: string;
          limit?: string;
          content?: boolean;
          force?: boolean;
        },
      ) => {
        const logger = kit.logger(o);
        const repo = await kit.openRepo(o, logger, true);
        const num = (v: string | undefined, what: string) => (v === undefined ? undefined : parseInteger(v, what));
        const a = await repo.resolvePoint(refA);
        const b = await repo.resolvePoint(refB);
        const r = await diffFiles(repo, kit.useCase, {
          a,
          b,
          path,
          force: Boolean(o.force),
          content: Boolean(o.content),
          disk: num(o.disk, '--disk'),
          partition: parsePartition(o.partition),
          entries: num(o.maxEntries, '--max-entries'),
          maxResults: num(o.limit, '--limit'),
        });
        if (o.json) kit.writeJson(r);
        else {
          const sign = { added: '+', removed: '-', changed: '~' } as const;
          for (const v of r.volumes) {
            for (const c of v.changes) {
              const size =
                c.change === 'added'
                  ? `${c.sizeB}`
                  : c.change === 'removed'
                    ? `${c.sizeA}`
                    : c.sizeA === c.sizeB
                      ? `${c.sizeB}`
                      : `${c.sizeA} -> ${c.sizeB}`;
              kit.write(
                `${sign[c.change]} ${TYPE_CHAR[c.type] ?? '?'} disk ${v.disk} part ${v.partition}  ` +
                  `${printable(c.path)}  ${size}${c.fields ? `  (${c.fields.join(', ')})` : ''}\n`,
              );
            }
          }
          kit.write(
            `${r.counts.added} added, ${r.counts.removed} removed, ${r.counts.changed} changed between ${r.a.id} ` +
              `and ${r.b.id} in ${formatDuration(r.durationMs)}${r.partial ? ' (PARTIAL: see the notes)' : ''}\n`,
          );
          for (const n of r.notes) logger.warn(printable(n));
        }
      },
    );
}

/** two `files get` results (paths of different directories) as one */
function mergeRestored<T extends Awaited<ReturnType<typeof restoreFiles>>>(a: T, b: T, target: string): T {
  const out = { ...a, target } as unknown as Record<string, unknown>;
  const counts = new Set(['files', 'dirs', 'symlinks', 'hardlinks', 'bytes', 'durationMs', 'chunksRead']);
  for (const [k, v] of Object.entries(b)) {
    const prev = (a as unknown as Record<string, unknown>)[k];
    if (counts.has(k) && typeof v === 'number' && typeof prev === 'number') out[k] = prev + v;
    else if (Array.isArray(v) && Array.isArray(prev)) out[k] = [...prev, ...v];
  }
  return out as unknown as T;
}
