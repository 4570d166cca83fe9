import { corrupt } from './errors.js';

/** Multi-sector transfer protection works on 512-byte strides whatever the sector size. */
const STRIDE = 512;

/**
 * Checks and undoes the update-sequence fixups of an MFT record ("FILE") or index block ("INDX") in place: the last
 * two bytes of every 512-byte stride must equal the update sequence number (else the write was torn) and are
 * replaced by the saved bytes.
 */
export function applyFixups(buf: Buffer, magic: 'FILE' | 'INDX', where: string): void {
  if (buf.subarray(0, 4).toString('latin1') !== magic) throw corrupt(`${where}: no ${magic} signature`);
  const usaOfs = buf.readUInt16LE(4);
  const usaCount = buf.readUInt16LE(6);
  if (usaCount !== buf.length / STRIDE + 1 || usaOfs % 2 !== 0 || usaOfs < 8 || usaOfs + usaCount * 2 > STRIDE - 2)
    throw corrupt(`${where}: bad update sequence array (offset ${usaOfs}, count ${usaCount})`);
  const usn = buf.readUInt16LE(usaOfs);
  for (let i = 1; i < usaCount; i++) {
    const at = i * STRIDE - 2;
    if (buf.readUInt16LE(at) !== usn)
      throw corrupt(`${where}: torn write (update sequence mismatch in sector ${i - 1})`);
    buf.writeUInt16LE(buf.readUInt16LE(usaOfs + i * 2), at);
  }
}
