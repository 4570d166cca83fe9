// Bytes on the wire of an NFC restore (issue 15): a 4 GiB disk with ~316 MiB of incompressible data in every 13th
// 4 MiB, through the streamOptimized writer that feeds the NFC upload. Run: npm run build && node bench/nfc-wire.mjs
import { streamOptimizedVmdk } from '../dist/sources/index.js';
import { randomBytes } from 'node:crypto';
const size = 4 * 1024 ** 3;
const chunk = 4 << 20;
const zero = Buffer.alloc(chunk);
// 4 GiB disk with ~300 MiB allocated: random data in every 13th 4 MiB chunk plus small writes
async function* src() {
  for (let o = 0, i = 0; o < size; o += chunk, i++) {
    if (i % 13 === 0) yield randomBytes(chunk);
    else yield zero;
  }
}
const stats = { grains: 0, zeroGrains: 0, bytesOut: 0 };
const t0 = Date.now();
for await (const _ of streamOptimizedVmdk(src(), { capacityBytes: size }, stats)) {
}
const data = Math.ceil(size / chunk / 13) * chunk;
console.log(
  JSON.stringify({
    diskBytes: size,
    dataBytes: data,
    wireBytes: stats.bytesOut,
    grains: stats.grains,
    zeroGrains: stats.zeroGrains,
    ms: Date.now() - t0,
  }),
);
