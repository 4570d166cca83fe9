import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeSync, ftruncateSync } from 'node:fs';

/** Deterministic pseudo-random bytes (SHA-256 in counter mode): incompressible, reproducible. */
export function prng(seed: string, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let ctr = 0;
  for (let o = 0; o < length; o += 32) {
    createHash('sha256')
      .update(`${seed}:${ctr++}`)
      .digest()
      .copy(out, o, 0, Math.min(32, length - o));
  }
  return out;
}

/**
 * Writes a small guest-like raw disk: some incompressible regions, some compressible text, some zero regions
 * (holes), a size that is not a multiple of the chunk size.
 */
export function makeDisk(path: string, sizeBytes: number, seed = 'disk'): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, sizeBytes);
    const source = readFileSync(new URL(import.meta.url)).toString('utf8');
    const text = Buffer.from(source.repeat(Math.ceil((256 * 1024) / source.length) + 1));
    const step = 256 * 1024;
    for (let off = 0, n = 0; off < sizeBytes; off += step, n++) {
      const len = Math.min(step, sizeBytes - off);
      const kind = n % 4;
      if (kind === 3) continue; // hole
      const data = kind === 1 ? text.subarray(0, len) : prng(`${seed}:${n}`, len);
      writeSync(fd, data, 0, len, off);
    }
  } finally {
    closeSync(fd);
  }
}

/** Overwrites `length` bytes at `offset` with new pseudo-random data. */
export function mutate(path: string, offset: number, length: number, seed: string): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, prng(seed, length), 0, length, offset);
  } finally {
    closeSync(fd);
  }
}
