function table(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? poly ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

const TABLE = table(0xedb88320);
const TABLE_C = table(0x82f63b78);
const TABLE_BE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3, as GPT uses it). */
export function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * CRC-32C (Castagnoli) continued from `seed`, without the final inversion: the kernel's crc32c_le(seed, data) and
 * e2fsprogs' ext2fs_crc32c_le, which ext4 metadata_csum and jbd2 csum v2/v3 use with seed ~0 (0xffffffff) or a
 * filesystem seed. Chain calls by passing the previous result as the seed.
 */
export function crc32c(seed: number, buf: Uint8Array): number {
  let c = seed >>> 0;
  for (let i = 0; i < buf.length; i++) c = TABLE_C[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

/** Big-endian (MSB-first) CRC-32, poly 0x04c11db7, no inversion: the kernel's crc32_be (jbd2 checksum v1). */
export function crc32Be(seed: number, buf: Uint8Array): number {
  let c = seed >>> 0;
  for (let i = 0; i < buf.length; i++) c = (TABLE_BE[((c >>> 24) ^ buf[i]!) & 0xff]! ^ (c << 8)) >>> 0;
  return c >>> 0;
}
