import { corrupt } from './errors.js';
import { applyFixups } from './fixup.js';
import { decodeRunlist, type Run } from './runlist.js';

/** Attribute types (docs/DESIGN.md §NTFS reader). */
export const AT = {
  STANDARD_INFORMATION: 0x10,
  ATTRIBUTE_LIST: 0x20,
  FILE_NAME: 0x30,
  VOLUME_INFORMATION: 0x70,
  DATA: 0x80,
  INDEX_ROOT: 0x90,
  INDEX_ALLOCATION: 0xa0,
  BITMAP: 0xb0,
  REPARSE_POINT: 0xc0,
  END: 0xffffffff,
} as const;

export const ATTR_FLAG = { COMPRESSED: 0x0001, ENCRYPTED: 0x4000, SPARSE: 0x8000 } as const;

/** One attribute (or one extent of a non-resident attribute) as stored in a file record. */
export interface Attribute {
  type: number;
  name: string;
  flags: number;
  /** resident value */
  value?: Buffer;
  /** non-resident: runs of this extent and the sizes (sizes only meaningful in the extent with lowestVcn 0) */
  lowestVcn: number;
  highestVcn: number;
  runs?: Run[];
  compressionUnit: number;
  allocatedSize: number;
  dataSize: number;
  initializedSize: number;
  /** the record this extent was read from */
  record: number;
}

export interface FileRecord {
  number: number;
  sequence: number;
  linkCount: number;
  inUse: boolean;
  isDirectory: boolean;
  /** base record number (0 for a base record) */
  base: number;
  attrs: Attribute[];
}

/** A 64-bit file reference: 48-bit record number and 16-bit sequence number. */
export function fileRef(b: Buffer, off: number): { record: number; sequence: number } {
  return { record: b.readUInt32LE(off) + b.readUInt16LE(off + 4) * 2 ** 32, sequence: b.readUInt16LE(off + 6) };
}

const MAX_ATTRS = 512;

/**
 * Parses an MFT record (fixups applied here, in place): header, then attributes up to the end marker, all inside
 * bytes_in_use.
 */
export function parseRecord(buf: Buffer, number: number, totalClusters: number): FileRecord {
  const where = `MFT record ${number}`;
  applyFixups(buf, 'FILE', where);
  const attrsOffset = buf.readUInt16LE(20);
  const flags = buf.readUInt16LE(22);
  const inUseBytes = buf.readUInt32LE(24);
  if (inUseBytes > buf.length || attrsOffset < 42 || attrsOffset + 4 > inUseBytes || attrsOffset % 8 !== 0)
    throw corrupt(`${where}: bad header (attributes at ${attrsOffset}, ${inUseBytes} bytes in use)`);
  const rec: FileRecord = {
    number,
    sequence: buf.readUInt16LE(16),
    linkCount: buf.readUInt16LE(18),
    inUse: (flags & 1) !== 0,
    isDirectory: (flags & 2) !== 0,
    base: fileRef(buf, 32).record,
    attrs: [],
  };
  let p = attrsOffset;
  while (true) {
    if (p + 4 > inUseBytes) throw corrupt(`${where}: attributes run past the record without an end marker`);
    const type = buf.readUInt32LE(p);
    if (type === AT.END) break;
    if (p + 16 > inUseBytes) throw corrupt(`${where}: attribute header at ${p} cut short`);
    const len = buf.readUInt32LE(p + 4);
    if (len < 16 || len % 8 !== 0 || p + len > inUseBytes)
      throw corrupt(`${where}: attribute 0x${type.toString(16)} at ${p} has bad length ${len}`);
    if (rec.attrs.length >= MAX_ATTRS) throw corrupt(`${where}: more than ${MAX_ATTRS} attributes`);
    rec.attrs.push(parseAttribute(buf.subarray(p, p + len), number, totalClusters, where));
    p += len;
  }
  return rec;
}

function parseAttribute(a: Buffer, record: number, totalClusters: number, where: string): Attribute {
  const type = a.readUInt32LE(0);
  const nonResident = a[8]!;
  const nameLen = a[9]!;
  const nameOff = a.readUInt16LE(10);
  const flags = a.readUInt16LE(12);
  if (nameLen > 0 && nameOff + nameLen * 2 > a.length) throw corrupt(`${where}: attribute name outside its attribute`);
  const name = nameLen > 0 ? a.subarray(nameOff, nameOff + nameLen * 2).toString('utf16le') : '';
  const at = `${where} attribute 0x${type.toString(16)}${name ? ` "${name}"` : ''}`;
  const base = {
    type,
    name,
    flags,
    record,
    lowestVcn: 0,
    highestVcn: -1,
    compressionUnit: 0,
    allocatedSize: 0,
    dataSize: 0,
    initializedSize: 0,
  };
  if (nonResident === 0) {
    if (a.length < 24) throw corrupt(`${at}: resident header cut short`);
    const vlen = a.readUInt32LE(16);
    const voff = a.readUInt16LE(20);
    if (voff + vlen > a.length) throw corrupt(`${at}: value (${vlen} bytes at ${voff}) outside its attribute`);
    const value = a.subarray(voff, voff + vlen);
    return { ...base, value, allocatedSize: vlen, dataSize: vlen, initializedSize: vlen };
  }
  if (nonResident !== 1 || a.length < 64) throw corrupt(`${at}: bad non-resident header`);
  const num = (o: number) => {
    const v = a.readBigInt64LE(o);
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`${at}: absurd value ${v} at header offset ${o}`);
    return Number(v);
  };
  const lowestVcn = num(16);
  const highestVcn = Number(a.readBigInt64LE(24));
  if (highestVcn < lowestVcn - 1 || highestVcn > Number.MAX_SAFE_INTEGER)
    throw corrupt(`${at}: VCN range ${lowestVcn}..${highestVcn}`);
  const mpOff = a.readUInt16LE(32);
  if (mpOff < 64 || mpOff >= a.length) throw corrupt(`${at}: mapping pairs at ${mpOff} outside the attribute`);
  const attr: Attribute = {
    ...base,
    lowestVcn,
    highestVcn,
    compressionUnit: a[34]!,
    allocatedSize: num(40),
    dataSize: num(48),
    initializedSize: num(56),
    runs: decodeRunlist(a.subarray(mpOff), lowestVcn, highestVcn, totalClusters, at),
  };
  if (
    lowestVcn === 0 &&
    ((attr.dataSize > attr.allocatedSize + 0 && !(flags & ATTR_FLAG.COMPRESSED)) ||
      attr.initializedSize > attr.dataSize)
  ) {
    throw corrupt(
      `${at}: sizes do not fit (data ${attr.dataSize}, initialized ${attr.initializedSize}, ` +
        `allocated ${attr.allocatedSize})`,
    );
  }
  return attr;
}

/** NT time (100 ns since 1601-01-01 UTC) in ms since the epoch; undefined for 0 or a value outside what Date holds. */
export function ntTimeMs(b: Buffer, off: number): number | undefined {
  const v = b.readBigUInt64LE(off);
  if (v === 0n) return undefined;
  const ms = Number(v / 10000n) - 11644473600000;
  return Math.abs(ms) <= 8.64e15 ? ms : undefined;
}
