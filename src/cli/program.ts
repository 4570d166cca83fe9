import { Command, CommanderError, Option } from 'commander';
import { CodecPool, RestorePointDevice, type BackupResult, type CodecParams, TOOL_VERSION, backup, exportDisk, restoreDisk, verify, type ExportFormat } from '../engine/index.js';
import { NbdServer } from '../nbd/index.js';
import { CONFIG_BLOB, Repository, type KdfCost } from '../repository/index.js';
import { APPEND_ONLY_BLOB } from '../storage/index.js';
import { CofferError, asCofferError, formatBytes, formatDuration, type Logger } from '../shared/index.js';
import type { BlockSource } from '../sources/index.js';
import { readPassword, stderrLogger, type CliDeps } from './context.js';
import { EXIT_CODES, EXIT_OK } from './exit-codes.js';
import { COMMAND_MODULES } from './modules.js';
import { ProgressReporter } from './progress.js';
import { isVsphereUrl } from '../vsphere/index.js';
import { addTlsOptions, backupVsphere, restoreVsphere, type VsphereCliOpts, type VsphereRestoreCliOpts } from './vsphere-commands.js';

/** The options every repository command has (see `common` below). */
export interface CommonOpts {
  repo: string;
  passwordFile?: string;
  json?: boolean;
  progress?: boolean;
  quiet?: boolean;
}

/** What a command module gets to define its commands with (cli/modules.ts). */
export interface CommandKit {
  deps: CliDeps;
  /** writes to stdout */
  write(s: string): void;
  /** adds --repo, --password-file, --json, --no-progress, -q to a command */
  common(c: Command): Command;
  /** opens the repository named by --repo; `prestartPool` starts the codec workers while scrypt runs */
  openRepo(o: CommonOpts, logger: Logger, prestartPool?: boolean): Promise<Repository>;
  /** runs fn with a codec pool (the prestarted one if any) and closes it afterwards */
  withPool<T>(repo: Repository, fn: (pool: CodecPool) => Promise<T>): Promise<T>;
  progressOn(o: CommonOpts): boolean;
}

/** Runs the coffer CLI; returns the exit code (never calls process.exit). */
export async function runCli(argv: string[], deps: CliDeps): Promise<number> {
  let jsonMode = argv.includes('--json');
  const out = (s: string) => deps.stdout.write(s);
  const program = buildProgram(deps, (v) => (jsonMode = v));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT_OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT_OK;
      const err = new CofferError('USAGE', e.message.replace(/^error: /, ''));
      if (jsonMode) out(JSON.stringify({ error: err.toJSON() }) + '\n');
      return EXIT_CODES.USAGE;
    }
    const err = asCofferError(e);
    // `reported`: the command already printed its JSON result (e.g. a verify report with problems): one document only
    if (jsonMode && !err.details.reported) out(JSON.stringify({ error: err.toJSON() }) + '\n');
    else {
      deps.stderr.write(`coffer: error [${err.code}]: ${err.message}\n`);
      if (err.hint) deps.stderr.write(`  hint: ${err.hint}\n`);
      if (err.code === 'INTERNAL' && err.stack) deps.stderr.write(`${err.stack}\n`);
    }
    return EXIT_CODES[err.code] ?? 1;
  }
}

function buildProgram(deps: CliDeps, setJson: (v: boolean) => void): Command {
  const write = (s: string) => deps.stdout.write(s);
  const program = new Command('coffer')
    .description('Backup and recovery for virtual machines: deduplicated, compressed, encrypted disk images')
    .version(TOOL_VERSION)
    .exitOverride()
    .configureOutput({ writeOut: (s) => deps.stdout.write(s), writeErr: (s) => deps.stderr.write(s) })
    .showSuggestionAfterError(true);

  const common = (c: Command) =>
    c
      .requiredOption('--repo <path>', 'repository location: a directory, azure://ACCOUNT/CONTAINER[/PREFIX] or s3://BUCKET[/PREFIX]')
      .option('--password-file <file>', 'read the repository password from FILE (default: $COFFER_PASSWORD)')
      .option('--json', 'print a machine-readable JSON result on stdout')
      .option('--no-progress', 'no progress output on stderr')
      .option('-q, --quiet', 'only errors and warnings on stderr')
      .exitOverride()
      .hook('preAction', (cmd) => setJson(Boolean(cmd.opts().json)));

  // With `prestartPool`, the codec workers start loading while scrypt derives the key (~0.1 s saved); withPool then
  // uses them. A pool left unused by a failing command dies with the process (bin/coffer.ts exits explicitly).
  let early: { pool: CodecPool; give: (p: CodecParams) => void } | undefined;
  const openRepo = async (o: CommonOpts, logger: Logger, prestartPool = false) => {
    if (prestartPool) {
      let give!: (p: CodecParams) => void;
      early = { pool: deps.createPool(new Promise<CodecParams>((r) => (give = r))), give };
    }
    const store = await deps.openStore(o.repo, { create: false });
    const repo = await Repository.open(store, await readPassword(deps, o.passwordFile), { logger });
    early?.give(repo.codecParams);
    return repo;
  };
  const withPool = async <T>(repo: Repository, fn: (pool: CodecPool) => Promise<T>): Promise<T> => {
    const pool = early?.pool ?? deps.createPool(repo.codecParams);
    early = undefined;
    try {
      return await fn(pool);
    } finally {
      await pool.close();
    }
  };
  const progressOn = (o: CommonOpts) => o.progress !== false && !o.quiet;
  const kit: CommandKit = { deps, write, common, openRepo, withPool, progressOn };

  common(program.command('init').description('create a new repository'))
    .addOption(new Option('--chunk-size <bytes>', 'chunk size: a power of two from 64K to 8M').default('1M'))
    .addOption(new Option('--compression-level <n>', 'zstd level (-7..19)').default('2'))
    .addOption(new Option('--kdf-cost <N>', 'scrypt N for the key (power of two)').hideHelp())
    .option('--copy-of <repo>', 'create a replica of another repository (same keys and chunk ids: `copy` then moves blobs unchanged)')
    .option('--append-only', 'Coffer never deletes anything in this repository (forget/prune keep all); cannot be undone by Coffer')
    .action(async (o: CommonOpts & { chunkSize: string; compressionLevel: string; kdfCost?: string; copyOf?: string; appendOnly?: boolean }) => {
      const password = await readPassword(deps, o.passwordFile);
      const source = o.copyOf ? await deps.openStore(o.copyOf, { create: false }) : undefined;
      const store = await deps.openStore(o.repo, { create: true });
      if (o.appendOnly) {
        // the marker first (FORMAT.md §9): a repository is never, not even for a moment, deletable
        if (await store.stat(CONFIG_BLOB)) throw new CofferError('REPO_EXISTS', `a repository already exists at ${store.location}`);
        await store.put(APPEND_ONLY_BLOB, Buffer.from(JSON.stringify({ appendOnly: true, since: new Date().toISOString() }) + '\n'));
      }
      const kdf: KdfCost = o.kdfCost ? { N: parseInteger(o.kdfCost, '--kdf-cost') } : {};
      const repo = source ? await Repository.initCopyOf(store, source, password) : await Repository.init(store, password, {
        chunkSizeBytes: parseSize(o.chunkSize, '--chunk-size'),
        zstdLevel: parseInteger(o.compressionLevel, '--compression-level'),
        kdf,
      });
      if (o.json) write(JSON.stringify({ id: repo.id, location: store.location, chunkSizeBytes: repo.chunkSizeBytes, formatVersion: repo.config.formatVersion, appendOnly: o.appendOnly === true }) + '\n');
      else write(`created repository ${repo.id} at ${store.location}\n`);
    });

  addTlsOptions(common(program.command('backup').description('back up the disks of a VM into one restore point')))
    .argument('<source...>', 'disks in order: image paths or file:// URLs (raw, vmdk, qcow2, vhdx, vhd), nbd://HOST:PORT/EXPORT[?bitmap=NAME]; or one vsphere://HOST[:PORT]/VM (all its disks)')
    .option('--vm <name>', 'VM name (restore points are grouped and deduplicated by it; default for vsphere:// the VM name)')
    .option('--tag <tag...>', 'tags to store with the restore point')
    .option('--verify-cbt', 'with change tracking: read every chunk anyway and report changes it missed')
    .option('--timeout <seconds>', 'NBD request timeout', '30')
    .option('--no-quiesce', 'vsphere: do not quiesce the guest (crash-consistent snapshot) even when VMware Tools runs')
    .addOption(new Option('--transport <kind>', 'vsphere: how disks are read').choices(['http', 'nbd']).default('http'))
    .option('--nbd-url <template>', 'vsphere --transport nbd: NBD export of each disk, {index} {key} {file} {name} substituted (e.g. nbd://127.0.0.1:10809/{index})')
    .addOption(new Option('--format <format>', 'image sources: take the bytes as they are (raw), whatever container or encryption their magic shows').choices(['raw']))
    .action(async (sources: string[], o: CommonOpts & { vm?: string; tag?: string[]; verifyCbt?: boolean; timeout: string; format?: 'raw' } & VsphereCliOpts) => {
      const logger = stderrLogger(deps, o.quiet);
      const timeoutMs = parseInteger(o.timeout, '--timeout') * 1000;
      if (sources.some(isVsphereUrl)) return backupVsphere(kit, sources, o, logger);
      if (!o.vm) throw new CofferError('USAGE', "required option '--vm <name>' not specified");
      const vmName = o.vm;
      // Start-up in parallel: the workers load while scrypt derives the key and the sources open.
      const opened: (BlockSource | undefined)[] = [];
      // every open settles before we leave (so a source opened late is still closed), the first failure is thrown
      const openAll = Promise.allSettled(
        sources.map(async (s, i) => {
          opened[i] = await deps.openSource(s, { logger, signal: deps.signal, timeoutMs, format: o.format });
        }),
      ).then((rs) => {
        const bad = rs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (bad) throw bad.reason;
      });
      openAll.catch(() => undefined);
      try {
        const [repo] = await Promise.all([openRepo(o, logger, true), openAll]);
        const disks = opened as BlockSource[];
        const total = disks.reduce((a, s) => a + s.sizeBytes, 0);
        const done = disks.map(() => 0);
        const progress = new ProgressReporter(deps.stderr as never, `backup ${vmName}`, progressOn(o));
        const result = await withPool(repo, (pool) =>
          backup(repo, pool, {
            vm: vmName,
            sources: disks,
            tags: o.tag ?? [],
            verifyCbt: Boolean(o.verifyCbt),
            signal: deps.signal,
            onWarning: (m) => logger.warn(m),
            onProgress: (p) => {
              done[p.disk] = p.bytesDone;
              progress.update(done.reduce((a, b) => a + b, 0), total, `stored ${formatBytes(p.bytesStored)}`);
            },
          }),
        );
        progress.done();
        if (o.json) write(JSON.stringify(result) + '\n');
        else printBackupResult(write, result);
      } finally {
        await openAll.catch(() => undefined);
        await Promise.allSettled(opened.map((s) => s?.close()));
      }
    });

  common(program.command('list').description('list restore points'))
    .option('--vm <name>', 'only this VM')
    .action(async (o: CommonOpts & { vm?: string }) => {
      const logger = stderrLogger(deps, o.quiet);
      const repo = await openRepo(o, logger);
      const damaged: string[] = [];
      const points = (await repo.listPoints({ signal: deps.signal }, (id, e) => {
        damaged.push(id);
        logger.warn(`restore point ${id} is unreadable: ${e.message}`);
      })).filter((p) => !o.vm || p.vm.name === o.vm);
      if (o.json) {
        write(JSON.stringify(points.map((p) => ({
          id: p.id,
          vm: p.vm.name,
          time: p.time,
          parent: p.parent,
          mode: p.mode,
          tags: p.tags,
          disks: p.disks.map((d) => ({ index: d.index, sizeBytes: d.sizeBytes })),
        }))) + '\n');
      } else {
        write(`${'ID'.padEnd(10)} ${'TIME'.padEnd(20)} ${'VM'.padEnd(20)} ${'MODE'.padEnd(11)} DISKS\n`);
        for (const p of points) {
          write(`${p.id.slice(0, 8).padEnd(10)} ${p.time.slice(0, 19).replace('T', ' ').padEnd(20)} ${p.vm.name.padEnd(20)} ${p.mode.padEnd(11)} ${p.disks.map((d) => formatBytes(d.sizeBytes)).join(', ')}\n`);
        }
      }
      if (damaged.length > 0) throw new CofferError('CORRUPT', `${damaged.length} restore point(s) could not be read: ${damaged.join(', ')}`, { details: { damaged, reported: true } });
    });

  common(program.command('show').description('show one restore point'))
    .argument('<id>', 'restore point id, unique prefix, or "latest"')
    .action(async (ref: string, o: CommonOpts) => {
      const repo = await openRepo(o, stderrLogger(deps, o.quiet));
      const m = await repo.loadManifest(await repo.resolvePoint(ref));
      if (o.json) write(JSON.stringify(m) + '\n');
      else {
        write(`restore point ${m.id}\n  VM        ${m.vm.name}\n  time      ${m.time} (took ${formatDuration(m.stats.durationMs)})\n  mode      ${m.mode}\n  parent    ${m.parent ?? '-'}\n  host      ${m.host}\n  tags      ${m.tags.join(', ') || '-'}\n`);
        for (const d of m.disks) write(`  disk ${d.index}    ${formatBytes(d.sizeBytes)} from ${d.source}, ${d.chunkCount} chunks (${d.zeroChunks} zero)\n`);
        write(`  stored    ${formatBytes(m.stats.bytesStored)} new of ${formatBytes(m.stats.bytesRead)} read\n`);
      }
    });

  addTlsOptions(common(program.command('restore').description('restore one disk of a restore point to a file, block device or stdout; or a whole VM to vCenter (--to vsphere://)')))
    .argument('<id>', 'restore point id, unique prefix, or "latest"')
    .option('--disk <n>', 'disk index (0-based)')
    .option('--target <path>', 'output file (sparse raw image), block device, or - for stdout')
    .option('--force', 'overwrite an existing target file (vsphere: replace the disks of an existing powered-off VM)')
    .option('--sync', 'fsync the restored file before exiting (block devices are always synced)')
    .option('--check-ids', 're-hash every chunk to its id while restoring (slower; verify --read-data does this)')
    .option('--format <format>', 'raw (sparse), qcow2, vmdk (streamOptimized) or vhdx', 'raw')
    .option('--to <url>', 'vsphere://HOST[:PORT]/NEWNAME: create a VM from the stored configuration and upload its disks')
    .option('--datastore <name>', 'vsphere: datastore for the VM and its disks')
    .option('--power-on', 'vsphere: power the restored VM on')
    .option('--folder <path>', 'vsphere: VM folder (default: the original one if it exists, else the datacenter\'s)')
    .option('--pool <path>', 'vsphere: resource pool (default: the original one if it exists)')
    .option('--host <name>', 'vsphere: host for the new VM')
    .option('--path <dir/file>', 'vsphere with --disk: datastore path to upload that one disk to')
    .action(async (ref: string, o: CommonOpts & VsphereRestoreCliOpts & { disk?: string; target?: string; force?: boolean; sync?: boolean; checkIds?: boolean; format: string }) => {
      if (o.to !== undefined) return restoreVsphere(kit, ref, o);
      if (o.disk === undefined) throw new CofferError('USAGE', "required option '--disk <n>' not specified");
      if (o.target === undefined) throw new CofferError('USAGE', "required option '--target <path>' not specified (or --to vsphere://HOST/NEWNAME)");
      const target: string = o.target;
      const diskArg = o.disk;
      const repo = await openRepo(o, stderrLogger(deps, o.quiet), true);
      const pointId = await repo.resolvePoint(ref);
      const toStdout = target === '-';
      if (o.format !== 'raw') {
        if (!['qcow2', 'vmdk', 'vhdx'].includes(o.format)) throw new CofferError('USAGE', `--format must be raw, qcow2, vmdk or vhdx, not ${JSON.stringify(o.format)}`);
        if (toStdout) throw new CofferError('USAGE', `--format ${o.format} needs a file target, not stdout`);
        const progress = new ProgressReporter(deps.stderr as never, `export ${pointId.slice(0, 8)}`, progressOn(o));
        const result = await withPool(repo, (pool) =>
          exportDisk(repo, pool, {
            pointId,
            disk: parseInteger(diskArg, '--disk'),
            format: o.format as ExportFormat,
            target: target,
            force: Boolean(o.force),
            signal: deps.signal,
            onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal),
          }),
        );
        progress.done();
        if (o.json) write(JSON.stringify(result) + '\n');
        else write(`exported disk ${result.disk} of ${result.id} (${formatBytes(result.sizeBytes)}) as ${result.format} to ${result.target} in ${formatDuration(result.durationMs)}\n`);
        return;
      }
      if (toStdout && o.json) throw new CofferError('USAGE', '--json cannot be combined with --target - (stdout carries the disk)');
      const progress = new ProgressReporter(deps.stderr as never, `restore ${pointId.slice(0, 8)}`, progressOn(o));
      const result = await withPool(repo, (pool) =>
        restoreDisk(repo, pool, {
          pointId,
          disk: parseInteger(diskArg, '--disk'),
          target: toStdout ? { kind: 'stream', stream: deps.stdout } : { kind: 'path', path: target, force: Boolean(o.force) },
          signal: deps.signal,
          sync: Boolean(o.sync),
          checkIds: Boolean(o.checkIds),
          onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal),
        }),
      );
      progress.done();
      if (o.json) write(JSON.stringify(result) + '\n');
      else if (!toStdout) write(`restored disk ${result.disk} of ${result.id} (${formatBytes(result.sizeBytes)}) to ${result.target} in ${formatDuration(result.durationMs)}\n`);
    });

  common(program.command('mount').description('instant recovery: serve one disk of a restore point over NBD until SIGINT/SIGTERM'))
    .argument('<id>', 'restore point id, unique prefix, or "latest"')
    .requiredOption('--disk <n>', 'disk index (0-based)')
    .option('--nbd <host:port>', 'address to listen on', '127.0.0.1:10809')
    .option('--export-name <name>', 'NBD export name', '')
    .option('--writable', 'accept writes into a local copy-on-write overlay (the repository is never written)')
    .option('--overlay <file>', 'overlay file for --writable (default: a temporary file removed at exit)')
    .option('--cache-chunks <n>', 'decoded chunks kept in memory', '24')
    .action(async (ref: string, o: CommonOpts & { disk: string; nbd: string; exportName: string; writable?: boolean; overlay?: string; cacheChunks: string }) => {
      const logger = stderrLogger(deps, o.quiet);
      const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(o.nbd);
      if (!m || Number(m[2]) > 65535) throw new CofferError('USAGE', `--nbd must be HOST:PORT, not ${JSON.stringify(o.nbd)}`);
      const host = m[1]!.replace(/^\[(.*)\]$/, '$1');
      const repo = await openRepo(o, logger, true);
      const pointId = await repo.resolvePoint(ref);
      const manifest = await repo.loadManifest(pointId);
      const diskNo = parseInteger(o.disk, '--disk');
      const disk = manifest.disks[diskNo];
      if (!disk) throw new CofferError('NOT_FOUND', `restore point ${pointId} has no disk ${diskNo}`);
      const index = await repo.loadIndex(disk.indexId);
      await withPool(repo, async (pool) => {
        const device = await RestorePointDevice.open(repo, pool, index, {
          writable: Boolean(o.writable),
          cacheChunks: parseInteger(o.cacheChunks, '--cache-chunks'),
          ...(o.overlay ? { overlayPath: o.overlay } : {}),
        });
        const server = new NbdServer(device, { exportName: o.exportName, description: `coffer ${manifest.vm.name} ${pointId} disk ${diskNo}`, logger });
        try {
          const addr = await server.listen(host, Number(m[2]));
          const shownHost = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
          const uri = `nbd://${shownHost}:${addr.port}/${encodeURIComponent(o.exportName)}`;
          const ready = { uri, id: pointId, vm: manifest.vm.name, disk: diskNo, sizeBytes: index.diskSizeBytes, writable: device.writable, overlay: device.overlayPath ?? null };
          if (o.json) write(JSON.stringify(ready) + '\n');
          else write(`serving disk ${diskNo} of ${pointId} (${manifest.vm.name}, ${formatBytes(index.diskSizeBytes)}) at ${uri}${device.writable ? ` (writable, overlay ${device.overlayPath})` : ' (read-only)'}; stop with Ctrl-C\n`);
          if (!deps.signal.aborted) await new Promise<void>((r) => deps.signal.addEventListener('abort', () => r(), { once: true }));
        } finally {
          await server.close();
          await device.close();
        }
      });
    });

  common(program.command('verify').description('check that every restore point is complete; --read-data also checks every byte'))
    .option('--read-data', 'decrypt, decompress and re-hash every referenced chunk')
    .option('--read-data-subset <pct>', 'like --read-data for a deterministic sample of PCT percent of the chunks')
    .option('--no-record', 'do not record the outcome per restore point in the repository')
    .action(async (o: CommonOpts & { readData?: boolean; readDataSubset?: string; record?: boolean }) => {
      const repo = await openRepo(o, stderrLogger(deps, o.quiet), true);
      let fraction = o.readData ? 1 : 0;
      if (o.readData && o.readDataSubset !== undefined) throw new CofferError('USAGE', 'use either --read-data or --read-data-subset, not both');
      if (o.readDataSubset !== undefined) {
        const pct = Number(o.readDataSubset.replace(/%$/, ''));
        if (!(pct > 0 && pct <= 100)) throw new CofferError('USAGE', '--read-data-subset must be a percentage in (0, 100]');
        fraction = pct / 100;
      }
      const progress = new ProgressReporter(deps.stderr as never, 'verify', progressOn(o), 'items');
      const report = await withPool(repo, (pool) =>
        verify(repo, pool, { readDataFraction: fraction, record: o.record !== false, signal: deps.signal, onProgress: (p) => p.total > 0 && progress.update(p.done, p.total, p.phase) }),
      );
      progress.done();
      if (o.json) write(JSON.stringify(report) + '\n');
      else {
        write(`${report.points} restore points, ${report.disks} disks, ${report.chunksReferenced} chunks referenced, ${report.chunksStored} stored (${report.chunksUnreferenced} unreferenced), ${report.chunksRead} read and checked in ${formatDuration(report.durationMs)}\n`);
        for (const p of report.problems.slice(0, 100)) write(`  ${p.kind}: ${p.message}${p.points ? ` (restore points ${p.points.map((x) => x.slice(0, 8)).join(', ')})` : ''}\n`);
        if (report.problems.length > 100) write(`  ... and ${report.problems.length - 100} more\n`);
        write(report.ok ? 'no errors found\n' : `${report.problems.length} problem(s) found\n`);
      }
      if (!report.ok) throw new CofferError('CORRUPT', `verify found ${report.problems.length} problem(s)`, { details: { problems: report.problems.length, reported: true } });
    });

  const key = program.command('key').description('manage the repository keys (passwords)');
  common(key.command('list').description('list keys'))
    .action(async (o: CommonOpts) => {
      const repo = await openRepo(o, stderrLogger(deps, o.quiet));
      const keys = (await repo.listKeys()).map((k) => ({ id: k.id, current: k.id === repo.keyId, createdAt: k.createdAt, host: k.host, user: k.user, label: k.label, kdf: { algorithm: k.kdf.algorithm, N: k.kdf.N, r: k.kdf.r, p: k.kdf.p } }));
      if (o.json) write(JSON.stringify(keys) + '\n');
      else for (const k of keys) write(`${k.current ? '*' : ' '} ${k.id}  ${k.createdAt}  ${k.user}@${k.host}  ${k.label}\n`);
    });
  common(key.command('add').description('add a key: the new password from $COFFER_NEW_PASSWORD or --new-password-file'))
    .option('--new-password-file <file>', 'read the new password from FILE')
    .option('--label <text>', 'a label for the key', '')
    .action(async (o: CommonOpts & { newPasswordFile?: string; label: string }) => {
      const repo = await openRepo(o, stderrLogger(deps, o.quiet));
      const k = await repo.addKey(await readPassword(deps, o.newPasswordFile, 'COFFER_NEW_PASSWORD'), o.label);
      if (o.json) write(JSON.stringify({ id: k.id }) + '\n');
      else write(`added key ${k.id}\n`);
    });
  common(key.command('remove').description('remove a key (not the one in use, not the last)'))
    .argument('<key-id>')
    .action(async (keyId: string, o: CommonOpts) => {
      const repo = await openRepo(o, stderrLogger(deps, o.quiet));
      await repo.removeKey(keyId);
      if (o.json) write(JSON.stringify({ removed: keyId }) + '\n');
      else write(`removed key ${keyId}\n`);
    });
  common(key.command('passwd').description('change the password: adds a key with the new password, then removes the current one'))
    .option('--new-password-file <file>', 'read the new password from FILE')
    .action(async (o: CommonOpts & { newPasswordFile?: string }) => {
      const repo = await openRepo(o, stderrLogger(deps, o.quiet));
      const k = await repo.changePassword(await readPassword(deps, o.newPasswordFile, 'COFFER_NEW_PASSWORD'));
      if (o.json) write(JSON.stringify({ id: k.id, removed: repo.keyId }) + '\n');
      else write(`password changed: key ${repo.keyId} replaced by ${k.id}\n`);
    });

  // Commands of other areas live in their own modules (cli/modules.ts) and use the same kit.
  for (const register of COMMAND_MODULES) register(program, kit);
  return program;
}

/** The human-readable summary of a backup. */
export function printBackupResult(write: (s: string) => void, result: BackupResult): void {
  write(`restore point ${result.id} of VM ${result.vm} (${result.mode}${result.parent ? `, parent ${result.parent.slice(0, 8)}` : ''})\n`);
  for (const d of result.disks) {
    if (d.changeToken) write(`  disk ${d.index}: ${d.mode}${d.mode === 'incremental' ? `, ${formatBytes(d.changedBytes)} changed` : ''} (change tracking ${d.changeToken})\n`);
    if (d.fallbackReason) write(`  disk ${d.index}: read in full: ${d.fallbackReason}\n`);
    if (d.cbtDrift && d.cbtDrift.length > 0) write(`  disk ${d.index}: CHANGE TRACKING DRIFT in ${d.cbtDrift.length} range(s)\n`);
  }
  write(`  read ${formatBytes(result.bytesRead)}, stored ${formatBytes(result.bytesStored)} in ${result.chunksNew} new chunks; ${result.chunksReused} reused, ${result.zeroChunks} zero; ${formatDuration(result.durationMs)}\n`);
}

export function parseInteger(s: string, what: string): number {
  if (!/^-?\d+$/.test(s.trim())) throw new CofferError('USAGE', `${what} must be an integer, not ${JSON.stringify(s)}`);
  return Number(s);
}

/** '4M', '64K', '4194304', '4MiB' -> bytes. */
export function parseSize(s: string, what: string): number {
  const m = /^(\d+)\s*([KMG]?)(i?B)?$/i.exec(s.trim());
  if (!m) throw new CofferError('USAGE', `${what}: cannot parse size ${JSON.stringify(s)}`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * mult;
}
