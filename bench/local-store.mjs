#!/usr/bin/env node
// local-store.mjs [DIR=/tmp] [CHUNKS=1447] [KIB=340]: what storing a full backup's chunks costs in a local repository
// (issue 19: the gap between `coffer backup` and bench/floor.mjs backup), against the disk alone.
// Writes CHUNKS sealed-chunk-sized blobs (KIB KiB of random bytes each, the bench disk's average) under a fresh
// directory in DIR, 8 at a time as a backup's window does, four ways, and prints wall and CPU seconds of each:
// - LocalBlobStore.put after a stat (what a full backup does per new chunk: stat, then a temp file, write, fsync,
//   close, link, unlink; chunk directories fsynced once at the end);
// - the same without fsync (LocalBlobStore's `durable: false`, a test option, not a product one);
// - appended to 16 MiB files, one fsync per file (how a pack format, restic's or kopia's, writes them);
// - the same appends without fsync.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const { LocalBlobStore } = await import(join(ROOT, 'dist/storage/index.js'));
const { chunkBlob } = await import(join(ROOT, 'dist/repository/index.js'));
const dir = resolve(process.argv[2] ?? '/tmp');
const N = Number(process.argv[3] ?? 1447);
const size = Number(process.argv[4] ?? 340) * 1024;
const WINDOW = 8;
const PACK = 16 * 1024 * 1024;
const data = randomBytes(size);
const ids = Array.from({ length: N }, () => randomBytes(32).toString('hex'));

async function measure(name, body) {
  const root = mkdtempSync(join(dir, 'coffer-local-store-'));
  try {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await body(root);
    const wall = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    console.log(
      `| ${name} | ${wall.toFixed(2)} | ${(c.user / 1e6).toFixed(2)} | ${(c.system / 1e6).toFixed(2)} | ` +
        `${((N * size) / 1e6 / wall).toFixed(0)} |`,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const perChunk = (durable) => async (root) => {
  const store = new LocalBlobStore(root, { durable });
  let next = 0;
  const worker = async () => {
    while (next < N) {
      const name = chunkBlob(ids[next++]);
      if (!(await store.stat(name))) await store.put(name, data);
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, worker));
  await store.flushDirs();
};

const packed = (durable) => async (root) => {
  let fh;
  let at = 0;
  let packs = 0;
  const close = async () => {
    if (!fh) return;
    if (durable) await fh.sync();
    await fh.close();
    fh = undefined;
  };
  // appends are serialized (one pack open at a time), as a pack writer is; the window only overlaps the waiting
  let chain = Promise.resolve();
  let next = 0;
  const worker = async () => {
    while (next < N) {
      next++;
      chain = chain.then(async () => {
        if (!fh || at + size > PACK) {
          await close();
          fh = await open(join(root, `pack-${packs++}`), 'wx');
          at = 0;
        }
        await fh.write(data, 0, size, at);
        at += size;
      });
      await chain;
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, worker));
  await close();
  if (durable) {
    const d = await open(root, 'r');
    await d.sync();
    await d.close();
  }
};

console.log(`${N} blobs of ${size / 1024} KiB under ${dir}, ${WINDOW} at a time\n`);
console.log('| how | wall s | user s | sys s | MB/s |');
console.log('| --- | --- | --- | --- | --- |');
await measure('LocalBlobStore: stat + put per chunk, fsync each', perChunk(true));
await measure('LocalBlobStore: stat + put per chunk, no fsync', perChunk(false));
await measure('appended to 16 MiB files, fsync each file', packed(true));
await measure('appended to 16 MiB files, no fsync', packed(false));
