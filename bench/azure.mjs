#!/usr/bin/env node
// azure.mjs (run by bench/azure.sh): a backup and a restore of SIZE_MIB of incompressible data to a new container of
// the account in AZURE_STORAGE_CONNECTION_STRING, through Coffer's own engine (dist/), every storage request counted
// (each attempt, retries included) by a wrapper under the retrying layer. Prints a report (or --json) and deletes the
// container unless KEEP=1.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, rmSync, writeSync, closeSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const DIST = resolve(import.meta.dirname, '..', 'dist');
const { CodecPool, backup, restoreDisk } = await import(join(DIST, 'engine', 'index.js'));
const { Repository } = await import(join(DIST, 'repository', 'index.js'));
const { FileSource } = await import(join(DIST, 'sources', 'index.js'));
const { ForwardingBlobStore, RetryingBlobStore, openCloudStore } = await import(join(DIST, 'storage', 'index.js'));

// List prices, USD per 10,000 operations, Azure Blob Storage block blobs, LRS, East US, pay-as-you-go, as shown on
// https://azure.microsoft.com/pricing/details/storage/blobs/ in 2024 (ASSUMPTIONS: check today's prices for your
// region and redundancy, and override with PRICE_WRITE_10K / PRICE_READ_10K). Put Blob and List Blobs are write
// operations; Get Blob and Get Blob Properties are read operations; Delete Blob is free.
const PRICES = {
  Hot: { write: 0.065, read: 0.005 },
  Cool: { write: 0.13, read: 0.013 },
  Cold: { write: 0.234, read: 0.13 },
};
const PRICES_AS_OF = '2024 (Azure Blob Storage pricing page, LRS, East US)';

const json = process.argv.includes('--json');
const sizeMib = Number(process.env.SIZE_MIB ?? 1024);
const cs = process.env.AZURE_STORAGE_CONNECTION_STRING ?? '';
const account = /(?:^|;)AccountName=([^;]+)/.exec(cs)?.[1];
if (!account) {
  console.error('azure.sh: set AZURE_STORAGE_CONNECTION_STRING (with AccountName=...) to the account to measure');
  process.exit(2);
}
const container = process.env.CONTAINER ?? `coffer-bench-${randomBytes(4).toString('hex')}`;

/** Counts each request by kind (one list call = one request per page of up to 5000 names). */
class CountingStore extends ForwardingBlobStore {
  counts = { put: 0, get: 0, stat: 0, list: 0, delete: 0 };
  put(n, d, op) {
    this.counts.put++;
    return super.put(n, d, op);
  }
  get(n, r, op) {
    this.counts.get++;
    return super.get(n, r, op);
  }
  stat(n, op) {
    this.counts.stat++;
    return super.stat(n, op);
  }
  delete(n, op) {
    this.counts.delete++;
    return super.delete(n, op);
  }
  async *list(p, op) {
    this.counts.list++;
    let n = 0;
    for await (const b of super.list(p, op)) {
      if (++n % 5000 === 0) this.counts.list++;
      yield b;
    }
  }
  snapshot() {
    return { ...this.counts };
  }
}
const diff = (a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, a[k] - b[k]]));
const total = (c) => c.put + c.get + c.stat + c.list + c.delete;

const work = mkdtempSync(join(tmpdir(), 'coffer-azure-bench-'));
const img = join(work, 'disk.raw');
const out = join(work, 'restored.raw');
const fd = openSync(img, 'w');
for (let i = 0; i < sizeMib; i++) writeSync(fd, randomBytes(1 << 20), 0, 1 << 20, i * (1 << 20));
closeSync(fd);

const url = `azure://${account}/${container}`;
const opened = await openCloudStore(url, process.env, { create: true });
const counting = new CountingStore(opened.unwrap());
const store = new RetryingBlobStore(counting);
let pool;
const result = { account, container, sizeMiB: sizeMib, pricesAsOf: PRICES_AS_OF };
try {
  const kdfN = Number(process.env.COFFER_BENCH_KDF_N ?? 0); // tests: a cheap key derivation
  const repo = await Repository.init(store, randomBytes(16).toString('hex'), kdfN ? { kdf: { N: kdfN } } : {});
  pool = new CodecPool(repo.codecParams);
  const gib = (sizeMib * 1048576) / 2 ** 30;
  const c0 = counting.snapshot();
  let t = performance.now();
  const b = await backup(repo, pool, { vm: 'bench', sources: [await FileSource.open(img)] });
  const backupS = (performance.now() - t) / 1000;
  const c1 = counting.snapshot();
  t = performance.now();
  await restoreDisk(repo, pool, { pointId: b.id, disk: 0, target: { kind: 'path', path: out } });
  const restoreS = (performance.now() - t) / 1000;
  const c2 = counting.snapshot();
  if (!readFileSync(img).equals(readFileSync(out))) throw new Error('the restored disk differs from the original');
  const up = diff(c1, c0);
  const down = diff(c2, c1);
  const perGiB = (c) => Math.round(total(c) / gib);
  const costPerTiB = (c, tier) => {
    const p = PRICES[tier];
    const w = Number(process.env.PRICE_WRITE_10K ?? p.write);
    const r = Number(process.env.PRICE_READ_10K ?? p.read);
    return +((((c.put + c.list) * w + (c.get + c.stat) * r) / 10_000) * (1024 / gib)).toFixed(2);
  };
  Object.assign(result, {
    backup: {
      seconds: +backupS.toFixed(2),
      mbPerS: +((sizeMib * 1.048576) / backupS).toFixed(1),
      requests: up,
      requestsPerGiB: perGiB(up),
      usdPerTiB: Object.fromEntries(Object.keys(PRICES).map((tier) => [tier, costPerTiB(up, tier)])),
    },
    restore: {
      seconds: +restoreS.toFixed(2),
      mbPerS: +((sizeMib * 1.048576) / restoreS).toFixed(1),
      requests: down,
      requestsPerGiB: perGiB(down),
      usdPerTiB: Object.fromEntries(Object.keys(PRICES).map((tier) => [tier, costPerTiB(down, tier)])),
    },
    retries: store.retries,
    lowestInFlightLimit: store.inFlight.lowest,
  });
} finally {
  await pool?.close();
  if (process.env.KEEP !== '1') await opened.unwrap().container.deleteIfExists();
  rmSync(work, { recursive: true, force: true });
}
if (json) console.log(JSON.stringify(result));
else {
  const r = result;
  const line = (what, x) =>
    `${what.padEnd(8)} ${String(x.seconds).padStart(8)} s ${String(x.mbPerS).padStart(8)} MB/s ` +
    `${String(x.requestsPerGiB).padStart(7)} requests/GiB   request cost per TiB (USD): ` +
    Object.entries(x.usdPerTiB)
      .map(([t, v]) => `${t} ${v}`)
      .join(', ');
  console.log(`coffer bench: ${r.sizeMiB} MiB of incompressible data, account ${r.account}, container ${r.container}`);
  console.log(line('backup', r.backup));
  console.log(line('restore', r.restore));
  console.log(`retries: ${r.retries}; lowest in-flight limit (throttling): ${r.lowestInFlightLimit}`);
  console.log(
    `prices: list prices per 10,000 operations as of ${r.pricesAsOf}: ` +
      Object.entries(PRICES)
        .map(([t, p]) => `${t} write ${p.write} / read ${p.read}`)
        .join('; ') +
      ' (assumptions; PRICE_WRITE_10K / PRICE_READ_10K override). Storage (GB-month) and egress are not included.',
  );
}
