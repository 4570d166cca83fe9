import type { BlockSource } from '../sources/index.js';
import { CofferError, type Logger, type Op } from '../shared/index.js';
import { HttpDatastoreTransport, NbdDiskTransport, type DiskTransport } from './disk-transport.js';
import type { TlsPolicy } from './https-client.js';
import { loadInventory, selectVms } from './inventory.js';
import { HotAddTransport } from './transports/hotadd-transport.js';
import { openVmBackup } from './vm-backup.js';
import type { StoredVmConfig } from './vm-config.js';
import { connectVsphere, parseVsphereUrl } from './vsphere-url.js';

export interface VsphereBackupOptions extends Op {
  tls: TlsPolicy;
  env: Record<string, string | undefined>;
  logger?: Logger | undefined;
  /** default true */
  quiesce?: boolean;
  /** 'http' (default): datastore file access; 'nbd': an NBD export per disk (nbdUrl template); 'hotadd': attach to the proxy VM. */
  transport?: 'http' | 'nbd' | 'hotadd';
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
    cbtEnabledNow: boolean;
    orphanedSnapshotsRemoved: string[];
    skippedDisks: { key: number; fileName: string; reason: string }[];
    transport: string;
    logins: number;
    cbtQueries: number[];
  };
  /** Removes the snapshot and logs out; never throws. */
  close(): Promise<{ snapshotRemoved: boolean }>;
}

/** Opens vsphere://[user:pass@]HOST[:PORT]/VM for backup (DESIGN.md §vSphere). */
export async function openVsphereBackup(spec: string, opts: VsphereBackupOptions): Promise<VsphereVmBackup> {
  const url = parseVsphereUrl(spec);
  if (!url.vm) throw new CofferError('USAGE', `${url.display}: name the VM to back up (vsphere://HOST[:PORT]/VM)`);
  if (opts.transport === 'nbd' && !opts.nbdUrl) throw new CofferError('USAGE', '--transport nbd needs --nbd-url nbd://HOST:PORT/{index}');
  const client = await connectVsphere(url, { tls: opts.tls, env: opts.env, logger: opts.logger, signal: opts.signal });
  try {
    const inv = await loadInventory(client, opts);
    const [vm] = selectVms(inv.vms, url.vm, true);
    let transport: DiskTransport;
    if (opts.transport === 'hotadd') {
      const hotadd = new HotAddTransport({
        client,
        inventory: inv,
        proxyVm: opts.proxyVm,
        productUuidPath: opts.env['COFFER_PRODUCT_UUID_PATH'],
        byIdDir: opts.env['COFFER_DISK_BY_ID_DIR'],
        appearTimeoutMs: opts.env['COFFER_HOTADD_TIMEOUT_MS'] ? Number(opts.env['COFFER_HOTADD_TIMEOUT_MS']) : undefined,
        logger: opts.logger,
      });
      // prerequisites before any snapshot exists: nothing to clean up when the proxy cannot work
      await hotadd.check(vm!, vm!.config?.disks ?? [], opts);
      transport = hotadd;
    } else if (opts.transport === 'nbd') transport = new NbdDiskTransport(opts.nbdUrl!, opts.logger);
    else transport = new HttpDatastoreTransport({ http: client.http, cookie: () => client.sessionCookie, logger: opts.logger });
    const display = `vsphere://${url.host.includes(':') ? `[${url.host}]` : url.host}:${url.port}`;
    const s = await openVmBackup(client, inv, vm!, { quiesce: opts.quiesce ?? true, transport, display, logger: opts.logger, signal: opts.signal });
    let closed: Promise<{ snapshotRemoved: boolean }> | undefined;
    return {
      vmName: vm!.name,
      vmId: vm!.ref.value,
      disks: s.disks,
      vmConfig: s.config,
      consistency: s.consistency,
      report: () => ({
        vm: vm!.name,
        moref: vm!.ref.value,
        snapshot: s.snapshotName,
        quiesced: s.consistency.quiesced,
        cbtEnabledNow: s.cbtEnabledNow,
        orphanedSnapshotsRemoved: s.orphansRemoved,
        skippedDisks: s.skippedDisks,
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
