import { PassThrough } from 'node:stream';
import { planVmRestore, resolvePointRef, restoreDiskImage, restoreVm, rollbackVm } from '../../engine/index.js';
import type { Repository } from '../../repository/index.js';
import { CofferError, formatBytes } from '../../shared/index.js';
import {
  isVsphereUrl,
  uploadToDatastore,
  vsphereQuickRollback,
  vsphereRestoreTargetOpener,
  type VsphereRestoreOptions,
  type VsphereRestorePlan,
} from '../../vsphere/index.js';
import { parseInteger, tlsPolicy, type CommandKit, type CommonOpts, type ProgressReporter } from '../kit/index.js';

/** The vSphere options of `restore`. */
export interface VsphereRestoreOpts {
  to?: string;
  datastore?: string;
  datacenter?: string;
  storagePolicy?: string;
  powerOn?: boolean;
  folder?: string;
  pool?: string;
  host?: string;
  path?: string;
  thumbprint?: string;
  insecureTls?: boolean;
  networkMap?: string[];
  nics?: string;
  keepMac?: boolean;
  keepUuid?: boolean;
  dryRun?: boolean;
  quick?: boolean;
  proxyVm?: string;
  transport?: string;
  vddkLibdir?: string;
}

/** `--network-map SRC=DST` (repeatable) as a map; USAGE for a malformed or repeated SRC. */
export function parseNetworkMap(list: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of list ?? []) {
    const i = m.indexOf('=');
    const src = m.slice(0, i).trim();
    const dst = m.slice(i + 1).trim();
    if (i <= 0 || !src || !dst)
      throw new CofferError('USAGE', `--network-map ${JSON.stringify(m)}: expected SRC=DST (network names)`);
    if (src in out) throw new CofferError('USAGE', `--network-map: ${JSON.stringify(src)} is mapped twice`);
    out[src] = dst;
  }
  return out;
}

type Opts = CommonOpts &
  VsphereRestoreOpts & { disk?: string; target?: string; force?: boolean; checkIds?: boolean; format: string };

/**
 * `coffer restore ID --to vsphere://HOST/NEWNAME --datastore DS`: the engine's restoreVm with the vCenter target of
 * src/vsphere (a new VM from the stored configuration; deleted again if anything fails). With --disk N --path
 * DIR/FILE: that one disk uploaded to a datastore file.
 */
export async function restoreToVsphere(kit: CommandKit, ref: string, o: Opts): Promise<void> {
  const { deps } = kit;
  const to = o.to!;
  if (!isVsphereUrl(to))
    throw new CofferError('USAGE', `--to must be a vsphere:// URL, not ${JSON.stringify(to)} (use --target for files)`);
  if (o.target !== undefined) throw new CofferError('USAGE', '--to and --target exclude each other');
  if (o.format !== 'raw') throw new CofferError('USAGE', '--format applies to file targets only');
  if (!o.datastore) throw new CofferError('USAGE', '--to vsphere:// needs --datastore NAME');
  const tls = tlsPolicy(o);
  const logger = kit.logger(o);
  const repo = await kit.openRepo(o, logger, true);
  const pointId = await resolvePointRef(repo, ref);
  const manifest = await repo.loadManifest(pointId);
  const progress = kit.progress(o, `restore ${pointId.slice(0, 8)}`);
  const base: VsphereRestoreOptions = {
    tls,
    env: deps.env,
    logger,
    signal: deps.signal,
    datastore: o.datastore,
    datacenter: o.datacenter,
    storagePolicy: o.storagePolicy,
    folder: o.folder,
    pool: o.pool,
    host: o.host,
    force: Boolean(o.force),
    networkMap: parseNetworkMap(o.networkMap),
    nicsDisconnected: o.nics === 'disconnected',
    keepMac: Boolean(o.keepMac),
    keepUuid: Boolean(o.keepUuid),
  };
  if (o.nics !== undefined && o.nics !== 'connected' && o.nics !== 'disconnected')
    throw new CofferError('USAGE', `--nics must be connected or disconnected, not ${JSON.stringify(o.nics)}`);
  if (o.storagePolicy !== undefined && (o.quick || o.disk !== undefined))
    throw new CofferError('USAGE', '--storage-policy applies to a restore as a new VM (not --quick or --disk)');
  if (o.quick) return quickRollbackCommand(kit, repo, pointId, o, base, progress);
  if (o.proxyVm !== undefined) throw new CofferError('USAGE', '--proxy-vm applies to --quick only');
  if (o.transport !== undefined || o.vddkLibdir !== undefined)
    throw new CofferError(
      'USAGE',
      '--transport and --vddk-libdir apply to --quick only (writes into the VM in place)',
      {
        hint: 'a new VM is imported over NFC; an in-place restore without --quick writes through /folder',
      },
    );
  if (o.disk !== undefined)
    return uploadOneDisk(kit, repo, { pointId, vm: manifest.vm.name, disks: manifest.disks }, o, base, progress);
  if (o.path) throw new CofferError('USAGE', '--path needs --disk N (one disk to a datastore file)');
  if (o.dryRun) {
    // everything validated against vCenter (placement, networks, MACs, an existing VM), nothing created
    const r = await planVmRestore(repo, kit.useCase, {
      pointId,
      target: vsphereRestoreTargetOpener((cfg, opts) => deps.openVsphereRestore(to, cfg, opts), {
        ...base,
        dryRun: true,
      }),
    });
    const plan = { id: pointId, dryRun: true, ...(r.plan as unknown as VsphereRestorePlan) };
    if (o.json) return kit.writeJson(plan);
    kit.write(`dry run: ${pointId} (${manifest.vm.name}) would be restored as ${plan.mode} ${plan.vm}\n`);
    kit.write(`  datacenter ${plan.datacenter}, datastore ${plan.datastore}\n`);
    if (plan.folder) kit.write(`  folder ${plan.folder}, pool ${plan.pool}${plan.host ? `, host ${plan.host}` : ''}\n`);
    for (const [i, d] of (plan.disks ?? []).entries())
      kit.write(
        `  disk ${i}: ${formatBytes(d.capacityBytes)}${d.fileName ? ` -> ${d.fileName}` : ''}` +
          `${d.storagePolicy ? `, storage policy ${d.storagePolicy}` : ''}\n`,
      );
    if (plan.tags?.length) kit.write(`  tags: ${plan.tags.join(', ')}\n`);
    if (plan.customAttributes?.length) kit.write(`  custom attributes: ${plan.customAttributes.join(', ')}\n`);
    for (const n of plan.nics ?? [])
      kit.write(
        `  NIC ${n.type} on ${n.network} (${n.backing}), ${n.macAddress ? `MAC ${n.macAddress}` : 'new MAC'}` +
          `${n.connected ? '' : ', disconnected'}\n`,
      );
    for (const w of plan.warnings ?? []) kit.write(`  warning: ${w}\n`);
    return;
  }
  const r = await restoreVm(repo, kit.useCase, {
    pointId,
    target: vsphereRestoreTargetOpener((cfg, opts) => deps.openVsphereRestore(to, cfg, opts), base),
    powerOn: Boolean(o.powerOn),
    checkIds: Boolean(o.checkIds),
    onEvent: (e) => e.type === 'progress' && progress.update(e.done, e.total),
  });
  progress.done();
  const result = {
    id: r.id,
    vm: r.vm,
    moref: r.moref,
    created: r.created,
    poweredOn: r.poweredOn,
    datastore: o.datastore,
    disks: r.disks,
    warnings: r.warnings,
    transport: r.transport,
    bytesSent: r.bytesSent,
    durationMs: r.durationMs,
  };
  if (o.json) return kit.writeJson(result);
  kit.write(
    `restored ${pointId} (${r.sourceVm}) as VM ${result.vm} ` +
      `(${result.moref}${result.created ? ', new' : ', disks replaced'}${result.poweredOn ? ', powered on' : ''})\n`,
  );
  for (const d of result.disks) kit.write(`  disk ${d.index}: ${formatBytes(d.sizeBytes)} -> ${d.fileName}\n`);
  if (r.bytesSent !== undefined)
    kit.write(`  ${formatBytes(r.bytesSent)} sent (${r.transport ?? 'unknown'} transport)\n`);
}

/**
 * `restore ID --to vsphere://HOST/VM --force --quick`: the engine's rollbackVm (restore-point devices, random access)
 * with src/vsphere's quickRollback, which writes only what differs from the restore point into the VM's own disks.
 */
async function quickRollbackCommand(
  kit: CommandKit,
  repo: Repository,
  pointId: string,
  o: Opts,
  base: VsphereRestoreOptions,
  progress: ProgressReporter,
): Promise<void> {
  if (!o.force)
    throw new CofferError('USAGE', '--quick rolls the existing VM back over itself: it needs --force', {
      hint: 'the VM must be powered off and have no snapshots',
    });
  if (o.path !== undefined || o.dryRun) throw new CofferError('USAGE', '--quick excludes --path and --dry-run');
  // --disk N: only that disk of the VM is rolled back (a single-disk restore in place, through hot-add or VDDK)
  const only = o.disk === undefined ? undefined : [parseInteger(o.disk, '--disk')];
  if (o.transport !== undefined && o.transport !== 'hotadd' && o.transport !== 'nbd')
    throw new CofferError(
      'USAGE',
      `--transport ${JSON.stringify(o.transport)}: quick rollback writes through hotadd or nbd`,
    );
  const transport = (o.transport ?? (o.vddkLibdir ? 'nbd' : 'hotadd')) as 'hotadd' | 'nbd';
  if (transport === 'nbd' && o.proxyVm !== undefined)
    throw new CofferError('USAGE', '--proxy-vm is for --transport hotadd; nbd writes through VDDK');
  const r = await rollbackVm(repo, kit.useCase, {
    pointId,
    rollback: vsphereQuickRollback(o.to!, {
      ...base,
      transport,
      proxyVm: o.proxyVm,
      vddkLibdir: o.vddkLibdir,
      disks: only,
      powerOn: Boolean(o.powerOn),
    }),
    onEvent: (e) => progress.update(e.done, e.total),
  });
  progress.done();
  if (o.json) return kit.writeJson(r);
  const how = { cbt: 'changed areas from CBT', compare: 'comparison read', mixed: 'CBT and comparison reads' }[r.mode];
  kit.write(
    `rolled ${r.vm} (${r.moref}) back to ${pointId} (${how}): ${formatBytes(r.bytesWritten)} written, ` +
      `${formatBytes(r.bytesCompared)} compared${r.poweredOn ? ', powered on' : ''}\n`,
  );
  for (const w of r.warnings) kit.write(`  warning: ${w}\n`);
}

async function uploadOneDisk(
  kit: CommandKit,
  repo: Repository,
  point: { pointId: string; vm: string; disks: readonly { sizeBytes: number }[] },
  o: Opts,
  base: VsphereRestoreOptions,
  progress: ProgressReporter,
): Promise<void> {
  const started = Date.now();
  const { pointId } = point;
  const disk = parseInteger(o.disk!, '--disk');
  const d = point.disks[disk];
  if (!d)
    throw new CofferError('NOT_FOUND', `restore point ${pointId} has no disk ${disk} (it has ${point.disks.length})`);
  if (!o.path)
    throw new CofferError('USAGE', '--disk N --to vsphere://HOST needs --path DIR/FILE (the datastore file to write)');
  const up = await uploadToDatastore(o.to!, {
    ...base,
    path: o.path,
    sizeBytes: d.sizeBytes,
    body: () => new PassThrough({ highWaterMark: 4 << 20 }),
    run: async (body) => {
      try {
        await restoreDiskImage(repo, kit.useCase, {
          pointId,
          disk,
          target: { kind: 'stream', stream: body as PassThrough },
          checkIds: Boolean(o.checkIds),
          onEvent: (p) => progress.update(p.done, p.total),
        });
        (body as PassThrough).end();
      } catch (e) {
        body.destroy(e as Error);
        throw e;
      }
    },
  });
  progress.done();
  const result = {
    id: pointId,
    vm: point.vm,
    disk,
    sizeBytes: d.sizeBytes,
    target: up.fileName,
    durationMs: Date.now() - started,
  };
  if (o.json) kit.writeJson(result);
  else kit.write(`restored disk ${disk} of ${pointId} (${formatBytes(d.sizeBytes)}) to ${up.fileName}\n`);
}
