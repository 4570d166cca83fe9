import { CofferError } from '../shared/index.js';

/** One extent line of a VMDK descriptor: `RW 8388608 VMFS "disk1-flat.vmdk" [offset]`. */
export interface VmdkExtent {
  access: 'RW' | 'RDONLY' | 'NOACCESS';
  sectors: number;
  /** FLAT, VMFS, VMFSSPARSE, SESPARSE, VMFSRDM, VMFSRAW, SPARSE, ZERO, VSANSPARSE ... (upper case) */
  type: string;
  /** The file as written: relative to the descriptor, absolute (/vmfs/volumes/DS/...), or an object (vsan://ID). */
  file: string;
  offsetSectors: number;
}

export interface VmdkDescriptor {
  createType: string;
  parentCID: string | undefined;
  parentFileNameHint: string | undefined;
  uuid: string | undefined;
  extents: VmdkExtent[];
}

/** Where an extent's bytes are, resolved as ESXi does (DESIGN.md §vSphere, disk layout). */
export type ExtentLocation =
  | { kind: 'file'; datastore: string; path: string }
  | { kind: 'vsan-object'; objectId: string }
  | { kind: 'device'; path: string };

const MAX_DESCRIPTOR_BYTES = 64 * 1024;

/**
 * What the first bytes of a `.vmdk` are: a text descriptor, a hosted sparse disk (KDMV), an ESX sparse/COW disk
 * (COWD), or something else (never guessed to be a flat disk: backing up an unrecognised file would store garbage
 * or zeros as if they were the disk).
 */
export function sniffVmdk(head: Buffer): 'descriptor' | 'sparse' | 'cowd' | 'unknown' {
  const magic = head.subarray(0, 4).toString('latin1');
  if (magic === 'KDMV') return 'sparse';
  if (magic === 'COWD') return 'cowd';
  if (/^\s*#\s*Disk DescriptorFile/i.test(head.subarray(0, 256).toString('latin1'))) return 'descriptor';
  return 'unknown';
}

/** Parses a descriptor (untrusted text): VSPHERE_DISK_LAYOUT when it is not one Coffer can follow. */
export function parseVmdkDescriptor(text: string, what: string): VmdkDescriptor {
  if (text.length > MAX_DESCRIPTOR_BYTES)
    throw layout(`${what}: the descriptor is larger than ${MAX_DESCRIPTOR_BYTES} bytes`);
  const value = (key: string) => {
    const m = new RegExp(`^\\s*${key}\\s*=\\s*"?([^"\\r\\n]*)"?\\s*$`, 'im').exec(text);
    return m ? m[1]!.trim() : undefined;
  };
  const extents: VmdkExtent[] = [];
  for (const line of text.split(/\r?\n/)) {
    const t = line.trim();
    if (!/^(RW|RDONLY|NOACCESS)\s/.test(t)) continue;
    const m = /^(RW|RDONLY|NOACCESS)\s+(\d{1,16})\s+([A-Za-z]+)(?:\s+"([^"]*)"(?:\s+(\d{1,16}))?)?\s*$/.exec(t);
    if (!m) throw layout(`${what}: cannot read the extent line ${JSON.stringify(t.slice(0, 200))}`);
    const sectors = Number(m[2]);
    if (!Number.isSafeInteger(sectors * 512)) throw layout(`${what}: extent of ${m[2]} sectors is too large`);
    const type = m[3]!.toUpperCase();
    if (type !== 'ZERO' && !m[4]) throw layout(`${what}: a ${type} extent names no file`);
    extents.push({
      access: m[1] as VmdkExtent['access'],
      sectors,
      type,
      file: m[4] ?? '',
      offsetSectors: m[5] ? Number(m[5]) : 0,
    });
  }
  if (extents.length === 0) throw layout(`${what}: the descriptor lists no extents`);
  const uuidText = value('ddb\\.uuid');
  const hex = uuidText?.replace(/[\s-]/g, '').toLowerCase();
  return {
    createType: value('createType') ?? '',
    parentCID: value('parentCID'),
    parentFileNameHint: value('parentFileNameHint'),
    uuid:
      hex && /^[0-9a-f]{32}$/.test(hex)
        ? `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
        : undefined,
    extents,
  };
}

/**
 * Resolves an extent's file name as ESXi does: `vsan://ID` is a vSAN object, `/vmfs/volumes/DS/rest` an absolute
 * path on datastore DS (by name; ESXi also accepts the volume UUID, which `datastoreByVolume` maps to a name),
 * `/vmfs/devices/...` a raw device, anything else relative to the descriptor's directory on its datastore.
 */
export function resolveExtent(
  file: string,
  descriptor: { datastore: string; path: string },
  datastoreByVolume: (v: string) => string | undefined = () => undefined,
): ExtentLocation {
  if (file.startsWith('vsan://')) {
    const id = file.slice('vsan://'.length);
    if (!/^[0-9A-Za-z-]{1,128}$/.test(id)) throw layout(`extent ${JSON.stringify(file)} is not a vSAN object id`);
    return { kind: 'vsan-object', objectId: id };
  }
  if (file.startsWith('/vmfs/devices/')) return { kind: 'device', path: file };
  if (file.startsWith('/vmfs/volumes/')) {
    const rest = file.slice('/vmfs/volumes/'.length);
    const i = rest.indexOf('/');
    if (i <= 0 || i === rest.length - 1) throw layout(`extent ${JSON.stringify(file)} names no file on a volume`);
    const vol = rest.slice(0, i);
    return { kind: 'file', datastore: datastoreByVolume(vol) ?? vol, path: normalise(rest.slice(i + 1), file) };
  }
  if (file.startsWith('/')) throw layout(`extent ${JSON.stringify(file)} is an absolute path outside /vmfs/volumes`);
  const dir = descriptor.path.includes('/') ? descriptor.path.slice(0, descriptor.path.lastIndexOf('/') + 1) : '';
  return { kind: 'file', datastore: descriptor.datastore, path: normalise(dir + file, file) };
}

function normalise(p: string, original: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) throw layout(`extent ${JSON.stringify(original)} leaves its datastore`);
      out.pop();
    } else out.push(part);
  }
  if (out.length === 0) throw layout(`extent ${JSON.stringify(original)} names no file`);
  return out.join('/');
}

function layout(message: string): CofferError {
  return new CofferError('VSPHERE_DISK_LAYOUT', message);
}
