import { Option, type Command } from 'commander';
import { backupVm, openDiskSet, type BackupVmResult, type VmSourceOpener } from '../../engine/index.js';
import { CofferError, formatBytes, type Logger } from '../../shared/index.js';
import { isVsphereUrl, vsphereSourceOpener } from '../../vsphere/index.js';
import {
  addTlsOptions,
  parseInteger,
  printBackupResult,
  tlsPolicy,
  type CommandKit,
  type CommonOpts,
  type ProgressReporter,
} from '../kit/index.js';

type BackupOpts = CommonOpts & {
  vm?: string;
  tag?: string[];
  verifyCbt?: boolean;
  timeout: string;
  thumbprint?: string;
  insecureTls?: boolean;
  quiesce?: string | boolean;
  quiesceRequired?: boolean;
  transport?: string;
  nbdUrl?: string;
  proxyVm?: string;
  vddkLibdir?: string;
  format?: 'raw';
};

/**
 * `coffer backup`: the disks of one VM into one restore point, from disk images / NBD exports or from one
 * vsphere://HOST/VM (its snapshot, removed afterwards whatever happens). Both go through the engine's backupVm.
 */
export function backupCommand(program: Command, kit: CommandKit): void {
  addTlsOptions(kit.common(program.command('backup').description('back up the disks of a VM into one restore point')))
    .argument(
      '<source...>',
      'disks in order: image paths or file:// URLs (raw, vmdk, qcow2, vhdx, vhd), ' +
        'nbd://HOST:PORT/EXPORT[?bitmap=NAME]; or one vsphere://HOST[:PORT]/VM (all its disks)',
    )
    .option(
      '--vm <name>',
      'VM name (restore points are grouped and deduplicated by it; default for vsphere:// the VM name)',
    )
    .option('--tag <tag...>', 'tags to store with the restore point')
    .option('--verify-cbt', 'with change tracking: read every chunk anyway and report changes it missed')
    .option('--timeout <seconds>', 'NBD request timeout', '30')
    .addOption(
      new Option(
        '--quiesce <mode>',
        'vsphere: snapshot consistency: auto (best the guest offers), app (VSS, Windows), fs (guest file systems ' +
          'frozen), none (crash-consistent); falls back app -> fs -> crash unless --quiesce-required',
      ).choices(['auto', 'app', 'fs', 'none']),
    )
    .option('--no-quiesce', 'vsphere: same as --quiesce none (crash-consistent snapshot)')
    .option('--quiesce-required', 'vsphere: fail (exit 30) instead of falling back to a less consistent snapshot')
    .addOption(
      new Option(
        '--transport <kind>',
        'vsphere: how disks are read (auto: hotadd on a proxy VM, else nbd with --vddk-libdir, else http; vSAN ' +
          'needs hotadd or nbd)',
      )
        .choices(['auto', 'http', 'nbd', 'hotadd'])
        .default('auto'),
    )
    .option(
      '--vddk-libdir <dir>',
      'vsphere --transport nbd/auto: VMware VDDK directory; Coffer runs one nbdkit vddk per disk',
    )
    .option(
      '--proxy-vm <name>',
      "vsphere --transport hotadd: the VM Coffer runs in (default: found by this machine's SMBIOS UUID)",
    )
    .option(
      '--nbd-url <template>',
      'vsphere --transport nbd: NBD export of each disk, {index} {key} {file} {name} {flat} substituted (e.g. ' +
        'nbd://127.0.0.1:10809/{index})',
    )
    .addOption(
      new Option(
        '--format <format>',
        'image sources: take the bytes as they are (raw), whatever container or encryption their magic shows',
      ).choices(['raw']),
    )
    .action(async (sources: string[], o: BackupOpts) => {
      const logger = kit.logger(o);
      const timeoutMs = parseInteger(o.timeout, '--timeout') * 1000;
      const source = sources.some(isVsphereUrl)
        ? vsphereSource(kit, sources, o, logger)
        : diskSource(kit, sources, o, logger, timeoutMs);
      let progress: ProgressReporter | undefined;
      const outcome = await backupVm(kit.useCase, {
        // a vSphere source opens after the repository; disk images open in parallel with it
        repository: kit.openRepo(o, logger, true),
        source,
        vm: o.vm,
        tags: o.tag ?? [],
        verifyCbt: Boolean(o.verifyCbt),
        onEvent: (e) => {
          if (e.type === 'started') progress = kit.progress(o, `backup ${e.vm}`);
          else if (e.type === 'progress') progress?.update(e.done, e.total, `stored ${formatBytes(e.bytesStored)}`);
          else if (e.type === 'warning') logger.warn(e.message);
        },
      });
      progress?.done();
      printOutcome(kit, o, outcome);
    });
}

function diskSource(
  kit: CommandKit,
  sources: string[],
  o: BackupOpts,
  logger: Logger,
  timeoutMs: number,
): VmSourceOpener {
  if (!o.vm) throw new CofferError('USAGE', "required option '--vm <name>' not specified");
  const signal = kit.deps.signal;
  return {
    open: (op) =>
      openDiskSet(
        sources.map((s) => () => kit.deps.openSource(s, { logger, signal, timeoutMs, format: o.format })),
        op,
      ),
  };
}

function vsphereSource(kit: CommandKit, sources: string[], o: BackupOpts, logger: Logger): VmSourceOpener {
  if (sources.length !== 1)
    throw new CofferError(
      'USAGE',
      'a vsphere:// source backs up a whole VM: give it alone (one VM per backup command)',
    );
  const tls = tlsPolicy(o);
  const { deps } = kit;
  return vsphereSourceOpener((op) =>
    deps.openVsphere(sources[0]!, {
      tls,
      env: deps.env,
      logger,
      signal: op.signal,
      quiesce: o.quiesce !== false,
      quiesceMode: o.quiesce === false ? 'none' : ((o.quiesce ?? 'auto') as 'auto' | 'app' | 'fs' | 'none'),
      quiesceRequired: Boolean(o.quiesceRequired),
      transport: (o.transport ?? 'auto') as 'auto' | 'http' | 'nbd' | 'hotadd',
      proxyVm: o.proxyVm,
      vddkLibdir: o.vddkLibdir,
      nbdUrl: o.nbdUrl,
    }),
  );
}

function printOutcome(kit: CommandKit, o: BackupOpts, { result, capture }: BackupVmResult): void {
  if (o.json) kit.writeJson(capture ? { ...result, [capture.kind]: capture.details } : result);
  else {
    printBackupResult(kit.write, result);
    if (capture?.kind === 'vsphere') {
      const v = capture.details as {
        vm: string;
        moref: string;
        snapshot: string;
        quiesced: boolean;
        quiesceMode?: string;
        cbtEnabledNow: boolean;
        snapshotRemoved: boolean;
      };
      const consistency =
        v.quiesceMode === 'app'
          ? 'application-consistent'
          : v.quiesceMode === 'fs'
            ? 'file-system-consistent'
            : v.quiesced
              ? 'quiesced'
              : 'crash-consistent';
      kit.write(
        `  vSphere: VM ${v.vm} (${v.moref}), ` +
          `snapshot ${v.snapshot} ${consistency}, ` +
          `${v.snapshotRemoved ? 'removed' : 'NOT REMOVED'}` +
          `${v.cbtEnabledNow ? '; CBT was enabled now (this backup is full)' : ''}\n`,
      );
    }
  }
}
