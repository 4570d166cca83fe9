import { CofferError, type Op } from '../../shared/index.js';
import type { BlockReader } from '../block-reader.js';

/**
 * An LVM2 physical volume's label and metadata areas (docs/DESIGN.md §LVM2): "LABELONE" in one of sectors 0-3
 * (checksummed), the PV header (uuid, size, data and metadata area lists), each metadata area's header ("\x20LVM2
 * x[5A%r0N*>", checksummed) and the committed metadata text in its circular buffer (checksummed). All little-endian.
 */

export interface PvLabel {
  /** 32 characters, no dashes */
  uuid: string;
  deviceBytes: number;
  /** data area start (bytes) as the label gives it (the metadata's pe_start is authoritative) */
  dataStartBytes: number;
  metadataAreas: { offset: number; size: number }[];
}

const LABEL_ID = 'LABELONE';
const LABEL_TYPE = 'LVM2 001';
const MDA_MAGIC = Buffer.from(' LVM2 x[5A%r0N*>', 'latin1');
const MDA_HEADER_BYTES = 512;
const MAX_AREAS = 8;
/** committed metadata larger than this is not real */
export const MAX_METADATA_BYTES = 8 * 1024 * 1024;

function corrupt(msg: string, details: Record<string, unknown> = {}): CofferError {
  return new CofferError('FS_CORRUPT', `lvm2: ${msg}`, { details });
}

/** LVM2's CRC: the CRC-32 table, initial value 0xf597a6cf, no final inversion. */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
export function lvmCrc(buf: Uint8Array, crc = 0xf597a6cf): number {
  let c = crc >>> 0;
  for (let i = 0; i < buf.length; i++) c = TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

const u64 = (b: Buffer, o: number, what: string): number => {
  const v = b.readBigUInt64LE(o);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`${what} ${v} is absurdly large`);
  return Number(v);
};

/** True when one of the first four sectors holds an LVM2 label (the probe; checksums are checked by readLabel). */
export function hasLvmLabel(head: Buffer): boolean {
  for (let s = 0; s < 4 && (s + 1) * 512 <= head.length; s++) {
    const sec = head.subarray(s * 512, (s + 1) * 512);
    if (sec.toString('latin1', 0, 8) === LABEL_ID && sec.toString('latin1', 24, 32) === LABEL_TYPE) return true;
  }
  return false;
}

export async function readLabel(vol: BlockReader, op?: Op): Promise<PvLabel> {
  const head = await vol.read(0, Math.min(vol.sizeBytes, 2048), op);
  for (let s = 0; s < 4 && (s + 1) * 512 <= head.length; s++) {
    const sec = head.subarray(s * 512, (s + 1) * 512);
    if (sec.toString('latin1', 0, 8) !== LABEL_ID) continue;
    if (u64(sec, 8, 'label sector') !== s)
      throw corrupt(`the label in sector ${s} says it is in sector ${sec.readBigUInt64LE(8)}`);
    if (lvmCrc(sec.subarray(20)) !== sec.readUInt32LE(16)) throw corrupt(`the label in sector ${s} has a bad checksum`);
    if (sec.toString('latin1', 24, 32) !== LABEL_TYPE)
      throw new CofferError(
        'FS_UNSUPPORTED',
        `lvm2: label type ${JSON.stringify(sec.toString('latin1', 24, 32))} (only "LVM2 001" is read)`,
      );
    const off = sec.readUInt32LE(20);
    if (off < 32 || off > 512 - 40) throw corrupt(`PV header offset ${off} is outside the label sector`);
    const h = sec.subarray(off);
    const uuid = h.toString('latin1', 0, 32);
    if (!/^[A-Za-z0-9!#&+._-]{32}$/.test(uuid)) throw corrupt('the PV uuid is not printable');
    const deviceBytes = u64(h, 32, 'device size');
    let p = 40;
    const list = (what: string) => {
      const out: { offset: number; size: number }[] = [];
      for (;;) {
        if (p + 16 > h.length) throw corrupt(`the ${what} list runs past the label sector`);
        const offset = u64(h, p, `${what} offset`);
        const size = u64(h, p + 8, `${what} size`);
        p += 16;
        if (offset === 0) return out;
        if (out.length >= MAX_AREAS) throw corrupt(`more than ${MAX_AREAS} ${what}s`);
        out.push({ offset, size });
      }
    };
    const data = list('data area');
    const metadataAreas = list('metadata area');
    return { uuid, deviceBytes, dataStartBytes: data[0]?.offset ?? 0, metadataAreas };
  }
  throw corrupt('no LVM2 label in sectors 0-3');
}

/**
 * The committed metadata text of one metadata area, or undefined when the area holds none (ignored, or empty).
 * The text may wrap around the circular buffer (continuing right after the area's header).
 */
export async function readMetadataText(
  vol: BlockReader,
  area: { offset: number; size: number },
  op?: Op,
): Promise<string | undefined> {
  if (area.size < MDA_HEADER_BYTES * 2 || area.offset + area.size > vol.sizeBytes)
    throw corrupt(`metadata area [${area.offset}, +${area.size}) is outside the volume (${vol.sizeBytes} bytes)`, {
      ...area,
    });
  const h = await vol.read(area.offset, MDA_HEADER_BYTES, op);
  if (lvmCrc(h.subarray(4)) !== h.readUInt32LE(0))
    throw corrupt(`metadata area header at ${area.offset} has a bad checksum`);
  if (!h.subarray(4, 20).equals(MDA_MAGIC)) throw corrupt(`metadata area header at ${area.offset} has a bad magic`);
  if (h.readUInt32LE(20) !== 1)
    throw new CofferError('FS_UNSUPPORTED', `lvm2: metadata area version ${h.readUInt32LE(20)}`);
  if (u64(h, 24, 'metadata area start') !== area.offset)
    throw corrupt(`metadata area header at ${area.offset} says it is at ${h.readBigUInt64LE(24)}`);
  const size = u64(h, 32, 'metadata area size');
  if (size !== area.size)
    throw corrupt(`metadata area at ${area.offset}: header size ${size} differs from the label's ${area.size}`);
  const offset = u64(h, 40, 'metadata offset');
  const len = u64(h, 48, 'metadata length');
  const crc = h.readUInt32LE(56);
  const flags = h.readUInt32LE(60);
  if (offset === 0 || len === 0 || flags & 1) return undefined;
  const ring = size - MDA_HEADER_BYTES;
  if (offset < MDA_HEADER_BYTES || offset >= size || len > ring || len > MAX_METADATA_BYTES)
    throw corrupt(`metadata of ${len} bytes at ${offset} does not fit its area of ${size}`, { offset, len, size });
  const first = Math.min(len, size - offset);
  const parts = [await vol.read(area.offset + offset, first, op)];
  if (first < len) parts.push(await vol.read(area.offset + MDA_HEADER_BYTES, len - first, op));
  const text = Buffer.concat(parts);
  if (lvmCrc(text) !== crc) throw corrupt(`metadata text at ${area.offset + offset} has a bad checksum`);
  return text.toString('utf8');
}
