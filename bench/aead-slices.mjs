#!/usr/bin/env node
// aead-slices.mjs [WORKERS=2] [MIB=512]: AES-256-GCM through Node's cipher in slices of each size, in worker threads
// as the codec pool runs it (src/crypto/aead.ts SLICE_BYTES). Node's cipher returns a fresh buffer per update(); what
// the allocator does with those decides the rate. Each worker seals (or opens) MIB MiB of 1 MiB chunks, slice by slice,
// copying each output into one reused buffer as aeadSealInto does. Prints MB/s for all workers together and the
// process's minor page faults during the run, per slice size, for sealing and for opening.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const SLICES = [65536, 32768, 16384, 8192];
if (isMainThread) {
  const workers = Number(process.argv[2] ?? 2);
  const mib = Number(process.argv[3] ?? 512);
  const once = (op, slice) =>
    new Promise((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: { op, slice, mib } });
      w.once('message', resolve).once('error', reject);
    });
  console.log('| op | slice | MB/s (all workers) | minor faults |');
  console.log('| --- | --- | --- | --- |');
  for (const op of ['seal', 'open']) {
    for (const slice of SLICES) {
      const f0 = process.resourceUsage().minorPageFault;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: workers }, () => once(op, slice)));
      const s = (performance.now() - t0) / 1000;
      const faults = process.resourceUsage().minorPageFault - f0;
      console.log(`| ${op} | ${slice / 1024} KiB | ${((workers * mib * 1.048576) / s).toFixed(0)} | ${faults} |`);
    }
  }
  console.log(`\n${workers} workers, ${mib} MiB each, node ${process.version}`);
} else {
  const { op, slice, mib } = workerData;
  const key = randomBytes(32);
  const data = randomBytes(1 << 20);
  const out = Buffer.allocUnsafeSlow(data.length + 16);
  const tag = Buffer.alloc(16);
  for (let i = 0; i < mib; i++) {
    const iv = randomBytes(12);
    const c =
      op === 'seal'
        ? createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 })
        : createDecipheriv('aes-256-gcm', key, iv, { authTagLength: 16 }).setAuthTag(tag);
    let at = 0;
    for (let o = 0; o < data.length; o += slice) at += c.update(data.subarray(o, o + slice)).copy(out, at);
    try {
      c.final(); // (opening random data with a zero tag fails authentication here, after all the work is done)
    } catch {}
  }
  parentPort.postMessage(1);
}
