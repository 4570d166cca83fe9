import type { Command } from 'commander';
import { PassThrough } from 'node:stream';
import { backup, restoreDisk } from '../engine/index.js';
import { CofferError, formatBytes, type Logger } from '../shared/index.js';
import { connectVsphere, fetchThumbprint, formatFingerprint, isVsphereUrl, loadInventory, openVsphereRestore, parseStoredConfig, parseVsphereUrl, selectVms, uploadToDatastore, type TlsPolicy, type VmInfo } from '../vsphere/index.js';
import { stderrLogger } from './context.js';
import type { CommandModule } from './modules.js';
import { parseInteger, printBackupResult, type CommandKit, type CommonOpts } from './program.js';
import { ProgressReporter } from './progress.js';

/** The vSphere options of `backup`. */
export interface VsphereCliOpts {
  thumbprint?: string;
  insecureTls?: boolean;
  quiesce?: boolean;
  transport?: string;
  nbdUrl?: string;
  proxyVm?: string;
  vddkLibdir?: string;
}

/**
 * `coffer backup vsphere://HOST/VM`: one restore point with every disk of the VM in device order, read from a
 * snapshot that is removed afterwards whatever happens (DESIGN.md §vSphere).
 */
export async function backupVsphere(kit: CommandKit, sources: string[], o: CommonOpts & VsphereCliOpts & { vm?: string; tag?: string[]; verifyCbt?: boolean }, logger: Logger): Promise<void> {
  const { deps, write } = kit;
  if (sources.length !== 1) throw new CofferError('USAGE', 'a vsphere:// source backs up a whole VM: give it alone (one VM per backup command)');
  const tls = tlsPolicy(o);
  const repo = await kit.openRepo(o, logger, true);
  const vmb = await deps.openVsphere(sources[0]!, {
    tls,
    env: deps.env,
    logger,
    signal: deps.signal,
    quiesce: o.quiesce !== false,
    transport: (o.transport ?? 'auto') as 'auto' | 'http' | 'nbd' | 'hotadd',
    proxyVm: o.proxyVm,
    vddkLibdir: o.vddkLibdir,
    nbdUrl: o.nbdUrl,
  });
  let snapshotRemoved = false;
  let result;
  try {
    const vmName = o.vm ?? vmb.vmName;
    const total = vmb.disks.reduce((a, s) => a + s.sizeBytes, 0);
    const done = vmb.disks.map(() => 0);
    const progress = new ProgressReporter(deps.stderr as never, `backup ${vmName}`, kit.progressOn(o));
    result = await kit.withPool(repo, (pool) =>
      backup(repo, pool, {
        vm: vmName,
        vmId: vmb.vmId,
        sources: vmb.disks,
        tags: o.tag ?? [],
        verifyCbt: Boolean(o.verifyCbt),
        consistency: vmb.consistency,
        vmConfig: vmb.vmConfig as unknown as Record<string, unknown>,
        signal: deps.signal,
        onWarning: (m) => logger.warn(m),
        onProgress: (p) => {
          done[p.disk] = p.bytesDone;
          progress.update(done.reduce((a, b) => a + b, 0), total, `stored ${formatBytes(p.bytesStored)}`);
        },
      }),
    );
    progress.done();
  } finally {
    ({ snapshotRemoved } = await vmb.close());
  }
  const vsphere = { ...vmb.report(), snapshotRemoved };
  if (o.json) write(JSON.stringify({ ...result, vsphere }) + '\n');
  else {
    printBackupResult(write, result);
    write(`  vSphere: VM ${vsphere.vm} (${vsphere.moref}), snapshot ${vsphere.snapshot} ${vsphere.quiesced ? 'quiesced' : 'crash-consistent'}, ${snapshotRemoved ? 'removed' : 'NOT REMOVED'}${vsphere.cbtEnabledNow ? '; CBT was enabled now (this backup is full)' : ''}\n`);
  }
}

/** --insecure-tls / --thumbprint, shared by every command that talks to vCenter. */
export function addTlsOptions(c: Command): Command {
  return c
    .option('--thumbprint <sha256>', "pin the vCenter certificate by its SHA-256 fingerprint (a self-signed vCenter; see `coffer vsphere thumbprint`)")
    .option('--insecure-tls', 'do not verify the vCenter certificate at all (lab use only)');
}

export function tlsPolicy(o: { thumbprint?: string; insecureTls?: boolean }): TlsPolicy {
  if (o.thumbprint && o.insecureTls) throw new CofferError('USAGE', '--thumbprint and --insecure-tls exclude each other');
  return { thumbprint: o.thumbprint, insecure: Boolean(o.insecureTls) };
}

function vmSummary(v: VmInfo) {
  const cfg = v.config;
  return {
    name: v.name,
    moref: v.ref.value,
    path: v.path,
    datacenter: v.datacenter?.name ?? null,
    powerState: v.powerState ?? null,
    toolsRunningStatus: v.toolsRunningStatus ?? null,
    guestId: cfg?.guestId ?? null,
    numCPU: cfg?.numCPU ?? null,
    memoryMB: cfg?.memoryMB ?? null,
    changeTrackingEnabled: cfg?.changeTrackingEnabled ?? false,
    template: cfg?.template ?? false,
    snapshots: v.snapshots.map((s) => ({ name: s.name, moref: s.ref.value })),
    disks: (cfg?.disks ?? []).map((d) => {
      const ctl = cfg?.controllers.find((c) => c.key === d.controllerKey);
      return {
        key: d.key,
        label: d.label,
        capacityBytes: d.capacityBytes,
        fileName: d.fileName,
        thinProvisioned: d.thinProvisioned ?? null,
        controller: ctl ? { key: ctl.key, type: ctl.type, busNumber: ctl.busNumber } : null,
        unitNumber: d.unitNumber ?? null,
        changeId: d.changeId ?? null,
      };
    }),
    nics: (cfg?.nics ?? []).map((n) => ({ type: n.type, macAddress: n.macAddress ?? null, network: n.network ?? null })),
  };
}

export const vsphereCommands: CommandModule = (program, kit) => {
  const { deps, write } = kit;
  const vs = program.command('vsphere').description('VMware vSphere: inventory and certificate thumbprints (backup/restore take vsphere:// URLs)');

  addTlsOptions(
    vs
      .command('inventory')
      .description('list datacenters, clusters, hosts, datastores, networks and VMs with their disks')
      .argument('<url>', 'vsphere://HOST[:PORT][/VM] (a VM name, moref, inventory path or glob narrows the VM list)')
      .option('--json', 'print one JSON document')
      .option('-q, --quiet', 'only errors and warnings on stderr'),
  ).action(async (spec: string, o: { json?: boolean; quiet?: boolean; thumbprint?: string; insecureTls?: boolean }) => {
    const url = parseVsphereUrl(spec);
    const logger = stderrLogger(deps, o.quiet);
    const client = await connectVsphere(url, { tls: tlsPolicy(o), env: deps.env, logger, signal: deps.signal });
    try {
      const inv = await loadInventory(client, { signal: deps.signal });
      const vms = url.vm ? selectVms(inv.vms, url.vm, false) : inv.vms;
      const ent = (e: { name: string; ref: { value: string }; path: string }) => ({ name: e.name, moref: e.ref.value, path: e.path });
      const doc = {
        vcenter: { url: url.display, product: client.serviceContent.fullName, apiVersion: client.serviceContent.apiVersion, apiType: client.serviceContent.apiType },
        datacenters: inv.datacenters.map(ent),
        clusters: inv.clusters.map(ent),
        hosts: inv.hosts.map(ent),
        datastores: inv.datastores.map((d) => ({ ...ent(d), datacenter: d.datacenter ?? null, type: d.type ?? null, capacityBytes: d.capacityBytes ?? null, freeBytes: d.freeBytes ?? null })),
        folders: inv.folders.map(ent),
        resourcePools: inv.resourcePools.map(ent),
        networks: inv.networks.map(ent),
        vms: vms.map(vmSummary),
      };
      if (o.json) {
        write(JSON.stringify(doc) + '\n');
        return;
      }
      write(`${doc.vcenter.product} (API ${doc.vcenter.apiVersion}) at ${doc.vcenter.url}\n`);
      const section = (title: string, rows: { path: string; moref: string }[]) => {
        write(`${title}:\n`);
        for (const r of rows) write(`  ${r.path}  (${r.moref})\n`);
      };
      section('datacenters', doc.datacenters);
      section('clusters', doc.clusters);
      section('hosts', doc.hosts);
      write('datastores:\n');
      for (const d of doc.datastores) write(`  ${d.path}  (${d.moref}) ${d.capacityBytes !== null ? `${formatBytes(d.freeBytes ?? 0)} free of ${formatBytes(d.capacityBytes)}` : ''}\n`);
      section('resource pools', doc.resourcePools);
      section('networks', doc.networks);
      write('virtual machines:\n');
      for (const v of doc.vms) {
        write(`  ${v.path}  (${v.moref}) ${v.powerState ?? '?'}, ${v.numCPU ?? '?'} CPU, ${v.memoryMB ?? '?'} MB, tools ${v.toolsRunningStatus ?? '?'}, CBT ${v.changeTrackingEnabled ? 'on' : 'off'}${v.template ? ', template' : ''}\n`);
        for (const d of v.disks) {
          write(`    disk ${d.key} ${formatBytes(d.capacityBytes)} ${d.fileName} (${d.thinProvisioned ? 'thin' : 'thick'}, ${d.controller ? `${d.controller.type} ${d.controller.busNumber}:${d.unitNumber}` : 'no controller'})\n`);
        }
        for (const s of v.snapshots) write(`    snapshot ${s.name} (${s.moref})\n`);
      }
    } finally {
      await client.close();
    }
  });

  vs.command('thumbprint')
    .description("print the SHA-256 fingerprint of the vCenter's TLS certificate (check it, then pass it as --thumbprint)")
    .argument('<url>', 'vsphere://HOST[:PORT]')
    .option('--json', 'print one JSON document')
    .action(async (spec: string, o: { json?: boolean }) => {
      const url = parseVsphereUrl(spec);
      const fp = formatFingerprint(await fetchThumbprint(url.host, url.port, { signal: deps.signal }));
      if (o.json) write(JSON.stringify({ host: url.host, port: url.port, sha256: fp }) + '\n');
      else write(`${fp}\n`);
    });
};

/** The vSphere options of `restore`. */
export interface VsphereRestoreCliOpts {
  to?: string;
  datastore?: string;
  powerOn?: boolean;
  folder?: string;
  pool?: string;
  host?: string;
  path?: string;
  thumbprint?: string;
  insecureTls?: boolean;
}

/**
 * `coffer restore ID --to vsphere://HOST/NEWNAME --datastore DS`: a new VM from the stored configuration, each disk
 * streamed from the restore engine into a PUT on the datastore; a VM we created is deleted again if anything fails.
 * With --disk N --path DIR/FILE: that one disk uploaded to a datastore file.
 */
export async function restoreVsphere(kit: CommandKit, ref: string, o: CommonOpts & VsphereRestoreCliOpts & { disk?: string; target?: string; force?: boolean; checkIds?: boolean; format: string }): Promise<void> {
  const { deps, write } = kit;
  const to = o.to!;
  if (!isVsphereUrl(to)) throw new CofferError('USAGE', `--to must be a vsphere:// URL, not ${JSON.stringify(to)} (use --target for files)`);
  if (o.target !== undefined) throw new CofferError('USAGE', '--to and --target exclude each other');
  if (o.format !== 'raw') throw new CofferError('USAGE', '--format applies to file targets only');
  if (!o.datastore) throw new CofferError('USAGE', "--to vsphere:// needs --datastore NAME");
  const tls = tlsPolicy(o);
  const logger = stderrLogger(deps, o.quiet);
  const repo = await kit.openRepo(o, logger, true);
  const pointId = await repo.resolvePoint(ref);
  const manifest = await repo.loadManifest(pointId);
  const started = Date.now();
  const progress = new ProgressReporter(deps.stderr as never, `restore ${pointId.slice(0, 8)}`, kit.progressOn(o));
  const base = { tls, env: deps.env, logger, signal: deps.signal, datastore: o.datastore, folder: o.folder, pool: o.pool, host: o.host, force: Boolean(o.force) };

  if (o.disk !== undefined) {
    const disk = parseInteger(o.disk, '--disk');
    const d = manifest.disks[disk];
    if (!d) throw new CofferError('NOT_FOUND', `restore point ${pointId} has no disk ${disk} (it has ${manifest.disks.length})`);
    if (!o.path) throw new CofferError('USAGE', '--disk N --to vsphere://HOST needs --path DIR/FILE (the datastore file to write)');
    const up = await kit.withPool(repo, (pool) =>
      uploadToDatastore(to, {
        ...base,
        path: o.path!,
        sizeBytes: d.sizeBytes,
        body: () => new PassThrough({ highWaterMark: 4 << 20 }),
        run: async (body) => {
          try {
            await restoreDisk(repo, pool, { pointId, disk, target: { kind: 'stream', stream: body as PassThrough }, signal: deps.signal, checkIds: Boolean(o.checkIds), onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal) });
            (body as PassThrough).end();
          } catch (e) {
            body.destroy(e as Error);
            throw e;
          }
        },
      }),
    );
    progress.done();
    const result = { id: pointId, vm: manifest.vm.name, disk, sizeBytes: d.sizeBytes, target: up.fileName, durationMs: Date.now() - started };
    if (o.json) write(JSON.stringify(result) + '\n');
    else write(`restored disk ${disk} of ${pointId} (${formatBytes(d.sizeBytes)}) to ${up.fileName}\n`);
    return;
  }

  if (o.path) throw new CofferError('USAGE', '--path needs --disk N (one disk to a datastore file)');
  const cfg = parseStoredConfig(manifest.vmConfig, pointId);
  if (cfg.disks.length !== manifest.disks.length) throw new CofferError('CORRUPT', `restore point ${pointId}: the stored configuration lists ${cfg.disks.length} disks, the manifest ${manifest.disks.length}`);
  for (const [i, d] of cfg.disks.entries()) {
    if (d.capacityBytes !== manifest.disks[i]!.sizeBytes) throw new CofferError('CORRUPT', `restore point ${pointId}: disk ${i} is ${manifest.disks[i]!.sizeBytes} bytes, its stored configuration says ${d.capacityBytes}`);
  }
  const target = await deps.openVsphereRestore(to, cfg, base);
  let ok = false;
  const uploaded: string[] = [];
  try {
    const total = manifest.disks.reduce((a, d) => a + d.sizeBytes, 0);
    let before = 0;
    await kit.withPool(repo, async (pool) => {
      for (const [i, d] of manifest.disks.entries()) {
        const body = new PassThrough({ highWaterMark: 4 << 20 });
        const put = target.upload(i, body, { signal: deps.signal });
        put.catch((e: Error) => body.destroy(e));
        try {
          await restoreDisk(repo, pool, { pointId, disk: i, target: { kind: 'stream', stream: body }, signal: deps.signal, checkIds: Boolean(o.checkIds), onProgress: (p) => progress.update(before + p.bytesDone, total) });
          body.end();
        } catch (e) {
          body.destroy(e as Error);
          await put.catch(() => undefined);
          throw e;
        }
        uploaded.push(await put);
        before += d.sizeBytes;
      }
    });
    await target.finish({ powerOn: Boolean(o.powerOn) });
    ok = true;
  } finally {
    if (!ok) await target.abort();
    await target.close();
  }
  progress.done();
  const result = {
    id: pointId,
    vm: target.vmName,
    moref: target.vmId,
    created: target.created,
    poweredOn: Boolean(o.powerOn),
    datastore: o.datastore,
    disks: target.disks.map((d, i) => ({ index: i, fileName: d.fileName, sizeBytes: d.capacityBytes })),
    warnings: target.warnings,
    durationMs: Date.now() - started,
  };
  if (o.json) write(JSON.stringify(result) + '\n');
  else {
    write(`restored ${pointId} (${manifest.vm.name}) as VM ${result.vm} (${result.moref}${result.created ? ', new' : ', disks replaced'}${result.poweredOn ? ', powered on' : ''})\n`);
    for (const d of result.disks) write(`  disk ${d.index}: ${formatBytes(d.sizeBytes)} -> ${d.fileName}\n`);
  }
}
