import { CofferError } from '../shared/index.js';
import { type MoRef, boolOf, child, children, intOf, refOf, textOf, type XmlNode } from './xml.js';

/** A virtual disk of a VM (or of a snapshot's configuration). */
export interface VmDisk {
  key: number;
  label: string;
  capacityBytes: number;
  /** Datastore path, e.g. "[LocalDS_0] vm1/vm1.vmdk". */
  fileName: string;
  datastore: MoRef | undefined;
  /** The backing type (VirtualDiskFlatVer2BackingInfo, ...). */
  backingType: string;
  thinProvisioned: boolean | undefined;
  eagerlyScrub: boolean | undefined;
  diskMode: string | undefined;
  changeId: string | undefined;
  uuid: string | undefined;
  controllerKey: number | undefined;
  unitNumber: number | undefined;
  /** RDMs (VirtualDiskRawDiskMappingVer1BackingInfo): physicalMode or virtualMode. */
  compatibilityMode?: string | undefined;
}

/** Why a disk cannot be part of a snapshot-based backup (undefined: it can). */
export function unsnapshottable(d: Pick<VmDisk, 'diskMode' | 'compatibilityMode'>): string | undefined {
  if (d.compatibilityMode === 'physicalMode') return 'a physical-mode RDM (vSphere cannot snapshot it)';
  if (d.diskMode?.startsWith('independent'))
    return `an independent disk (${d.diskMode}: vSphere leaves it out of snapshots)`;
  return undefined;
}

export interface VmController {
  key: number;
  type: string;
  busNumber: number;
  sharedBus: string | undefined;
}

export interface VmNic {
  key: number;
  type: string;
  label: string;
  macAddress: string | undefined;
  addressType: string | undefined;
  /** Network name of a standard port group (deviceName), or the distributed port group key. */
  network: string | undefined;
  networkRef: MoRef | undefined;
  controllerKey: number | undefined;
  unitNumber: number | undefined;
}

/** What Coffer reads from a VirtualMachineConfigInfo. */
export interface VmHardware {
  name: string;
  guestId: string | undefined;
  guestFullName: string | undefined;
  uuid: string | undefined;
  instanceUuid: string | undefined;
  version: string | undefined;
  firmware: string | undefined;
  annotation: string | undefined;
  template: boolean;
  vmPathName: string | undefined;
  numCPU: number | undefined;
  numCoresPerSocket: number | undefined;
  memoryMB: number | undefined;
  changeTrackingEnabled: boolean;
  /** Disks in device order (the order of config.hardware.device, which is the order of their restore point disks). */
  disks: VmDisk[];
  controllers: VmController[];
  nics: VmNic[];
  /** bootOptions.efiSecureBootEnabled */
  secureBoot?: boolean | undefined;
  /** config.extraConfig (string values) */
  extraConfig?: { key: string; value: string }[];
  /** a VirtualTPM device is present (vTPM) */
  vtpm?: boolean;
}

const CONTROLLER_TYPES = /Controller$/;

/** Decodes a VirtualMachineConfigInfo (a VM's `config`, or a snapshot's). Unknown devices are ignored. */
export function parseConfigInfo(cfg: XmlNode): VmHardware {
  const hw = child(cfg, 'hardware');
  const devices = hw ? children(hw, 'device') : [];
  const disks: VmDisk[] = [];
  const controllers: VmController[] = [];
  const nics: VmNic[] = [];
  for (const d of devices) {
    const type = d.xsiType ?? '';
    const key = intOf(d, 'key');
    if (key === undefined) continue;
    const label = textOf(child(d, 'deviceInfo') ?? d, 'label') ?? '';
    if (type === 'VirtualDisk') {
      const backing = child(d, 'backing');
      const kb = intOf(d, 'capacityInKB');
      const bytes = intOf(d, 'capacityInBytes');
      const capacityBytes = bytes !== undefined && bytes > 0 ? bytes : (kb ?? 0) * 1024;
      disks.push({
        key,
        label,
        capacityBytes,
        fileName: (backing && textOf(backing, 'fileName')) ?? '',
        datastore: backing ? refOf(backing, 'datastore') : undefined,
        backingType: backing?.xsiType ?? '',
        thinProvisioned: backing ? boolOf(backing, 'thinProvisioned') : undefined,
        eagerlyScrub: backing ? boolOf(backing, 'eagerlyScrub') : undefined,
        diskMode: backing ? textOf(backing, 'diskMode') : undefined,
        changeId: (backing && textOf(backing, 'changeId')?.trim()) || undefined,
        uuid: backing ? textOf(backing, 'uuid') : undefined,
        controllerKey: intOf(d, 'controllerKey'),
        unitNumber: intOf(d, 'unitNumber'),
        compatibilityMode: backing ? textOf(backing, 'compatibilityMode') : undefined,
      });
    } else if (CONTROLLER_TYPES.test(type) && child(d, 'busNumber')) {
      controllers.push({ key, type, busNumber: intOf(d, 'busNumber') ?? 0, sharedBus: textOf(d, 'sharedBus') });
    } else if (child(d, 'macAddress') !== undefined || /Ethernet|Vmxnet|E1000|Pcnet|Sriov/i.test(type)) {
      const backing = child(d, 'backing');
      const port = backing ? child(backing, 'port') : undefined;
      nics.push({
        key,
        type,
        label,
        macAddress: textOf(d, 'macAddress'),
        addressType: textOf(d, 'addressType'),
        network: (backing && (textOf(backing, 'deviceName') ?? (port && textOf(port, 'portgroupKey')))) || undefined,
        networkRef: backing ? refOf(backing, 'network') : undefined,
        controllerKey: intOf(d, 'controllerKey'),
        unitNumber: intOf(d, 'unitNumber'),
      });
    }
  }
  const files = child(cfg, 'files');
  const name = textOf(cfg, 'name');
  if (name === undefined)
    throw new CofferError('VSPHERE_FAULT', 'vCenter sent a VM configuration without a name', {
      details: { protocol: true },
    });
  return {
    name,
    guestId: textOf(cfg, 'guestId'),
    guestFullName: textOf(cfg, 'guestFullName'),
    uuid: textOf(cfg, 'uuid'),
    instanceUuid: textOf(cfg, 'instanceUuid'),
    version: textOf(cfg, 'version'),
    firmware: textOf(cfg, 'firmware'),
    annotation: textOf(cfg, 'annotation'),
    template: boolOf(cfg, 'template') ?? false,
    vmPathName: files ? textOf(files, 'vmPathName') : undefined,
    numCPU: hw ? intOf(hw, 'numCPU') : undefined,
    numCoresPerSocket: hw ? intOf(hw, 'numCoresPerSocket') : undefined,
    memoryMB: hw ? intOf(hw, 'memoryMB') : undefined,
    changeTrackingEnabled: boolOf(cfg, 'changeTrackingEnabled') ?? false,
    disks,
    controllers,
    secureBoot: ((b) => (b ? boolOf(b, 'efiSecureBootEnabled') : undefined))(child(cfg, 'bootOptions')),
    extraConfig: children(cfg, 'extraConfig').flatMap((e) => {
      const key = textOf(e, 'key');
      const value = textOf(e, 'value');
      return key !== undefined && value !== undefined ? [{ key, value }] : [];
    }),
    nics,
    vtpm: devices.some((d) => d.xsiType === 'VirtualTPM'),
  };
}

/** One snapshot of a VM (the tree flattened). */
export interface VmSnapshot {
  ref: MoRef;
  name: string;
  description: string;
  createTime: string | undefined;
  quiesced: boolean;
}

export function parseSnapshotInfo(info: XmlNode | undefined): VmSnapshot[] {
  const out: VmSnapshot[] = [];
  const walk = (trees: XmlNode[], depth: number) => {
    if (depth > 200) return;
    for (const t of trees) {
      const ref = refOf(t, 'snapshot');
      if (ref)
        out.push({
          ref,
          name: textOf(t, 'name') ?? '',
          description: textOf(t, 'description') ?? '',
          createTime: textOf(t, 'createTime'),
          quiesced: boolOf(t, 'quiesced') ?? false,
        });
      walk(children(t, 'childSnapshotList'), depth + 1);
    }
  };
  if (info) walk(children(info, 'rootSnapshotList'), 0);
  return out;
}

/** "[datastore] dir/file.vmdk" -> { datastore, path }. */
export function parseDatastorePath(p: string): { datastore: string; path: string } {
  const m = /^\[([^\]]*)\]\s*(.*)$/.exec(p);
  if (!m)
    throw new CofferError('VSPHERE_FAULT', `not a datastore path: ${JSON.stringify(p)}`, {
      details: { protocol: true },
    });
  return { datastore: m[1]!, path: m[2]! };
}
