import { CofferError, silentLogger, type Logger, type Op } from '../shared/index.js';
import type { Inventory, InventoryEntity } from './inventory.js';
import { retrieveOne } from './property-collector.js';
import { runTask } from './task.js';
import type { VimClient } from './vim-client.js';
import type { StoredVmConfig } from './vm-config.js';
import { parseConfigInfo } from './vm-model.js';
import { MoRef, type SoapObject } from './xml.js';

export interface VmRestoreOptions extends Op {
  name: string;
  datastore: string;
  /** Inventory paths or names; default: the ones of the backed-up VM when they exist here, else the datacenter's. */
  folder?: string | undefined;
  pool?: string | undefined;
  host?: string | undefined;
  /** Replace the disks of an existing, powered-off VM of that name (same disk count and sizes). */
  force?: boolean;
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

function findEntity(
  list: InventoryEntity[],
  spec: string | undefined | null,
  dcPath: string,
): InventoryEntity | undefined {
  if (!spec) return undefined;
  return (
    list.find((e) => e.path === spec || e.path === `/${spec}`) ??
    list.filter((e) => e.path.startsWith(dcPath + '/')).find((e) => e.name === spec)
  );
}

/**
 * Creates the VM a restore writes into (CreateVM_Task from the stored configuration, new disks thin or thick as they
 * were, on `datastore`), or with `force` takes an existing powered-off VM of that name whose disks match. Returns
 * the target disk files in restore-point order. NICs on distributed port groups are not re-created (a warning).
 */
export async function prepareVmRestore(
  client: VimClient,
  inv: Inventory,
  cfg: StoredVmConfig,
  opts: VmRestoreOptions,
): Promise<VmRestoreTarget> {
  const logger = opts.logger ?? silentLogger;
  const task = { signal: opts.signal };
  const ds = inv.datastores.filter((d) => d.name === opts.datastore);
  if (ds.length === 0)
    throw new CofferError(
      'NOT_FOUND',
      `no datastore ${JSON.stringify(opts.datastore)} in vCenter ` +
        `(have ${inv.datastores.map((d) => d.name).join(', ') || 'none'})`,
    );
  if (ds.length > 1)
    throw new CofferError('AMBIGUOUS', `datastore name ${opts.datastore} exists in several datacenters`);
  const datastore = ds[0]!;
  const dc = inv.datacenters.find((d) => d.name === datastore.datacenter);
  if (!dc) throw new CofferError('VSPHERE_FAULT', `cannot find the datacenter of datastore ${opts.datastore}`);

  const existing = inv.vms.filter((v) => v.name === opts.name && v.datacenter?.name === dc.name);
  if (existing.length > 0) {
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

  const warnings: string[] = [];
  const inDc = (e: InventoryEntity) => e.path.startsWith(dc.path + '/');
  const folder =
    findEntity(inv.folders, opts.folder, dc.path) ??
    (opts.folder
      ? undefined
      : (findEntity(inv.folders, cfg.folderPath, dc.path) ?? inv.folders.find((f) => f.path === `${dc.path}/vm`)));
  if (!folder)
    throw new CofferError('NOT_FOUND', `no VM folder ${JSON.stringify(opts.folder ?? `${dc.path}/vm`)} in vCenter`);
  let pool = findEntity(inv.resourcePools, opts.pool, dc.path);
  if (!pool && opts.pool)
    throw new CofferError('NOT_FOUND', `no resource pool ${JSON.stringify(opts.pool)} in vCenter`);
  pool ??= findEntity(inv.resourcePools, cfg.resourcePoolPath, dc.path) ?? inv.resourcePools.find(inDc);
  if (!pool) throw new CofferError('NOT_FOUND', `no resource pool in datacenter ${dc.name}`);
  const host = opts.host ? inv.hosts.find((h) => h.name === opts.host || h.path === opts.host) : undefined;
  if (opts.host && !host) throw new CofferError('NOT_FOUND', `no host ${JSON.stringify(opts.host)} in vCenter`);

  // devices: controllers that are not there by default, disks, NICs on standard networks
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
  for (const n of cfg.nics) {
    const net = inv.networks.find((x) => x.name === n.network && inDc(x));
    if (net?.ref.type !== 'Network') {
      warnings.push(
        `NIC ${n.type} on ${n.network ?? 'an unknown network'} was not re-created ` +
          `(${net ? 'distributed port groups are not supported yet' : 'no such network here'}); add it in vCenter`,
      );
      continue;
    }
    deviceChange.push({
      operation: 'add',
      device: {
        _type: n.type,
        key: tmpKey--,
        backing: { _type: 'VirtualEthernetCardNetworkBackingInfo', deviceName: net.name, network: net.ref },
        addressType: 'generated',
      },
    });
  }
  const spec: SoapObject = {
    _type: 'VirtualMachineConfigSpec',
    name: opts.name,
    version: cfg.hardwareVersion ?? undefined,
    guestId: cfg.guestId ?? 'otherGuest',
    annotation: cfg.annotation ?? undefined,
    files: { _type: 'VirtualMachineFileInfo', vmPathName: `[${opts.datastore}]` },
    numCPUs: cfg.numCPU ?? 1,
    numCoresPerSocket: cfg.numCoresPerSocket ?? undefined,
    memoryMB: cfg.memoryMB ?? 1024,
    deviceChange,
    changeTrackingEnabled: true,
    firmware: cfg.firmware ?? undefined,
  };
  const result = await runTask(
    client,
    'CreateVM_Task',
    folder.ref,
    { config: spec, pool: pool.ref, host: host?.ref },
    `creating VM ${opts.name}`,
    task,
  );
  if (!result?.attrs['type'])
    throw new CofferError('VSPHERE_FAULT', 'CreateVM_Task returned no VM', { details: { protocol: true } });
  const vm = MoRef.from(result);
  try {
    const cfgNode = (await retrieveOne(client, vm, ['config'], opts)).props.get('config');
    if (!cfgNode) throw new CofferError('VSPHERE_FAULT', `vCenter sent no configuration for the new VM ${opts.name}`);
    const hw = parseConfigInfo(cfgNode);
    if (hw.disks.length !== cfg.disks.length)
      throw new CofferError(
        'VSPHERE_FAULT',
        `the new VM ${opts.name} has ${hw.disks.length} disks, not ${cfg.disks.length}`,
      );
    for (const w of warnings) logger.warn(w);
    return {
      vm,
      created: true,
      datacenter: dc.name,
      disks: hw.disks.map((d) => ({ fileName: d.fileName, capacityBytes: d.capacityBytes })),
      warnings,
    };
  } catch (e) {
    await destroyVm(client, vm).catch(() => undefined);
    throw e;
  }
}

/** Deletes a VM and its files (a restore that failed after creating it). */
export async function destroyVm(client: VimClient, vm: MoRef): Promise<void> {
  await runTask(client, 'Destroy_Task', vm, {}, `deleting VM ${vm.value}`, {});
}

export async function powerOnVm(client: VimClient, vm: MoRef, op: Op = {}): Promise<void> {
  await runTask(client, 'PowerOnVM_Task', vm, {}, `powering on ${vm.value}`, op);
}
