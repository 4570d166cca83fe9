import { CofferError } from '../../shared/index.js';

export interface VmdkExtentLine {
  access: 'RW' | 'RDONLY' | 'NOACCESS';
  sectors: number;
  type: 'FLAT' | 'SPARSE' | 'ZERO' | 'VMFS' | 'VMFSSPARSE';
  file: string | null;
  offsetSectors: number;
}

export interface VmdkDescriptor {
  createType: string;
  parentCID: string;
  extents: VmdkExtentLine[];
}

export const MAX_DESCRIPTOR_BYTES = 64 * 1024;
/** VMDK's own limit is ~62 TiB; anything past 2^37 sectors (64 TiB) is absurd. */
export const MAX_CAPACITY_SECTORS = 2 ** 37;
const MAX_EXTENTS = 4096;

export function vmdkError(path: string, why: string): CofferError {
  return new CofferError('SOURCE_UNREADABLE', `${path}: invalid VMDK: ${why}`, {
    details: { source: path, format: 'vmdk' },
  });
}

/** Parses a VMDK text descriptor (VMware Virtual Disk Format 1.1, "The Descriptor File"). */
export function parseDescriptor(text: string, path: string): VmdkDescriptor {
  if (text.length > MAX_DESCRIPTOR_BYTES) throw vmdkError(path, 'descriptor larger than 64 KiB');
  let createType = '';
  let parentCID = 'ffffffff';
  const extents: VmdkExtentLine[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/\0.*$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const kv = /^([A-Za-z0-9_.]+)\s*=\s*"?([^"]*)"?$/.exec(line);
    if (kv) {
      if (kv[1] === 'createType') createType = kv[2]!;
      if (kv[1] === 'parentCID') parentCID = kv[2]!.toLowerCase();
      continue;
    }
    const ext = new RegExp(
      '^(RW|RDONLY|NOACCESS)\\s+(\\d+)\\s+(FLAT|SPARSE|ZERO|VMFS|VMFSSPARSE|VMFSRDM|VMFSRAW)' +
        '(?:\\s+"([^"]*)"(?:\\s+(\\d+))?)?\\s*$',
    ).exec(line);
    if (ext) {
      const type = ext[3] as string;
      if (type === 'VMFSRDM' || type === 'VMFSRAW')
        throw vmdkError(path, `${type} extents (raw device mappings) cannot be read from a file`);
      const sectors = Number(ext[2]);
      if (!Number.isSafeInteger(sectors) || sectors > MAX_CAPACITY_SECTORS)
        throw vmdkError(path, `absurd extent size ${ext[2]}`);
      if (type !== 'ZERO' && ext[4] === undefined) throw vmdkError(path, `extent without a file name: ${line}`);
      extents.push({
        access: ext[1] as VmdkExtentLine['access'],
        sectors,
        type: type as VmdkExtentLine['type'],
        file: ext[4] ?? null,
        offsetSectors: ext[5] ? Number(ext[5]) : 0,
      });
      if (extents.length > MAX_EXTENTS) throw vmdkError(path, 'too many extents');
      continue;
    }
    if (/^(RW|RDONLY|NOACCESS)\s/.test(line)) throw vmdkError(path, `unparsable extent line: ${line.slice(0, 120)}`);
    // other lines (ddb.*, version, CID, ...) are informational
  }
  if (extents.length === 0) throw vmdkError(path, 'descriptor lists no extents');
  return { createType, parentCID, extents };
}
