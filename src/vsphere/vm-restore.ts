import { CofferError, silentLogger, type Logger, type Op } from '../shared/index.js';
import type { Inventory, InventoryEntity } from './inventory.js';
import { retrieveOne } from './property-collector.js';
import { runTask } from './task.js';
import type { VimClient } from './vim-client.js';
import type { StoredVmConfig } from './vm-config.js';
import { MoRef, textOf, type SoapObject } from './xml.js';

export interface VmRestoreOptions extends Op {
  name: string;
  datastore: string;
  /** the datacenter (name or path) whose datastore, folder, pool, host and networks are used; needed when the
   *  datastore's name exists in several datacenters */
  datacenter?: string | undefined;
  /** Inventory paths or names; default: the ones of the backed-up VM when they exist here, else the datacenter's. */
  folder?: string | undefined;
  pool?: string | undefined;
  host?: string | undefined;
  /** Replace the disks of an existing, powered-off VM of that name (same disk count and sizes). */
  force?: boolean;
  /** SRC=DST by network name; key `*`: every NIC */
  networkMap?: Record<string, string> | undefined;
  /** NICs not connected at power-on (a sandbox restore) */
  nicsDisconnected?: boolean | undefined;
  /** keep the stored MAC addresses (refused when one is in use) */
  keepMac?: boolean | undefined;
  /** keep the BIOS and instance UUIDs */
  keepUuid?: boolean | undefined;
  logger?: Logger | undefined;
}

/** Where each restore-point disk goes: disk i -> the datastore file of the target VM's disk i. */
export interface VmRestoreTarget {
  vm: MoRef;
  created: boolean;
  datacenter: string;
  disks: { fileName: string; capacityBytes: number }[];
  warnings: string[];
}

const DEFAULT_CONTROLLERS = new Set([
  'VirtualIDEController',
  'VirtualPCIController',
  'VirtualPS2Controller',
  'VirtualSIOController',
]);

/**
 * The entity `spec` names (an inventory path, or a name inside the datacenter); undefined when nothing matches. A path
 * outside the target datacenter is refused (NOT_FOUND): a VM cannot be placed across datacenters.
 */
function findEntity(
  list: InventoryEntity[],
  spec: string | undefined | null,
  dcPath: string,
  what = 'entity',
): InventoryEntity | undefined {
  if (!spec) return undefined;
  const byPath = list.find((e) => e.path === spec || e.path === `/${spec}`);
  if (byPath && !byPath.path.startsWith(dcPath + '/'))
    throw new CofferError('NOT_FOUND', `${what} ${byPath.path} is not in the target datacenter ${dcPath}`, {
      hint: 'choose one in the target datacenter (--datacenter, or the datastore chooses it)',
    });
  if (byPath) return byPath;
  const named = list.filter((e) => e.path.startsWith(dcPath + '/') && e.name === spec);
  if (named.length > 1)
    throw new CofferError('AMBIGUOUS', `${named.length} ${what}s are named ${spec} in ${dcPath}: give the path`, {
      details: { paths: named.map((e) => e.path) },
    });
  return named[0];
}

/**
 * An existing VM of the restore's name: with `force`, a powered-off VM without snapshots whose disks match is taken
 * over (in-place restore); without `force` TARGET_EXISTS. Undefined when there is none (a new VM is made).
 */
export function findInPlaceTarget(
  inv: Inventory,
  cfg: StoredVmConfig,
  opts: VmRestoreOptions,
): VmRestoreTarget | undefined {
  const logger = opts.logger ?? silentLogger;
  const { dc } = targetDatastore(inv, opts.datastore, opts.datacenter);
  const existing = inv.vms.filter((v) => v.name === opts.name && v.datacenter?.name === dc.name);
  if (existing.length === 0) return undefined;
  if (!opts.force)
    throw new CofferError('TARGET_EXISTS', `a VM named ${opts.name} exists in ${dc.name}`, {
      hint: 'choose another name, or pass --force to replace the disks of that (powered-off) VM',
    });
  if (existing.length > 1) throw new CofferError('AMBIGUOUS', `${existing.length} VMs are named ${opts.name}`);
  const vm = existing[0]!;
  if (vm.powerState !== 'poweredOff')
    throw new CofferError(
      'TARGET_UNWRITABLE',
      `VM ${opts.name} is ${vm.powerState ?? 'not powered off'}; power it off before restoring over its disks`,
    );
  const disks = vm.config?.disks ?? [];
  if (disks.length !== cfg.disks.length || disks.some((d, i) => d.capacityBytes !== cfg.disks[i]!.capacityBytes)) {
    throw new CofferError(
      'TARGET_UNWRITABLE',
      `VM ${opts.name} has disks of ${disks.map((d) => d.capacityBytes).join(', ') || 'no'} bytes; the restore ` +
        `point has ${cfg.disks.map((d) => d.capacityBytes).join(', ')}`,
      { hint: 'restore as a new VM instead' },
    );
  }
  if (vm.snapshots.length > 0)
    throw new CofferError(
      'TARGET_UNWRITABLE',
      `VM ${opts.name} has snapshots; remove them before restoring over its disks`,
    );
  logger.warn(`restoring in place over the disks of the existing VM ${opts.name} (${vm.ref.value})`);
  return {
    vm: vm.ref,
    created: false,
    datacenter: dc.name,
    disks: disks.map((d) => ({ fileName: d.fileName, capacityBytes: d.capacityBytes })),
    warnings: [],
  };
}

/** The datastore named `name` (in datacenter `dcSpec` when given) and its datacenter; NOT_FOUND / AMBIGUOUS. */
export function targetDatastore(inv: Inventory, name: string, dcSpec?: string) {
  let dcs = inv.datacenters;
  if (dcSpec) {
    dcs = inv.datacenters.filter((d) => d.name === dcSpec || d.path === dcSpec || d.path === `/${dcSpec}`);
    if (dcs.length === 0)
      throw new CofferError(
        'NOT_FOUND',
        `no datacenter ${JSON.stringify(dcSpec)} in vCenter ` +
          `(have ${inv.datacenters.map((d) => d.name).join(', ') || 'none'})`,
      );
    if (dcs.length > 1) throw new CofferError('AMBIGUOUS', `datacenter name ${dcSpec} names several: give its path`);
  }
  const dcNames = new Set(dcs.map((d) => d.name));
  const ds = inv.datastores.filter((d) => d.name === name && d.datacenter !== undefined && dcNames.has(d.datacenter));
  if (ds.length === 0)
    throw new CofferError(
      'NOT_FOUND',
      `no datastore ${JSON.stringify(name)} in ${dcSpec ? `datacenter ${dcSpec}` : 'vCenter'} ` +
        `(have ${
          inv.datastores
            .filter((d) => d.datacenter !== undefined && dcNames.has(d.datacenter))
            .map((d) => d.name)
            .join(', ') || 'none'
        })`,
    );
  if (ds.length > 1)
    throw new CofferError('AMBIGUOUS', `datastore name ${name} exists in several datacenters`, {
      hint: `choose one with --datacenter (${ds.map((d) => d.datacenter).join(', ')})`,
    });
  const datastore = ds[0]!;
  const dc = dcs.find((d) => d.name === datastore.datacenter);
  if (!dc) throw new CofferError('VSPHERE_FAULT', `cannot find the datacenter of datastore ${name}`);
  return { datastore, dc };
}

/** Everything a new VM needs, validated before anything is created (placement, controllers, networks, MACs). */
export interface NewVmPlan {
  datacenter: string;
  folder: InventoryEntity;
  pool: InventoryEntity;
  host: InventoryEntity | undefined;
  /** VirtualMachineConfigSpec for CreateVM_Task or a VirtualMachineImportSpec */
  spec: SoapObject;
  nics: { type: string; network: string; backing: string; macAddress: string | null; connected: boolean }[];
  warnings: string[];
}

export async function planNewVm(
  client: VimClient,
  inv: Inventory,
  cfg: StoredVmConfig,
  opts: VmRestoreOptions,
): Promise<NewVmPlan> {
  const { dc } = targetDatastore(inv, opts.datastore, opts.datacenter);
  const warnings: string[] = [];
  const inDc = (e: InventoryEntity) => e.path.startsWith(dc.path + '/');
  // placement, all validated before anything is created: what the user named must exist in the target datacenter
  // (NOT_FOUND otherwise, never a silent fallback); what the restore point names is used when it exists here
  const stored = (list: InventoryEntity[], spec: string | null | undefined) => {
    try {
      return findEntity(list, spec, dc.path);
    } catch {
      return undefined; // the stored path names another datacenter (a restore into another site)
    }
  };
  const folder = opts.folder
    ? findEntity(inv.folders, opts.folder, dc.path, 'VM folder')
    : (stored(inv.folders, cfg.folderPath) ?? inv.folders.find((f) => f.path === `${dc.path}/vm`));
  if (!folder)
    throw new CofferError(
      'NOT_FOUND',
      `no VM folder ${JSON.stringify(opts.folder ?? `${dc.path}/vm`)} in datacenter ${dc.name}`,
      { hint: "create it first, or leave --folder out (the datacenter's VM folder)" },
    );
  if (folder.path !== `${dc.path}/vm` && !folder.path.startsWith(`${dc.path}/vm/`))
    throw new CofferError('NOT_FOUND', `${folder.path} is not a VM folder (it is not under ${dc.path}/vm)`);
  let pool = opts.pool ? findEntity(inv.resourcePools, opts.pool, dc.path, 'resource pool') : undefined;
  if (!pool && opts.pool)
    throw new CofferError('NOT_FOUND', `no resource pool ${JSON.stringify(opts.pool)} in datacenter ${dc.name}`);
  const host = opts.host ? findEntity(inv.hosts, opts.host, dc.path, 'host') : undefined;
  if (opts.host && !host)
    throw new CofferError('NOT_FOUND', `no host ${JSON.stringify(opts.host)} in datacenter ${dc.name}`);
  // without --pool: the stored pool when the host (if any) belongs to it, else the host's own compute resource's
  const computeOf = (p: InventoryEntity) => p.path.replace(/\/Resources(\/.*)?$/, '');
  const fits = (p: InventoryEntity) => !host || host.path.startsWith(computeOf(p) + '/');
  if (!pool) {
    const st = stored(inv.resourcePools, cfg.resourcePoolPath);
    // else the root pool (shortest path) of the host's cluster or host, or of the datacenter's first one
    pool =
      st && fits(st)
        ? st
        : inv.resourcePools.filter((p) => inDc(p) && fits(p)).sort((a, b) => a.path.length - b.path.length)[0];
  }
  if (!pool) throw new CofferError('NOT_FOUND', `no resource pool in datacenter ${dc.name}`);
  if (!fits(pool))
    throw new CofferError(
      'NOT_FOUND',
      `host ${host!.path} is not in the cluster or host of resource pool ${pool.path}`,
      { hint: 'choose a host of that cluster, or the pool of that host' },
    );

  // devices: controllers that are not there by default, disks, NICs
  const deviceChange: SoapObject[] = [];
  const ctlKey = new Map<number, number>();
  let tmpKey = -100;
  for (const c of cfg.controllers) {
    if (c.type === 'VirtualIDEController') ctlKey.set(c.key, 200 + c.busNumber);
    if (DEFAULT_CONTROLLERS.has(c.type)) continue;
    const key = tmpKey--;
    ctlKey.set(c.key, key);
    const dev: SoapObject = { _type: c.type, key, busNumber: c.busNumber };
    if (/SCSI|LsiLogic|BusLogic/i.test(c.type)) dev['sharedBus'] = c.sharedBus ?? 'noSharing';
    deviceChange.push({ operation: 'add', device: dev });
  }
  for (const [i, d] of cfg.disks.entries()) {
    const controllerKey = d.controllerKey !== null ? ctlKey.get(d.controllerKey) : undefined;
    if (controllerKey === undefined)
      throw new CofferError(
        'TARGET_UNWRITABLE',
        `disk ${i} (${d.label || d.key}) sits on a controller Coffer cannot re-create`,
      );
    deviceChange.push({
      operation: 'add',
      fileOperation: 'create',
      device: {
        _type: 'VirtualDisk',
        key: tmpKey--,
        backing: {
          _type: 'VirtualDiskFlatVer2BackingInfo',
          fileName: `[${opts.datastore}]`,
          diskMode: d.diskMode ?? 'persistent',
          thinProvisioned: d.thinProvisioned ?? true,
          eagerlyScrub: d.eagerlyScrub ?? undefined,
        },
        controllerKey,
        unitNumber: d.unitNumber ?? i,
        capacityInKB: Math.ceil(d.capacityBytes / 1024),
        capacityInBytes: d.capacityBytes,
      },
    });
  }
  const nics = await planNics(client, inv, cfg, opts, inDc);
  for (const n of nics) deviceChange.push({ operation: 'add', device: { ...n.device, key: tmpKey-- } });
  const spec: SoapObject = {
    _type: 'VirtualMachineConfigSpec',
    name: opts.name,
    version: cfg.hardwareVersion ?? undefined,
    uuid: opts.keepUuid ? (cfg.uuid ?? undefined) : undefined,
    instanceUuid: opts.keepUuid ? (cfg.instanceUuid ?? undefined) : undefined,
    guestId: cfg.guestId ?? 'otherGuest',
    annotation: cfg.annotation ?? undefined,
    files: { _type: 'VirtualMachineFileInfo', vmPathName: `[${opts.datastore}]` },
    numCPUs: cfg.numCPU ?? 1,
    numCoresPerSocket: cfg.numCoresPerSocket ?? undefined,
    memoryMB: cfg.memoryMB ?? 1024,
    deviceChange,
    changeTrackingEnabled: true,
    firmware: cfg.firmware ?? undefined,
    bootOptions:
      cfg.secureBoot !== null && cfg.secureBoot !== undefined
        ? { _type: 'VirtualMachineBootOptions', efiSecureBootEnabled: cfg.secureBoot }
        : undefined,
    extraConfig: (cfg.extraConfig ?? []).map((e) => ({
      _type: 'OptionValue',
      key: e.key,
      value: { _type: 'xsd:string', _text: e.value },
    })),
  };
  return {
    datacenter: dc.name,
    folder,
    pool,
    host,
    spec,
    nics: nics.map((n) => n.summary),
    warnings,
  };
}

/**
 * The NICs of the new VM: each stored NIC's network (through `networkMap`, SRC=DST by name; `*` maps every NIC) must
 * exist in the target datacenter (VSPHERE_NETWORK otherwise, before anything is created): a standard port group, a
 * distributed port group (also an NSX-backed one: its port connection names the switch UUID and port group key) or
 * an opaque network (an NSX-T segment on a host-based N-VDS). `keepMac` keeps the stored MAC (refused when another
 * VM uses it), else vCenter generates one; `nicsDisconnected` creates them not connected at power-on.
 */
async function planNics(
  client: VimClient,
  inv: Inventory,
  cfg: StoredVmConfig,
  opts: VmRestoreOptions,
  inDc: (e: InventoryEntity) => boolean,
) {
  const map = opts.networkMap ?? {};
  const macsInUse = new Map<string, string>();
  for (const v of inv.vms)
    for (const n of v.config?.nics ?? []) if (n.macAddress) macsInUse.set(n.macAddress.toLowerCase(), v.name);
  const out = [];
  for (const [i, n] of cfg.nics.entries()) {
    const src = n.network;
    const name = (src !== null ? map[src] : undefined) ?? map['*'] ?? src;
    if (name === null)
      throw new CofferError('VSPHERE_NETWORK', `NIC ${i} (${n.type}): the restore point does not name its network`, {
        hint: "map it: --network-map '*=NETWORK'",
        details: { nic: i },
      });
    const nets = inv.networks.filter((x) => x.name === name && inDc(x));
    if (nets.length === 0)
      throw new CofferError('VSPHERE_NETWORK', `NIC ${i} (${n.type}): no network ${JSON.stringify(name)} here`, {
        hint:
          `have ${[...new Set(inv.networks.filter(inDc).map((x) => x.name))].join(', ') || 'none'}; ` +
          `use --network-map ${JSON.stringify(`${src ?? '*'}=NAME`)}`,
        details: { nic: i, network: name },
      });
    if (nets.length > 1 && new Set(nets.map((x) => x.ref.type)).size > 1)
      throw new CofferError('AMBIGUOUS', `network name ${name} names ${nets.length} networks in the datacenter`);
    const net = nets[0]!;
    let backing: SoapObject;
    if (net.ref.type === 'DistributedVirtualPortgroup') {
      const pg = await retrieveOne(client, net.ref, ['key', 'config.distributedVirtualSwitch'], opts);
      const dvs = pg.props.get('config.distributedVirtualSwitch');
      if (!dvs) throw new CofferError('VSPHERE_FAULT', `port group ${name} names no distributed switch`);
      const sw = await retrieveOne(client, MoRef.from(dvs), ['uuid'], opts);
      backing = {
        _type: 'VirtualEthernetCardDistributedVirtualPortBackingInfo',
        port: {
          _type: 'DistributedVirtualSwitchPortConnection',
          switchUuid: sw.props.get('uuid')?.text.trim() ?? '',
          portgroupKey: pg.props.get('key')?.text.trim() ?? net.ref.value,
        },
      };
    } else if (net.ref.type === 'OpaqueNetwork') {
      const o = await retrieveOne(client, net.ref, ['summary'], opts);
      const sum = o.props.get('summary');
      backing = {
        _type: 'VirtualEthernetCardOpaqueNetworkBackingInfo',
        opaqueNetworkId: (sum && textOf(sum, 'opaqueNetworkId')?.trim()) || '',
        opaqueNetworkType: (sum && textOf(sum, 'opaqueNetworkType')?.trim()) || 'nsx.LogicalSwitch',
      };
    } else backing = { _type: 'VirtualEthernetCardNetworkBackingInfo', deviceName: net.name, network: net.ref };
    let mac: string | null = null;
    if (opts.keepMac && n.macAddress) {
      const user = macsInUse.get(n.macAddress.toLowerCase());
      if (user)
        throw new CofferError(
          'VSPHERE_NETWORK',
          `--keep-mac: MAC ${n.macAddress} of NIC ${i} is in use by VM ${user}`,
          {
            hint: 'remove or re-address that VM first, or restore without --keep-mac (new MAC addresses)',
            details: { nic: i, mac: n.macAddress, vm: user },
          },
        );
      mac = n.macAddress;
    }
    const connected = !opts.nicsDisconnected;
    out.push({
      device: {
        _type: n.type,
        backing,
        connectable: {
          _type: 'VirtualDeviceConnectInfo',
          startConnected: connected,
          allowGuestControl: true,
          connected: false,
        },
        addressType: mac ? 'manual' : 'generated',
        macAddress: mac ?? undefined,
      } as SoapObject,
      summary: { type: n.type, network: name, backing: net.ref.type, macAddress: mac, connected },
    });
  }
  return out;
}

/** Deletes a VM and its files (a restore that failed after creating it). */
export async function destroyVm(client: VimClient, vm: MoRef): Promise<void> {
  await runTask(client, 'Destroy_Task', vm, {}, `deleting VM ${vm.value}`, {});
}

export async function powerOnVm(client: VimClient, vm: MoRef, op: Op = {}): Promise<void> {
  await runTask(client, 'PowerOnVM_Task', vm, {}, `powering on ${vm.value}`, op);
}
