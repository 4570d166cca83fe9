import { CofferError, type Op } from '../shared/index.js';
import { retrieveFromView, type ObjectContent } from './property-collector.js';
import type { VimClient } from './vim-client.js';
import { parseConfigInfo, parseSnapshotInfo, type VmHardware, type VmSnapshot } from './vm-model.js';
import { MoRef, children, intOf, textOf } from './xml.js';

export interface InventoryEntity {
  ref: MoRef;
  name: string;
  parent: MoRef | undefined;
  /** Inventory path, e.g. /DC0/vm/folder/name (the root folder is not part of it). */
  path: string;
}

export interface DatastoreInfo extends InventoryEntity {
  capacityBytes: number | undefined;
  freeBytes: number | undefined;
  type: string | undefined;
  datacenter: string | undefined;
}

export interface VmInfo extends InventoryEntity {
  datacenter: InventoryEntity | undefined;
  folder: MoRef | undefined;
  resourcePool: MoRef | undefined;
  host: MoRef | undefined;
  /** the cluster of its host (undefined on a standalone host): placement of proxies per cluster */
  cluster: string | undefined;
  /** the names of the datastores it uses (its `datastore` property), in vCenter's order */
  datastores: string[];
  powerState: string | undefined;
  /** guest.toolsRunningStatus: guestToolsRunning, guestToolsNotRunning, guestToolsExecutingScripts. */
  toolsRunningStatus: string | undefined;
  config: VmHardware | undefined;
  snapshots: VmSnapshot[];
}

export interface Inventory {
  datacenters: InventoryEntity[];
  clusters: InventoryEntity[];
  hosts: InventoryEntity[];
  datastores: DatastoreInfo[];
  folders: InventoryEntity[];
  resourcePools: InventoryEntity[];
  networks: InventoryEntity[];
  vms: VmInfo[];
}

export const VM_PROPERTIES = [
  'name',
  'parent',
  'resourcePool',
  'runtime.host',
  'datastore',
  'runtime.powerState',
  'guest.toolsRunningStatus',
  'config',
  'snapshot',
];

/** Reads the whole inventory through one ContainerView on the root folder (paged). */
export async function loadInventory(c: VimClient, op: Op = {}, opts: { vmConfig?: boolean } = {}): Promise<Inventory> {
  const named = ['name', 'parent'];
  const objects = await retrieveFromView(
    c,
    c.serviceContent.rootFolder,
    {
      Folder: named,
      Datacenter: named,
      ComputeResource: named,
      HostSystem: named,
      Datastore: [...named, 'summary'],
      ResourcePool: named,
      Network: named,
      VirtualMachine: opts.vmConfig === false ? VM_PROPERTIES.filter((p) => p !== 'config') : VM_PROPERTIES,
    },
    op,
  );
  return buildInventory(objects, c.serviceContent.rootFolder);
}

export function buildInventory(objects: ObjectContent[], rootFolder: MoRef): Inventory {
  const byKey = new Map<string, ObjectContent>();
  for (const o of objects) byKey.set(o.obj.toString(), o);
  const nameOf = (o: ObjectContent) => o.props.get('name')?.text ?? o.obj.value;
  const parentOf = (o: ObjectContent) => {
    const p = o.props.get('parent');
    return p?.attrs['type'] ? MoRef.from(p) : undefined;
  };
  const pathCache = new Map<string, string>();
  const pathOf = (o: ObjectContent): string => {
    const k = o.obj.toString();
    const cached = pathCache.get(k);
    if (cached !== undefined) return cached;
    const parts: string[] = [];
    let cur: ObjectContent | undefined = o;
    for (let guard = 0; cur && guard < 256; guard++) {
      if (cur.obj.equals(rootFolder)) break;
      parts.unshift(nameOf(cur).replace(/%/g, '%25').replace(/\//g, '%2f'));
      const p = parentOf(cur);
      cur = p ? byKey.get(p.toString()) : undefined;
    }
    const path = '/' + parts.join('/');
    pathCache.set(k, path);
    return path;
  };
  const datacenterOf = (o: ObjectContent): ObjectContent | undefined => {
    let cur: ObjectContent | undefined = o;
    for (let guard = 0; cur && guard < 256; guard++) {
      if (cur.obj.type === 'Datacenter') return cur;
      const p = parentOf(cur);
      cur = p ? byKey.get(p.toString()) : undefined;
    }
    return undefined;
  };
  const ref = (p: string, o: ObjectContent) => {
    const n = o.props.get(p);
    return n?.attrs['type'] ? MoRef.from(n) : undefined;
  };
  const entity = (o: ObjectContent): InventoryEntity => ({
    ref: o.obj,
    name: nameOf(o),
    parent: parentOf(o),
    path: pathOf(o),
  });
  const inv: Inventory = {
    datacenters: [],
    clusters: [],
    hosts: [],
    datastores: [],
    folders: [],
    resourcePools: [],
    networks: [],
    vms: [],
  };
  for (const o of objects) {
    switch (o.obj.type) {
      case 'Folder':
        if (!o.obj.equals(rootFolder)) inv.folders.push(entity(o));
        break;
      case 'Datacenter':
        inv.datacenters.push(entity(o));
        break;
      case 'ClusterComputeResource':
        inv.clusters.push(entity(o));
        break;
      case 'HostSystem':
        inv.hosts.push(entity(o));
        break;
      case 'ResourcePool':
        inv.resourcePools.push(entity(o));
        break;
      case 'Network':
      case 'DistributedVirtualPortgroup':
      case 'OpaqueNetwork':
        inv.networks.push(entity(o));
        break;
      case 'Datastore': {
        const s = o.props.get('summary');
        const dc = datacenterOf(o);
        inv.datastores.push({
          ...entity(o),
          capacityBytes: s ? intOf(s, 'capacity') : undefined,
          freeBytes: s ? intOf(s, 'freeSpace') : undefined,
          type: s ? textOf(s, 'type') : undefined,
          datacenter: dc ? nameOf(dc) : undefined,
        });
        break;
      }
      case 'VirtualMachine': {
        const host = ref('runtime.host', o);
        const hostObj = host ? byKey.get(host.toString()) : undefined;
        const clusterRef = hostObj ? parentOf(hostObj) : undefined;
        const cluster = clusterRef?.type === 'ClusterComputeResource' ? byKey.get(clusterRef.toString()) : undefined;
        const dsList = o.props.get('datastore');
        const datastores = (dsList ? children(dsList, 'ManagedObjectReference') : []).flatMap((n) => {
          const ds = n.attrs['type'] ? byKey.get(MoRef.from(n).toString()) : undefined;
          return ds ? [nameOf(ds)] : [];
        });
        const cfg = o.props.get('config');
        const dc = datacenterOf(o);
        inv.vms.push({
          ...entity(o),
          datacenter: dc ? entity(dc) : undefined,
          folder: parentOf(o),
          resourcePool: ref('resourcePool', o),
          host,
          cluster: cluster ? nameOf(cluster) : undefined,
          datastores,
          powerState: o.props.get('runtime.powerState')?.text,
          toolsRunningStatus: o.props.get('guest.toolsRunningStatus')?.text,
          config: cfg ? parseConfigInfo(cfg) : undefined,
          snapshots: parseSnapshotInfo(o.props.get('snapshot')),
        });
        break;
      }
      default:
        break;
    }
  }
  for (const list of Object.values(inv) as InventoryEntity[][]) list.sort((a, b) => a.path.localeCompare(b.path));
  return inv;
}

/**
 * The `dcPath` of vCenter's /folder access: the datacenter's inventory path without the root folder
 * (`Folder1/DC1` for a datacenter inside a folder; names with `/` stay escaped as `%2f`, as vCenter writes them).
 * A bare name is wrong there: two datacenters of the same name in different folders are legal.
 */
export function dcPathOf(dc: Pick<InventoryEntity, 'path'>): string {
  return dc.path.replace(/^\//, '');
}

/** Glob (*, ?, [..]) to a RegExp over the whole string. */
function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else if (ch === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re +=
          '[' +
          glob
            .slice(i + 1, end)
            .replace(/\\/g, '\\\\')
            .replace(/^!/, '^') +
          ']';
        i = end;
      }
    } else re += ch.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * Selects VMs by: moref (vm-123), inventory path (/DC0/vm/folder/name, or a folder path: every VM below it), glob
 * pattern on the name or path (web-*, /DC0/vm/prod/*), or exact name. Templates are skipped. NOT_FOUND when nothing
 * matches; AMBIGUOUS when `single` and several match.
 */
export function selectVms(vms: VmInfo[], spec: string, single: boolean): VmInfo[] {
  const candidates = vms.filter((v) => !v.config?.template);
  let found: VmInfo[];
  const byRef = candidates.filter((v) => v.ref.value === spec);
  if (byRef.length > 0) found = byRef;
  else if (/[*?[]/.test(spec)) {
    const re = globToRegExp(spec);
    found = candidates.filter((v) =>
      spec.includes('/') ? re.test(v.path) || re.test(v.path.replace(/^\//, '')) : re.test(v.name),
    );
  } else if (spec.includes('/')) {
    const p = spec.startsWith('/') ? spec : `/${spec}`;
    found = candidates.filter((v) => v.path === p);
    if (found.length === 0) found = candidates.filter((v) => v.path.startsWith(p.replace(/\/$/, '') + '/'));
  } else found = candidates.filter((v) => v.name === spec);
  if (found.length === 0) {
    throw new CofferError('NOT_FOUND', `no VM matches ${JSON.stringify(spec)} in vCenter`, {
      hint: 'list the VMs with `coffer vsphere inventory vsphere://HOST:PORT`',
    });
  }
  if (single && found.length > 1) {
    throw new CofferError(
      'AMBIGUOUS',
      `${found.length} VMs match ${JSON.stringify(spec)}: ${found
        .slice(0, 10)
        .map((v) => `${v.path} (${v.ref.value})`)
        .join(', ')}`,
      { hint: 'name the VM by its moref (vm-123) or inventory path' },
    );
  }
  return found;
}
