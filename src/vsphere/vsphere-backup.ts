import type { BlockSource } from '../sources/index.js';
import { fetchVmMetadata } from './vm-metadata.js';
import { CofferError, type Logger, type Op } from '../shared/index.js';
import { HttpDatastoreTransport, NbdDiskTransport, type DiskTransport } from './disk-transport.js';
import type { TlsPolicy } from './https-client.js';
import { loadInventory, selectVms } from './inventory.js';
import { HotAddTransport, hotAddEnv } from './transports/hotadd-transport.js';
import { VddkTransport, vddkConnection } from './transports/vddk-transport.js';
import type { VimClient } from './vim-client.js';
import type { Inventory, VmInfo } from './inventory.js';
import { fetchHomeFiles } from './restore-home-files.js';
import { openVmBackup, type QuiesceMode, type QuiesceRequest } from './vm-backup.js';
import type { StoredVmConfig } from './vm-config.js';
import { connectVsphere, parseVsphereUrl, type VsphereUrl } from './vsphere-url.js';

export interface VsphereBackupOptions extends Op {
  tls: TlsPolicy;
  env: Record<string, string | undefined>;
  logger?: Logger | undefined;
  /** default true; false = quiesceMode 'none' */
  quiesce?: boolean;
  /** --quiesce auto|app|fs|none (default auto, or none when quiesce is false) */
  quiesceMode?: QuiesceRequest | undefined;
  /** --quiesce-required: fail (VSPHERE_QUIESCE) rather than fall back to a less consistent snapshot */
  quiesceRequired?: boolean | undefined;
  /**
   * 'http' (default): datastore file access; 'nbd': an NBD export per disk (nbdUrl template); 'hotadd': attach to the
   * proxy VM.
   */
  transport?: 'auto' | 'http' | 'nbd' | 'hotadd';
  /** VMware VDDK's directory: `nbd` without nbdUrl starts one `nbdkit vddk` per disk (and `auto` may pick it). */
  vddkLibdir?: string | undefined;
  nbdUrl?: string | undefined;
  /** hotadd: the VM Coffer runs in (default: found by this machine's SMBIOS UUID). */
  proxyVm?: string | undefined;
}

/** One VM opened for backup: its snapshot's disks as BlockSources, its configuration, and the cleanup. */
export interface VsphereVmBackup {
  vmName: string;
  vmId: string;
  disks: BlockSource[];
  vmConfig: StoredVmConfig;
  consistency: { snapshot: boolean; quiesced: boolean };
  /** What happened in vCenter, for the backup result. */
  report(): {
    vm: string;
    moref: string;
    snapshot: string;
    quiesced: boolean;
    /** what the snapshot obtained (app, fs, crash), what was asked, and the fallbacks taken */
    quiesceMode: QuiesceMode;
    quiesceRequested: QuiesceRequest;
    quiesceFallbacks: string[];
    cbtEnabledNow: boolean;
    /** ConsolidateVMDisks_Task ran after the snapshot removal (vCenter reported consolidationNeeded) */
    consolidated: boolean;
    orphanedSnapshotsRemoved: string[];
    skippedDisks: { key: number; fileName: string; reason: string }[];
    /** the home-folder files kept in the restore point (vmConfig.homeFiles): `vmx`, `nvram` */
    homeFiles: string[];
    homeFileWarnings: string[];
    transport: string;
    logins: number;
    cbtQueries: number[];
  };
  /** Before the commit: the snapshot is still there, unchanged (VSPHERE_CAPTURE_LOST); returns warnings. */
  verify(op?: Op): Promise<string[]>;
  /** Removes the snapshot and logs out; never throws. */
  close(): Promise<{ snapshotRemoved: boolean }>;
}

/** Opens vsphere://[user:pass@]HOST[:PORT]/VM for backup (DESIGN.md §vSphere). */
export async function openVsphereBackup(spec: string, opts: VsphereBackupOptions): Promise<VsphereVmBackup> {
  const url = parseVsphereUrl(spec);
  if (!url.vm) throw new CofferError('USAGE', `${url.display}: name the VM to back up (vsphere://HOST[:PORT]/VM)`);
  if (opts.transport === 'nbd' && !opts.nbdUrl && !opts.vddkLibdir)
    throw new CofferError(
      'USAGE',
      '--transport nbd needs --vddk-libdir DIR (VMware VDDK, one nbdkit vddk per disk) or --nbd-url ' +
        'nbd://HOST:PORT/{index}',
    );
  const client = await connectVsphere(url, { tls: opts.tls, env: opts.env, logger: opts.logger, signal: opts.signal });
  try {
    const inv = await loadInventory(client, opts);
    const [vm] = selectVms(inv.vms, url.vm, true);
    const transport = await chooseTransport(client, inv, vm!, url, opts);
    const display = `vsphere://${url.host.includes(':') ? `[${url.host}]` : url.host}:${url.port}`;
    const s = await openVmBackup(client, inv, vm!, {
      quiesce: opts.quiesce ?? true,
      quiesceMode: opts.quiesceMode,
      quiesceRequired: opts.quiesceRequired,
      transport,
      display,
      logger: opts.logger,
      signal: opts.signal,
    });
    // the VM's .vmx and .nvram (FORMAT.md §6.1.1): small files /folder serves on vSAN too; best effort
    let home: Awaited<ReturnType<typeof fetchHomeFiles>> = { homeFiles: undefined, warnings: [] };
    if (vm!.datacenter) {
      const t = new HttpDatastoreTransport({
        http: client.http,
        cookie: () => client.sessionCookie,
        logger: opts.logger,
      });
      try {
        home = await fetchHomeFiles(client, t, vm!.ref, vm!.datacenter.name, {
          signal: opts.signal,
          logger: opts.logger,
        });
      } catch (e) {
        await s.close();
        throw e;
      }
      if (home.homeFiles) s.config.homeFiles = home.homeFiles;
    }
    // storage policies, tags, custom attributes (FORMAT.md §6.1.2): best effort, warnings in the report
    const meta = await fetchVmMetadata(
      client,
      vm!.ref,
      s.config.disks.map((d) => d.key),
      { signal: opts.signal, logger: opts.logger },
    ).catch(async (e: unknown) => {
      await s.close();
      throw e;
    });
    if (meta.storagePolicies) for (const [i, p] of meta.storagePolicies.entries()) s.config.disks[i]!.storagePolicy = p;
    if (meta.tags) s.config.tags = meta.tags;
    if (meta.customAttributes) s.config.customAttributes = meta.customAttributes;
    let closed: Promise<{ snapshotRemoved: boolean }> | undefined;
    return {
      vmName: vm!.name,
      vmId: vm!.ref.value,
      disks: s.disks,
      vmConfig: s.config,
      consistency: s.consistency,
      verify: (op?: Op) => s.verify(op),
      report: () => ({
        vm: vm!.name,
        moref: vm!.ref.value,
        snapshot: s.snapshotName,
        quiesced: s.consistency.quiesced,
        quiesceMode: s.quiesce.mode,
        quiesceRequested: s.quiesce.requested,
        quiesceFallbacks: s.quiesce.fallbacks,
        cbtEnabledNow: s.cbtEnabledNow,
        consolidated: s.consolidated(),
        orphanedSnapshotsRemoved: s.orphansRemoved,
        skippedDisks: s.skippedDisks,
        homeFiles: home.homeFiles?.files.map((f) => f.kind) ?? [],
        homeFileWarnings: home.warnings,
        storagePolicies: s.config.disks.map((d) => d.storagePolicy?.name ?? null),
        tags: s.config.tags ?? null,
        customAttributes: s.config.customAttributes ?? null,
        metadataWarnings: meta.warnings,
        transport: transport.name,
        logins: client.logins,
        cbtQueries: s.disks.map((d) => d.cbt.queries),
      }),
      close() {
        closed ??= (async () => {
          try {
            return await s.close();
          } finally {
            await client.close();
          }
        })();
        return closed;
      },
    };
  } catch (e) {
    await client.close();
    throw e;
  }
}

/**
 * The transport of one backup (DESIGN.md §vSphere, transports). `auto`: hot-add when Coffer runs in a proxy VM that
 * passes the checks, else VDDK when --vddk-libdir is set, else http on VMFS/NFS; a VM with vSAN disks and none of
 * these is refused before any snapshot, naming the alternatives.
 */
async function chooseTransport(
  client: VimClient,
  inv: Inventory,
  vm: VmInfo,
  url: VsphereUrl,
  opts: VsphereBackupOptions,
): Promise<DiskTransport> {
  const kind = opts.transport ?? 'http';
  const hotadd = () =>
    new HotAddTransport({
      client,
      inventory: inv,
      proxyVm: opts.proxyVm,
      ...hotAddEnv(opts.env),
      logger: opts.logger,
    });
  const vddk = () =>
    new VddkTransport({
      libdir: opts.vddkLibdir!,
      ...vddkConnection(url, opts.env),
      logger: opts.logger,
    });
  const http = () =>
    new HttpDatastoreTransport({ http: client.http, cookie: () => client.sessionCookie, logger: opts.logger });
  const disks = vm.config?.disks ?? [];
  if (kind === 'hotadd') {
    const t = hotadd();
    await t.check(vm, disks, opts); // before any snapshot exists: nothing to clean up when the proxy cannot work
    return t;
  }
  if (kind === 'nbd') return opts.nbdUrl ? new NbdDiskTransport(opts.nbdUrl, opts.logger) : vddk();
  if (kind === 'http') return http();
  try {
    const t = hotadd();
    await t.check(vm, disks, opts);
    opts.logger?.info(`transport auto: hot-add through the proxy VM ${(await t.findProxy()).name}`);
    return t;
  } catch (e) {
    if (!(e instanceof CofferError) || e.code !== 'VSPHERE_TRANSPORT') throw e;
    opts.logger?.info(`transport auto: not hot-add (${e.message})`);
  }
  if (opts.vddkLibdir) return vddk();
  const vsan = disks.filter(
    (d) =>
      d.datastore && inv.datastores.find((x) => x.ref.value === d.datastore!.value)?.type?.toLowerCase() === 'vsan',
  );
  if (vsan.length > 0) {
    throw new CofferError(
      'VSPHERE_TRANSPORT',
      `VM ${vm.name} has disks on vSAN (${vsan.map((d) => d.fileName).join(', ')}): the http transport cannot read ` +
        `vSAN objects, and neither hot-add nor VDDK is available`,
      {
        hint:
          'run Coffer on a Linux proxy VM in the cluster (--transport hotadd, optionally --proxy-vm NAME) or ' +
          'install VMware VDDK and nbdkit (--transport nbd --vddk-libdir DIR)',
      },
    );
  }
  return http();
}
