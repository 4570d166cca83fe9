const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli), as XFS v5 metadata uses it. */
export function crc32c(buf: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < buf.length; i++) c = TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const ZERO4 = new Uint8Array(4);

/**
 * XFS metadata checksum: CRC-32C of the buffer with its 4-byte little-endian checksum field at `crcOffset` taken as
 * zero.
 */
export function xfsChecksumOk(buf: Buffer, crcOffset: number): boolean {
  if (crcOffset + 4 > buf.length) return false;
  const stored = buf.readUInt32LE(crcOffset);
  let c = crc32c(buf.subarray(0, crcOffset));
  c = crc32c(ZERO4, c);
  return crc32c(buf.subarray(crcOffset + 4), c) === stored;
}
