import { CofferError } from '../shared/index.js';
import type { Inventory, VmInfo } from './inventory.js';
import { parseHomeFiles, type StoredHomeFiles } from './restore-home-files.js';
import { parseDatastorePath, type VmHardware } from './vm-model.js';

/**
 * The VM configuration stored with each restore point as the manifest's `vmConfig` (FORMAT.md §6.1, kind
 * "vsphere-vm", version 1). Enough to re-create the VM: hardware, disks in restore-point order, controllers, NICs.
 */
export interface StoredVmConfig {
  kind: 'vsphere-vm';
  version: 1;
  name: string;
  moref: string;
  uuid: string | null;
  instanceUuid: string | null;
  /** Inventory locations at backup time (for a restore to the same place). */
  datacenter: string | null;
  folderPath: string | null;
  resourcePoolPath: string | null;
  hostName: string | null;
  guestId: string | null;
  guestFullName: string | null;
  hardwareVersion: string | null;
  firmware: string | null;
  numCPU: number | null;
  numCoresPerSocket: number | null;
  memoryMB: number | null;
  annotation: string | null;
  powerState: string | null;
  vmPathName: string | null;
  snapshotName: string;
  quiesced: boolean;
  /** What the snapshot obtained: app, fs or crash (absent in restore points of older Coffer versions). */
  quiesceMode?: 'app' | 'fs' | 'crash';
  /** What --quiesce asked for: auto, app, fs or none (absent in older restore points). */
  quiesceRequested?: 'auto' | 'app' | 'fs' | 'none';
  controllers: { key: number; type: string; busNumber: number; sharedBus: string | null }[];
  /** In restore-point disk order (disk i of the restore point is disks[i]). */
  disks: {
    key: number;
    label: string;
    capacityBytes: number;
    fileName: string;
    datastore: string;
    thinProvisioned: boolean | null;
    eagerlyScrub: boolean | null;
    diskMode: string | null;
    controllerKey: number | null;
    unitNumber: number | null;
    changeId: string | null;
    /** the disk's storage policy (FORMAT.md §6.1.2): null none, absent in older restore points or when unreadable */
    storagePolicy?: { id: string; name: string } | null;
  }[];
  nics: { key: number; type: string; macAddress: string | null; addressType: string | null; network: string | null }[];
  /** EFI secure boot (absent in restore points of older Coffer versions) */
  secureBoot?: boolean | null;
  /** extraConfig keys that matter for booting (BOOT_EXTRA_CONFIG), absent in older restore points */
  extraConfig?: { key: string; value: string }[];
  /** a virtual TPM device at backup time (absent in older restore points); restores report it, never re-create it */
  vtpm?: boolean | null;
  /** the VM's home-folder .vmx and .nvram (FORMAT.md §6.1.1), absent in older restore points or when unreadable */
  homeFiles?: StoredHomeFiles | undefined;
  /** tags attached to the VM, by category and name (FORMAT.md §6.1.2); absent in older restore points or unreadable */
  tags?: { category: string; name: string }[];
  /** custom attribute values by field name (FORMAT.md §6.1.2); absent in older restore points or unreadable */
  customAttributes?: { name: string; value: string }[];
}

/** The extraConfig keys a restore carries over: boot and device-visibility settings, never guestinfo.* (secrets). */
export const BOOT_EXTRA_CONFIG = new RegExp(
  '^(disk\\.EnableUUID|efi\\.[\\w.]+|uefi\\.[\\w.]+|bios\\.[\\w.]+|svga\\.present|pciPassthru\\.use64bitMMIO|' +
    'pciPassthru\\.64bitMMIOSizeGB|vmx\\.buildType|hypervisor\\.cpuid\\.v0|vhv\\.enable)$',
);

export function toStoredConfig(
  vm: VmInfo,
  hw: VmHardware,
  inv: Inventory,
  snap: {
    quiesced: boolean;
    snapshotName: string;
    quiesceMode?: StoredVmConfig['quiesceMode'];
    quiesceRequested?: StoredVmConfig['quiesceRequested'];
  },
): StoredVmConfig {
  const pathOf = (
    list: { ref: { value: string; type: string }; path: string }[],
    ref: { value: string; type: string } | undefined,
  ) => (ref ? (list.find((e) => e.ref.value === ref.value && e.ref.type === ref.type)?.path ?? null) : null);
  const networkName = (n: VmHardware['nics'][number]) => {
    if (n.networkRef) {
      const e = inv.networks.find((x) => x.ref.value === n.networkRef!.value);
      if (e) return e.name;
    }
    if (n.network) return inv.networks.find((x) => x.ref.value === n.network)?.name ?? n.network;
    return null;
  };
  return {
    kind: 'vsphere-vm',
    version: 1,
    name: vm.name,
    moref: vm.ref.value,
    uuid: hw.uuid ?? null,
    instanceUuid: hw.instanceUuid ?? null,
    datacenter: vm.datacenter?.name ?? null,
    folderPath: pathOf(inv.folders, vm.folder),
    resourcePoolPath: pathOf(inv.resourcePools, vm.resourcePool),
    hostName: vm.host ? (inv.hosts.find((h) => h.ref.value === vm.host!.value)?.name ?? null) : null,
    guestId: hw.guestId ?? null,
    guestFullName: hw.guestFullName ?? null,
    hardwareVersion: hw.version ?? null,
    firmware: hw.firmware ?? null,
    numCPU: hw.numCPU ?? null,
    numCoresPerSocket: hw.numCoresPerSocket ?? null,
    memoryMB: hw.memoryMB ?? null,
    annotation: hw.annotation ?? null,
    powerState: vm.powerState ?? null,
    vmPathName: hw.vmPathName ?? null,
    snapshotName: snap.snapshotName,
    quiesced: snap.quiesced,
    ...(snap.quiesceMode ? { quiesceMode: snap.quiesceMode } : {}),
    ...(snap.quiesceRequested ? { quiesceRequested: snap.quiesceRequested } : {}),
    controllers: hw.controllers.map((c) => ({
      key: c.key,
      type: c.type,
      busNumber: c.busNumber,
      sharedBus: c.sharedBus ?? null,
    })),
    disks: hw.disks.map((d) => ({
      key: d.key,
      label: d.label,
      capacityBytes: d.capacityBytes,
      fileName: d.fileName,
      datastore: parseDatastorePath(d.fileName).datastore,
      thinProvisioned: d.thinProvisioned ?? null,
      eagerlyScrub: d.eagerlyScrub ?? null,
      diskMode: d.diskMode ?? null,
      controllerKey: d.controllerKey ?? null,
      unitNumber: d.unitNumber ?? null,
      changeId: d.changeId ?? null,
    })),
    nics: hw.nics.map((n) => ({
      key: n.key,
      type: n.type,
      macAddress: n.macAddress ?? null,
      addressType: n.addressType ?? null,
      network: networkName(n),
    })),
    secureBoot: hw.secureBoot ?? null,
    extraConfig: (hw.extraConfig ?? []).filter((e) => BOOT_EXTRA_CONFIG.test(e.key)),
    vtpm: hw.vtpm ?? null,
  };
}

/**
 * Checks a stored configuration read back from a manifest (untrusted JSON): CORRUPT when it does not fit the schema.
 */
export function parseStoredConfig(v: Record<string, unknown> | undefined, pointId: string): StoredVmConfig {
  const fail = (why: string): never => {
    throw new CofferError('CORRUPT', `restore point ${pointId}: the stored VM configuration ${why}`);
  };
  if (!v) {
    throw new CofferError(
      'NOT_FOUND',
      `restore point ${pointId} holds no VM configuration (it was not backed up from vSphere)`,
      {
        hint:
          'restore its disks with --disk N --target FILE, or to a datastore with --disk N --to vsphere://HOST/ ' +
          '--datastore DS --path DIR/FILE.vmdk',
      },
    );
  }
  if (v['kind'] !== 'vsphere-vm') fail(`has kind ${JSON.stringify(v['kind'])}, not "vsphere-vm"`);
  if (v['version'] !== 1) fail(`has version ${JSON.stringify(v['version'])} (this Coffer reads version 1)`);
  const int = (x: unknown, what: string, min = 0) =>
    typeof x === 'number' && Number.isSafeInteger(x) && x >= min ? x : fail(`has an invalid ${what}`);
  const str = (x: unknown, what: string) =>
    typeof x === 'string' && x.length < 65536 ? x : fail(`has an invalid ${what}`);
  const optStr = (x: unknown, what: string) => (x === null || x === undefined ? null : str(x, what));
  const optInt = (x: unknown, what: string, min = 0) => (x === null || x === undefined ? null : int(x, what, min));
  /** an optional enum field (FORMAT.md §6.1: absent in older restore points; an unknown value is CORRUPT) */
  const optEnum = <K extends string, T extends string>(o: Record<string, unknown>, key: K, values: readonly T[]) => {
    const x = o[key];
    if (x === undefined || x === null) return {};
    if (typeof x !== 'string' || !(values as readonly string[]).includes(x)) return fail(`has an invalid ${key}`);
    return { [key]: x as T } as { [P in K]?: T };
  };
  const arr = (x: unknown, what: string) =>
    Array.isArray(x) && x.length <= 1024 ? (x as Record<string, unknown>[]) : fail(`has an invalid ${what} list`);
  const obj = (x: unknown, what: string) =>
    typeof x === 'object' && x !== null && !Array.isArray(x)
      ? (x as Record<string, unknown>)
      : fail(`has an invalid ${what}`);
  return {
    kind: 'vsphere-vm',
    version: 1,
    name: str(v['name'], 'name'),
    moref: str(v['moref'], 'moref'),
    uuid: optStr(v['uuid'], 'uuid'),
    instanceUuid: optStr(v['instanceUuid'], 'instanceUuid'),
    datacenter: optStr(v['datacenter'], 'datacenter'),
    folderPath: optStr(v['folderPath'], 'folderPath'),
    resourcePoolPath: optStr(v['resourcePoolPath'], 'resourcePoolPath'),
    hostName: optStr(v['hostName'], 'hostName'),
    guestId: optStr(v['guestId'], 'guestId'),
    guestFullName: optStr(v['guestFullName'], 'guestFullName'),
    hardwareVersion: optStr(v['hardwareVersion'], 'hardwareVersion'),
    firmware: optStr(v['firmware'], 'firmware'),
    numCPU: optInt(v['numCPU'], 'numCPU', 1),
    numCoresPerSocket: optInt(v['numCoresPerSocket'], 'numCoresPerSocket', 1),
    memoryMB: optInt(v['memoryMB'], 'memoryMB', 1),
    annotation: optStr(v['annotation'], 'annotation'),
    powerState: optStr(v['powerState'], 'powerState'),
    vmPathName: optStr(v['vmPathName'], 'vmPathName'),
    snapshotName: str(v['snapshotName'] ?? '', 'snapshotName'),
    quiesced: v['quiesced'] === true,
    ...optEnum(v, 'quiesceMode', ['app', 'fs', 'crash'] as const),
    ...optEnum(v, 'quiesceRequested', ['auto', 'app', 'fs', 'none'] as const),
    controllers: arr(v['controllers'], 'controllers').map((x) => {
      const c = obj(x, 'controller');
      return {
        key: int(c['key'], 'controller key', -1e9),
        type: str(c['type'], 'controller type'),
        busNumber: int(c['busNumber'], 'bus number'),
        sharedBus: optStr(c['sharedBus'], 'sharedBus'),
      };
    }),
    disks: arr(v['disks'], 'disks').map((x) => {
      const d = obj(x, 'disk');
      return {
        key: int(d['key'], 'disk key', -1e9),
        label: str(d['label'] ?? '', 'disk label'),
        capacityBytes: int(d['capacityBytes'], 'disk capacity'),
        fileName: str(d['fileName'], 'disk file name'),
        datastore: str(d['datastore'], 'disk datastore'),
        thinProvisioned: typeof d['thinProvisioned'] === 'boolean' ? d['thinProvisioned'] : null,
        eagerlyScrub: typeof d['eagerlyScrub'] === 'boolean' ? d['eagerlyScrub'] : null,
        diskMode: optStr(d['diskMode'], 'disk mode'),
        controllerKey: optInt(d['controllerKey'], 'controller key', -1e9),
        unitNumber: optInt(d['unitNumber'], 'unit number'),
        changeId: optStr(d['changeId'], 'changeId'),
        ...(d['storagePolicy'] === undefined
          ? {}
          : {
              storagePolicy:
                d['storagePolicy'] === null
                  ? null
                  : (() => {
                      const p = obj(d['storagePolicy'], 'storage policy');
                      return { id: str(p['id'], 'storage policy id'), name: str(p['name'], 'storage policy name') };
                    })(),
            }),
      };
    }),
    nics: arr(v['nics'], 'nics').map((x) => {
      const n = obj(x, 'nic');
      return {
        key: int(n['key'], 'nic key', -1e9),
        type: str(n['type'], 'nic type'),
        macAddress: optStr(n['macAddress'], 'MAC address'),
        addressType: optStr(n['addressType'], 'address type'),
        network: optStr(n['network'], 'network'),
      };
    }),
    secureBoot: typeof v['secureBoot'] === 'boolean' ? v['secureBoot'] : null,
    extraConfig:
      v['extraConfig'] === undefined || v['extraConfig'] === null
        ? []
        : arr(v['extraConfig'], 'extraConfig').map((x) => {
            const e = obj(x, 'extraConfig entry');
            return { key: str(e['key'], 'extraConfig key'), value: str(e['value'], 'extraConfig value') };
          }),
    vtpm: typeof v['vtpm'] === 'boolean' ? v['vtpm'] : null,
    ...(v['tags'] === undefined || v['tags'] === null
      ? {}
      : {
          tags: arr(v['tags'], 'tags').map((x) => {
            const t = obj(x, 'tag');
            return { category: str(t['category'], 'tag category'), name: str(t['name'], 'tag name') };
          }),
        }),
    ...(v['customAttributes'] === undefined || v['customAttributes'] === null
      ? {}
      : {
          customAttributes: arr(v['customAttributes'], 'customAttributes').map((x) => {
            const a = obj(x, 'custom attribute');
            return { name: str(a['name'], 'custom attribute name'), value: str(a['value'], 'custom attribute value') };
          }),
        }),
    ...(v['homeFiles'] === undefined || v['homeFiles'] === null
      ? {}
      : { homeFiles: parseHomeFiles(v['homeFiles'], (why) => fail(`home files ${why}`)) }),
  };
}
