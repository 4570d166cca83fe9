#!/usr/bin/env node
// mutate-disk.mjs DISK.raw [--percent 2] [--seed 42] [--list-only] [--list-out FILE]
//                          [--min-offset BYTES] [--region-size BYTES]
//
// Simulates guest writes between two backups: overwrites ~PERCENT % of the
// disk in place, as REGION-aligned REGION-sized regions (default 1 MiB) picked
// by a seeded PRNG, each region at most once, all inside the root (ext4)
// partition area: at or past --min-offset (default 300 MiB) and before the end
// of the GPT partition that contains min-offset (or before the last MiB of
// the disk, which holds the backup GPT, when there is no GPT).
//
// The new bytes are pseudo-random and incompressible: an AES-256-CTR keystream
// keyed by the seed and positioned by the absolute disk offset, so a run is
// fully reproducible, and running the same seed twice changes nothing the
// second time (use another seed for a further generation).
//
// --list-only   print the [[offset, length], ...] list (sorted) as JSON, write nothing
// --list-out F  also save that list to F while mutating (for qemu-io replays)
// Otherwise prints one JSON summary object on stdout.
import { openSync, readSync, writeSync, fsyncSync, closeSync, fstatSync, writeFileSync } from 'node:fs';
import { createHash, createCipheriv } from 'node:crypto';

const MiB = 1024 * 1024;

function usage(msg) {
  if (msg) console.error(`mutate-disk: ${msg}`);
  console.error(
    'usage: mutate-disk.mjs DISK.raw [--percent 2] [--seed 42] [--list-only] [--list-out FILE] [--min-offset BYTES] [--region-size BYTES]',
  );
  process.exit(2);
}

// ---- arguments -------------------------------------------------------------
const opts = { percent: 2, seed: '42', listOnly: false, listOut: null, minOffset: 300 * MiB, region: MiB };
let disk = null;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    return argv[++i];
  };
  const num = (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) usage(`bad number for ${a}: ${v}`);
    return n;
  };
  switch (a) {
    case '--percent':
      opts.percent = num(val());
      break;
    case '--seed':
      opts.seed = val();
      break;
    case '--list-only':
      opts.listOnly = true;
      break;
    case '--list-out':
      opts.listOut = val();
      break;
    case '--min-offset':
      opts.minOffset = num(val());
      break;
    case '--region-size':
      opts.region = num(val());
      break;
    case '-h':
    case '--help':
      usage();
      break;
    default:
      if (a.startsWith('-') || disk) usage(`unexpected argument ${a}`);
      disk = a;
  }
}
if (!disk) usage('missing DISK');
if (!Number.isInteger(opts.region) || opts.region < 4096 || opts.region % 512)
  usage('--region-size must be a multiple of 512, >= 4096');
if (opts.percent > 100) usage('--percent must be <= 100');

const fd = openSync(disk, opts.listOnly ? 'r' : 'r+');
const diskBytes = fstatSync(fd).size;
const read = (pos, len) => {
  const b = Buffer.alloc(len);
  readSync(fd, b, 0, len, pos);
  return b;
};

// ---- area: GPT partition containing min-offset, else [min-offset, size - 1 MiB) ----
function gptPartitions() {
  if (diskBytes < 34 * 512) return [];
  const hdr = read(512, 512);
  if (hdr.toString('latin1', 0, 8) !== 'EFI PART') return [];
  const entriesLba = Number(hdr.readBigUInt64LE(72));
  const count = hdr.readUInt32LE(80),
    size = hdr.readUInt32LE(84);
  if (size < 128 || count > 4096) return [];
  const tbl = read(entriesLba * 512, count * size);
  const parts = [];
  for (let i = 0; i < count; i++) {
    const e = tbl.subarray(i * size, (i + 1) * size);
    if (e.subarray(0, 16).every((b) => b === 0)) continue; // unused entry
    parts.push({
      index: i + 1,
      start: Number(e.readBigUInt64LE(32)) * 512,
      end: (Number(e.readBigUInt64LE(40)) + 1) * 512,
    });
  }
  return parts;
}
const part = gptPartitions().find((p) => p.start <= opts.minOffset && opts.minOffset < p.end);
const alignUp = (x) => Math.ceil(x / opts.region) * opts.region;
const alignDown = (x) => Math.floor(x / opts.region) * opts.region;
const areaStart = alignUp(Math.max(opts.minOffset, part ? part.start : 0));
const areaEnd = alignDown(Math.min(part ? part.end : diskBytes - MiB, diskBytes));
const slots = Math.max(0, (areaEnd - areaStart) / opts.region);
const want = Math.round((diskBytes * opts.percent) / 100 / opts.region);
if (want > slots) {
  console.error(
    `mutate-disk: ${opts.percent}% needs ${want} regions but only ${slots} fit in [${areaStart}, ${areaEnd})`,
  );
  process.exit(1);
}

// ---- seeded choice: xmur3 string hash -> sfc32 PRNG, partial Fisher-Yates ----
function xmur3(str) {
  let h = 1779033703 ^ str.length;
  for (let i = 0; i < str.length; i++) {
    h = Math.imul(h ^ str.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  return () => {
    h = Math.imul(h ^ (h >>> 16), 2246822507);
    h = Math.imul(h ^ (h >>> 13), 3266489909);
    return (h ^= h >>> 16) >>> 0;
  };
}
function sfc32(a, b, c, d) {
  return () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (a + b + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}
const h = xmur3(`coffer-mutate:${opts.seed}`);
const rand = sfc32(h(), h(), h(), h());
for (let i = 0; i < 15; i++) rand(); // warm up
const idx = new Uint32Array(slots);
for (let i = 0; i < slots; i++) idx[i] = i;
for (let i = 0; i < want; i++) {
  const j = i + Math.floor(rand() * (slots - i));
  const t = idx[i];
  idx[i] = idx[j];
  idx[j] = t;
}
const chosen = Array.from(idx.subarray(0, want)).sort((x, y) => x - y);
const list = chosen.map((s) => [areaStart + s * opts.region, opts.region]);

if (opts.listOnly) {
  closeSync(fd);
  process.stdout.write(JSON.stringify(list) + '\n');
  process.exit(0);
}
if (opts.listOut) writeFileSync(opts.listOut, JSON.stringify(list) + '\n');

// ---- write: position-keyed AES-CTR keystream, count bytes that really changed ----
const key = createHash('sha256').update(`coffer-mutate-data:${opts.seed}`).digest();
const zeros = Buffer.alloc(opts.region);
let bytesWritten = 0,
  bytesChanged = 0;
const t0 = process.hrtime.bigint();
for (const [off, len] of list) {
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(off / 16), 8); // counter = block number of the absolute offset
  const c = createCipheriv('aes-256-ctr', key, iv);
  const fresh = Buffer.concat([c.update(zeros.subarray(0, len)), c.final()]);
  const old = read(off, len);
  for (let i = 0; i < len; i++) if (old[i] !== fresh[i]) bytesChanged++;
  let done = 0;
  while (done < len) done += writeSync(fd, fresh, done, len - done, off + done);
  bytesWritten += len;
}
fsyncSync(fd);
closeSync(fd);

console.log(
  JSON.stringify({
    disk,
    diskBytes,
    seed: opts.seed,
    percent: opts.percent,
    partition: part ? part.index : null,
    areaStart,
    areaEnd,
    regionBytes: opts.region,
    regions: list.length,
    bytesWritten,
    bytesChanged,
    changedPercent: Number(((100 * bytesWritten) / diskBytes).toFixed(3)),
    durationMs: Number((process.hrtime.bigint() - t0) / 1000000n),
  }),
);
