import { corrupt } from './errors.js';

const CHUNK = 4096;

/**
 * LZNT1 decompression (MS-XCA §2.5) of one compression unit into `out` (its size is the unit's size). Chunks of up to
 * 4096 bytes, each compressed or stored; a back-reference never reaches before its chunk; output never passes `out`.
 * Returns the bytes produced (the rest of the unit is zeros).
 */
export function lznt1Decompress(src: Buffer, out: Buffer, where: string): number {
  let sp = 0;
  let op = 0;
  while (sp + 2 <= src.length && op < out.length) {
    const header = src.readUInt16LE(sp);
    if (header === 0) break;
    const size = (header & 0xfff) + 1; // bytes of chunk data after the header
    const end = sp + 2 + size;
    if (end > src.length) throw corrupt(`${where}: LZNT1 chunk of ${size} bytes runs past its data`);
    const chunkStart = op;
    const chunkEnd = Math.min(out.length, op + CHUNK);
    if (!(header & 0x8000)) {
      // stored chunk: its bytes as they are
      const n = Math.min(size, chunkEnd - op);
      src.copy(out, op, sp + 2, sp + 2 + n);
      op += n;
      sp = end;
      continue;
    }
    let p = sp + 2;
    while (p < end && op < chunkEnd) {
      const flags = src[p++]!;
      for (let bit = 0; bit < 8 && p < end && op < chunkEnd; bit++) {
        if (!(flags & (1 << bit))) {
          out[op++] = src[p++]!;
          continue;
        }
        if (p + 2 > end) throw corrupt(`${where}: LZNT1 back-reference cut short`);
        const token = src.readUInt16LE(p);
        p += 2;
        let lengthMask = 0xfff;
        let offsetShift = 12;
        for (let i = op - chunkStart - 1; i >= 0x10; i >>= 1) {
          lengthMask >>= 1;
          offsetShift--;
        }
        const offset = (token >> offsetShift) + 1;
        const length = (token & lengthMask) + 3;
        if (offset > op - chunkStart) throw corrupt(`${where}: LZNT1 back-reference before the start of its chunk`);
        if (op + length > chunkEnd) throw corrupt(`${where}: LZNT1 back-reference past the end of its chunk`);
        for (let i = 0; i < length; i++, op++) out[op] = out[op - offset]!;
      }
    }
    sp = end;
  }
  return op;
}
