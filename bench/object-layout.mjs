#!/usr/bin/env node
// object-layout.mjs [MIB=256] [PACK_MIB=16]: the measurement behind docs/adr/0005: one blob per chunk (Coffer's
// format v1) against packs of many chunks, on Azurite (started here on 127.0.0.1, stopped by pid).
// Measures, for MIB of incompressible 1 MiB chunks, 8 requests in flight:
//   per-chunk  HEAD + PUT (If-None-Match: *) per chunk (what a backup does for a new chunk), GET per chunk
//   packs      one PUT per pack; restore with one ranged GET per chunk, and with one GET per pack
// and prints requests per GiB and MB/s. Everything local; Azurite's throughput is a floor, not Azure's.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';

const ROOT = resolve(import.meta.dirname, '..');
const MIB = Number(process.argv[2] ?? 256);
const PACK_MIB = Number(process.argv[3] ?? 16);
const CHUNK = 1024 * 1024;
const INFLIGHT = 8;
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const port = await new Promise((r) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => r(p));
  });
});
const dir = mkdtempSync(join(tmpdir(), 'coffer-layout-'));
const az = spawn(
  process.execPath,
  [
    join(ROOT, 'node_modules/azurite/dist/src/blob/main.js'),
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    String(port),
    '--location',
    dir,
    '--skipApiVersionCheck',
    '--loose',
    '--disableTelemetry',
    '--silent',
  ],
  { stdio: 'ignore' },
);
for (let i = 0; ; i++) {
  const ok = await new Promise((r) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), r(true)));
    s.once('error', () => r(false));
  });
  if (ok) break;
  if (i > 300) throw new Error('azurite did not start');
  await new Promise((r) => setTimeout(r, 50));
}
let requests = 0;
const svc = new BlobServiceClient(
  `http://127.0.0.1:${port}/devstoreaccount1`,
  new StorageSharedKeyCredential('devstoreaccount1', KEY),
  { retryOptions: { maxTries: 1 } },
);
const counted = async (fn) => {
  requests++;
  return fn();
};

async function pool(n, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: INFLIGHT }, async () => {
      while (next < n) {
        const i = next++;
        await fn(i);
      }
    }),
  );
}
async function timed(label, fn) {
  const r0 = requests;
  const t0 = performance.now();
  await fn();
  const s = (performance.now() - t0) / 1000;
  return {
    label,
    seconds: +s.toFixed(2),
    mbPerS: +((MIB * CHUNK) / 1e6 / s).toFixed(1),
    requests: requests - r0,
    requestsPerGiB: Math.round(((requests - r0) * 1024) / MIB),
  };
}

const chunks = Array.from({ length: MIB }, () => randomBytes(CHUNK));
const c1 = svc.getContainerClient('perchunk');
const c2 = svc.getContainerClient('packs');
await c1.create();
await c2.create();
const packs = Math.ceil(MIB / PACK_MIB);
const results = [];
results.push(
  await timed('per-chunk backup: HEAD + PUT per chunk', () =>
    pool(MIB, async (i) => {
      const b = c1.getBlockBlobClient(`chunks/${String(i).padStart(6, '0')}`);
      await counted(() => b.exists());
      await counted(() => b.upload(chunks[i], CHUNK, { conditions: { ifNoneMatch: '*' } }));
    }),
  ),
);
results.push(
  await timed(`packs backup: one PUT per ${PACK_MIB} MiB pack`, () =>
    pool(packs, async (p) => {
      const body = Buffer.concat(chunks.slice(p * PACK_MIB, (p + 1) * PACK_MIB));
      await counted(() =>
        c2.getBlockBlobClient(`packs/${p}`).upload(body, body.length, { conditions: { ifNoneMatch: '*' } }),
      );
    }),
  ),
);
results.push(
  await timed('per-chunk restore: GET per chunk', () =>
    pool(MIB, async (i) => {
      await counted(() => c1.getBlobClient(`chunks/${String(i).padStart(6, '0')}`).downloadToBuffer(0, CHUNK));
    }),
  ),
);
results.push(
  await timed('packs restore: ranged GET per chunk', () =>
    pool(MIB, async (i) => {
      const p = Math.floor(i / PACK_MIB);
      await counted(() => c2.getBlobClient(`packs/${p}`).downloadToBuffer((i % PACK_MIB) * CHUNK, CHUNK));
    }),
  ),
);
results.push(
  await timed('packs restore: GET per pack', () =>
    pool(packs, async (p) => {
      await counted(() =>
        c2.getBlobClient(`packs/${p}`).downloadToBuffer(0, Math.min(PACK_MIB, MIB - p * PACK_MIB) * CHUNK),
      );
    }),
  ),
);
// Tier moves (archive) and deletes (GC) cost one request per blob.
results.push(
  await timed('per-chunk: Set Blob Tier per chunk (archive)', () =>
    pool(MIB, async (i) => {
      await counted(() => c1.getBlobClient(`chunks/${String(i).padStart(6, '0')}`).setAccessTier('Archive'));
    }),
  ),
);
results.push(
  await timed('packs: Set Blob Tier per pack (archive)', () =>
    pool(packs, async (p) => {
      await counted(() => c2.getBlobClient(`packs/${p}`).setAccessTier('Archive'));
    }),
  ),
);

az.kill('SIGTERM');
await new Promise((r) => az.once('exit', r));
rmSync(dir, { recursive: true, force: true });
console.log(
  JSON.stringify(
    {
      mib: MIB,
      packMib: PACK_MIB,
      inFlight: INFLIGHT,
      note: 'requests counted by the script (one per SDK call)',
      results,
    },
    null,
    1,
  ),
);
console.log('\n| operation | s | MB/s | requests | requests per GiB |\n| --- | --- | --- | --- | --- |');
for (const r of results)
  console.log(`| ${r.label} | ${r.seconds} | ${r.mbPerS} | ${r.requests} | ${r.requestsPerGiB} |`);
