#!/usr/bin/env node
// fat-fix-times.mjs IMAGE OFFSET EPOCH
// Makes a FAT32 file system reproducible: mtools stamps directories (and the
// creation/access fields of every entry) with the current time, so walk all
// directories and set those fields to EPOCH (UTC). Files keep their write time
// (mcopy -m copied it from the source). Used by make-guest-disk.sh.
import { openSync, readSync, writeSync, closeSync } from 'node:fs';

const [image, offArg, epochArg] = process.argv.slice(2);
if (!image || offArg === undefined || epochArg === undefined) {
  console.error('usage: fat-fix-times.mjs IMAGE OFFSET EPOCH');
  process.exit(2);
}
const base = Number(offArg);
const d = new Date(Number(epochArg) * 1000);
const dosDate = ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate();
const dosTime = (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1);

const fd = openSync(image, 'r+');
const read = (pos, len) => {
  const b = Buffer.alloc(len);
  readSync(fd, b, 0, len, pos);
  return b;
};

const bs = read(base, 512);
const bps = bs.readUInt16LE(11),
  spc = bs.readUInt8(13),
  rsvd = bs.readUInt16LE(14);
const nfats = bs.readUInt8(16),
  fatSz = bs.readUInt32LE(36),
  rootClus = bs.readUInt32LE(44);
if (bs.readUInt16LE(22) !== 0 || fatSz === 0) throw new Error('not a FAT32 boot sector');
const fatPos = base + rsvd * bps;
const fat = read(fatPos, fatSz * bps);
const dataPos = fatPos + nfats * fatSz * bps;
const clusBytes = spc * bps;

function chain(c) {
  const out = [];
  while (c >= 2 && c < 0x0ffffff8 && out.length < 1 << 20) {
    out.push(c);
    c = fat.readUInt32LE(c * 4) & 0x0fffffff;
  }
  return out;
}

let fixed = 0;
function walk(cluster) {
  for (const c of chain(cluster)) {
    const pos = dataPos + (c - 2) * clusBytes;
    const buf = read(pos, clusBytes);
    let dirty = false;
    for (let i = 0; i < clusBytes; i += 32) {
      const first = buf[i];
      if (first === 0x00) break; // end of directory
      const attr = buf[i + 11];
      if (first === 0xe5 || attr === 0x0f) continue; // deleted / long-name slot
      buf[i + 13] = 0; // creation time, 10 ms units
      buf.writeUInt16LE(dosTime, i + 14); // creation time
      buf.writeUInt16LE(dosDate, i + 16); // creation date
      buf.writeUInt16LE(dosDate, i + 18); // last access date
      if (attr & 0x18) {
        // directory or volume label
        buf.writeUInt16LE(dosTime, i + 22);
        buf.writeUInt16LE(dosDate, i + 24);
      }
      dirty = true;
      fixed++;
      const name = buf.toString('latin1', i, i + 11);
      if (attr & 0x10 && name !== '.          ' && name !== '..         ') {
        walk((buf.readUInt16LE(i + 20) << 16) | buf.readUInt16LE(i + 26));
      }
    }
    if (dirty) writeSync(fd, buf, 0, clusBytes, pos);
  }
}
walk(rootClus);
closeSync(fd);
console.error(`fat-fix-times: normalized ${fixed} directory entries`);
