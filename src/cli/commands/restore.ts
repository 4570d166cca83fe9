import type { Command } from 'commander';
import { resolvePointRef, restoreDiskImage, type ExportResult, type RestoreResult } from '../../engine/index.js';
import type { Repository } from '../../repository/index.js';
import { CofferError, formatBytes, formatDuration } from '../../shared/index.js';
import { addTlsOptions, parseInteger, type CommandKit, type CommonOpts } from '../kit/index.js';
import { restoreToVsphere, type VsphereRestoreOpts } from './restore-vsphere.js';

export type RestoreOpts = CommonOpts &
  VsphereRestoreOpts & {
    disk?: string;
    target?: string;
    force?: boolean;
    sync?: boolean;
    checkIds?: boolean;
    format: string;
  };

/** `coffer restore`: one disk to a file, block device or stdout (raw, or an image format); or a whole VM to vCenter. */
export function restoreCommand(program: Command, kit: CommandKit): void {
  addTlsOptions(
    kit.common(
      program
        .command('restore')
        .description(
          'restore one disk of a restore point to a file, block device or stdout; or a whole ' +
            'VM to vCenter (--to vsphere://)',
        ),
    ),
  )
    .argument('<id>', 'restore point id, unique prefix, "latest" or "latest-clean[:VM]"')
    .option('--disk <n>', 'disk index (0-based); may be left out when the restore point has one disk')
    .option('--target <path>', 'output file (sparse raw image), block device, or - for stdout')
    .option('--force', 'overwrite an existing target file (vsphere: replace the disks of an existing powered-off VM)')
    .option('--sync', 'fsync the restored file before exiting (block devices are always synced)')
    .option('--check-ids', 're-hash every chunk to its id while restoring (slower; verify --read-data does this)')
    .option('--format <format>', 'raw (sparse), qcow2, vmdk (streamOptimized) or vhdx', 'raw')
    .option(
      '--to <url>',
      'vsphere://HOST[:PORT]/NEWNAME: create a VM from the stored configuration and upload its disks',
    )
    .option('--datastore <name>', 'vsphere: datastore for the VM and its disks')
    .option('--datacenter <name>', 'vsphere: datacenter (name or path) when the datastore name exists in several')
    .option(
      '--storage-policy <name>',
      "vsphere: storage policy for every disk of the new VM (default: each disk's stored policy, by name)",
    )
    .option('--power-on', 'vsphere: power the restored VM on')
    .option('--folder <path>', "vsphere: VM folder (default: the original one if it exists, else the datacenter's)")
    .option('--pool <path>', 'vsphere: resource pool (default: the original one if it exists)')
    .option('--host <name>', 'vsphere: host for the new VM')
    .option('--path <dir/file>', 'vsphere with --disk: datastore path to upload that one disk to')
    .option(
      '--network-map <src=dst>',
      'vsphere: put NICs of network SRC on network DST (repeatable; SRC * = every NIC)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--nics <mode>', 'vsphere: connected (default) or disconnected at power-on (a sandbox restore)')
    .option('--keep-mac', 'vsphere: keep the MAC addresses (refused if one is in use), else new ones')
    .option('--keep-uuid', 'vsphere: keep the BIOS and instance UUIDs, else new ones')
    .option('--dry-run', 'vsphere: validate placement, networks and MACs and print the plan; create nothing')
    .option(
      '--quick',
      'vsphere with --force: quick rollback of the existing VM, writing only what changed since the restore point ' +
        '(CBT, else a comparison read) through hot-add or VDDK; with --disk N only that disk',
    )
    .option(
      '--proxy-vm <name>',
      "vsphere --quick: the VM Coffer runs in (default: found by this machine's SMBIOS UUID)",
    )
    .option(
      '--transport <mode>',
      'vsphere --quick: hotadd (default: the disks attached to the proxy VM) or nbd (VMware VDDK, --vddk-libdir)',
    )
    .option('--vddk-libdir <dir>', 'vsphere --quick --transport nbd: VMware VDDK directory (nbdkit vddk, read-write)')
    .action(async (ref: string, o: RestoreOpts) => {
      if (o.to !== undefined) return restoreToVsphere(kit, ref, o);
      if (o.target === undefined)
        throw new CofferError(
          'USAGE',
          "required option '--target <path>' not specified (or --to vsphere://HOST/NEWNAME)",
        );
      await restoreToTarget(kit, ref, o, o.disk, o.target);
    });
}

async function restoreToTarget(
  kit: CommandKit,
  ref: string,
  o: RestoreOpts,
  diskArg: string | undefined,
  target: string,
): Promise<void> {
  const { deps } = kit;
  // a disk restore is large by its nature: the codec workers load while the key is derived
  const repo = await kit.openRepo(o, kit.logger(o), 'start');
  const pointId = await resolvePointRef(repo, ref);
  const disk = diskArg === undefined ? await onlyDisk(repo, pointId) : parseInteger(diskArg, '--disk');
  const toStdout = target === '-';
  const raw = o.format === 'raw';
  if (!raw) {
    if (!['qcow2', 'vmdk', 'vhdx'].includes(o.format))
      throw new CofferError('USAGE', `--format must be raw, qcow2, vmdk or vhdx, not ${JSON.stringify(o.format)}`);
    if (toStdout) throw new CofferError('USAGE', `--format ${o.format} needs a file target, not stdout`);
  } else if (toStdout && o.json)
    throw new CofferError('USAGE', '--json cannot be combined with --target - (stdout carries the disk)');
  const progress = kit.progress(o, `${raw ? 'restore' : 'export'} ${pointId.slice(0, 8)}`);
  const result = await restoreDiskImage(repo, kit.useCase, {
    pointId,
    disk,
    target: toStdout
      ? { kind: 'stream', stream: deps.stdout }
      : { kind: 'path', path: target, force: Boolean(o.force) },
    format: o.format as 'raw' | 'qcow2' | 'vmdk' | 'vhdx',
    sync: Boolean(o.sync),
    checkIds: Boolean(o.checkIds),
    onEvent: (p) => progress.update(p.done, p.total),
  });
  progress.done();
  if (o.json) kit.writeJson(result);
  else if (!raw) {
    const r = result as ExportResult;
    kit.write(
      `exported disk ${r.disk} of ${r.id} (${formatBytes(r.sizeBytes)}) as ${r.format} to ${r.target} ` +
        `in ${formatDuration(r.durationMs)}\n`,
    );
  } else if (!toStdout) {
    const r = result as RestoreResult;
    kit.write(
      `restored disk ${r.disk} of ${r.id} (${formatBytes(r.sizeBytes)}) to ${r.target} ` +
        `in ${formatDuration(r.durationMs)}\n`,
    );
  }
}

/** the index of the one disk of a restore point; with several, --disk is needed (USAGE naming them) */
async function onlyDisk(repo: Repository, pointId: string): Promise<number> {
  const m = await repo.loadManifest(pointId);
  if (m.disks.length === 1) return m.disks[0]!.index;
  throw new CofferError(
    'USAGE',
    `required option '--disk <n>' not specified: restore point ${pointId.slice(0, 8)} has ${m.disks.length} disks ` +
      `(${m.disks.map((d) => d.index).join(', ')})`,
  );
}
