#!/usr/bin/env node
// GC at scale: synthesizes a repository of N distinct referenced chunks (default 100k; 1M for the full run, ~4 TiB
// logical with 1 MiB chunks) directly in the on-disk format through the repository code (tiny sealed chunk blobs,
// real fixed indexes and manifests), plus 10% garbage chunks and a few forgotten points, then runs
// `coffer prune` under /usr/bin/time -v and a dedup lookup workload, and prints time and peak RSS.
//
//   npm run build && node bench/gc-scale.mjs [--chunks 100000] [--points 100] [--dir /tmp/coffer-gc-scale] [--keep]
//
// Layout of the synthetic history: point k references entries [k*s, k*s + E) of the id space (mod N), E = 4N/P
// entries per point (a 4 GiB disk per 1000 chunks at 1 MiB), so neighbouring points share most chunks, like a
// forever-incremental chain, and the union of all points is exactly N chunks.
// Not compared with restic prune: restic would need its own repository of the same shape, which only full restic
// backups of ~4 TiB can produce (its pack/index format cannot be synthesized through restic's CLI cheaply).
import { spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const N = Number(arg('chunks', 100_000));
const P = Number(arg('points', 100));
const dir = resolve(arg('dir', '/tmp/coffer-gc-scale'));
const keep = process.argv.includes('--keep');
const CS = 1024 * 1024;
const E = Math.ceil((4 * N) / P);
const step = Math.ceil((N - E) / Math.max(1, P - 1));
const GARBAGE = Math.floor(N / 10);
const PASSWORD = 'gc-scale';
const dist = resolve(new URL('../dist', import.meta.url).pathname);

const { Repository, chunkBlob, sealObject } = await import(join(dist, 'repository/index.js'));
const { FixedIndex } = await import(join(dist, 'format/index.js'));
const { LocalBlobStore } = await import(join(dist, 'storage/index.js'));

if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const repoDir = join(dir, 'repo');
const store = new LocalBlobStore(repoDir, { durable: false });
const repo = await Repository.init(store, PASSWORD, { chunkSizeBytes: CS, kdf: { N: 1024 } });

// chunk i: plaintext = 8 bytes of i (a tiny real chunk; its id is the keyed hash of that plaintext)
const idOf = (i) => {
  const plain = Buffer.alloc(8);
  plain.writeBigUInt64LE(BigInt(i));
  return { plain, id: createHmac('sha256', repo.keys.idKey).update(plain).digest() };
};
const t0 = Date.now();
const ids = Buffer.allocUnsafe(32 * N);
const _next = 0;
// Chunk blobs are written straight to their files (the local store's on-disk format: ROOT/chunks/ab/<id>), synchronously:
// the store's put (temp file, link, unlink) would make synthesizing a million chunks take most of an hour.
for (let d = 0; d < 256; d++) mkdirSync(join(repoDir, 'chunks', d.toString(16).padStart(2, '0')), { recursive: true });
const writeChunks = (from, to, keepIds) => {
  for (let i = from; i < to; i++) {
    const { plain, id } = idOf(i);
    if (keepIds) id.copy(ids, 32 * i);
    const hex = id.toString('hex');
    writeFileSync(join(repoDir, chunkBlob(hex)), sealObject(repo.keys.encKey, 'chunk', hex, plain, null));
    if (i % 50_000 === 0) process.stderr.write(`  chunks ${i}/${to}\r`);
  }
};
writeChunks(0, N, true);
writeChunks(N, N + GARBAGE, false); // garbage: never referenced
const tChunks = Date.now() - t0;

const t1 = Date.now();
const points = [];
for (let k = 0; k < P; k++) {
  const index = FixedIndex.create(CS, E * CS);
  for (let e = 0; e < E; e++) {
    const i = (k * step + e) % N;
    index.set(e, ids.subarray(32 * i, 32 * i + 32));
  }
  const indexId = await repo.putIndex(index);
  const id = repo.newPointId();
  const time = new Date(Date.UTC(2026, 0, 1) + k * 86_400_000).toISOString();
  await repo.commitManifest({
    formatVersion: 1,
    id,
    vm: { name: 'big', id: null },
    time,
    endTime: time,
    parent: null,
    mode: 'full',
    host: 'bench',
    tool: 'gc-scale',
    tags: [],
    consistency: { snapshot: false, quiesced: false },
    disks: [
      {
        index: 0,
        sizeBytes: E * CS,
        chunkSizeBytes: CS,
        indexId,
        chunkCount: E,
        zeroChunks: 0,
        source: 'synthetic',
        changeToken: null,
      },
    ],
    stats: { bytesRead: 0, bytesStored: 0, chunksNew: 0, chunksReused: 0, durationMs: 0 },
  });
  points.push(id);
}
const tIndexes = Date.now() - t1;
const logicalTiB = (P * E * CS) / 2 ** 40;
console.log(
  `synthesized: ${N} referenced + ${GARBAGE} garbage chunks, ${P} points x ${E} entries (${logicalTiB.toFixed(2)} TiB logical) in ${((tChunks + tIndexes) / 1000).toFixed(1)} s`,
);

const coffer = join(dist, 'bin/coffer.js');
const timed = (args) => {
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, coffer, ...args], {
    env: { ...process.env, COFFER_PASSWORD: PASSWORD },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1] ?? NaN);
  const wall = /Elapsed \(wall clock\) time.*: (.+)/.exec(r.stderr)?.[1];
  if (r.status !== 0)
    throw new Error(`coffer ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr.slice(-2000)}`);
  return { json: JSON.parse(r.stdout), rssMiB: rss / 1024, wall };
};

// 1. prune with only the garbage chunks to delete
const p1 = timed(['prune', '--repo', repoDir, '--json', '-q']);
console.log(
  `prune #1: ${p1.wall} wall, peak RSS ${p1.rssMiB.toFixed(0)} MiB; referenced ${p1.json.chunksReferenced}, deleted ${p1.json.chunksDeleted} chunks`,
);
// 2. forget the oldest 10% of points, prune again
const t2 = Date.now();
const f = spawnSync(
  process.execPath,
  [coffer, 'forget', '--repo', repoDir, '--keep-last', String(P - Math.ceil(P / 10)), '--json', '-q'],
  { env: { ...process.env, COFFER_PASSWORD: PASSWORD }, encoding: 'utf8' },
);
if (f.status !== 0) throw new Error(f.stderr);
const forgetMs = Date.now() - t2;
const p2 = timed(['prune', '--repo', repoDir, '--json', '-q']);
console.log(
  `forget (${JSON.parse(f.stdout).removed.length} points) ${forgetMs} ms; prune #2: ${p2.wall} wall, peak RSS ${p2.rssMiB.toFixed(0)} MiB; deleted ${p2.json.chunksDeleted} chunks, ${p2.json.indexesDeleted} indexes`,
);

// 3. dedup lookups as a backup does them: stat of the chunk blob (half present, half absent)
const t3 = Date.now();
const LOOKUPS = 20_000;
let hits = 0;
for (let j = 0; j < LOOKUPS; j += 64) {
  const batch = [];
  for (let b = 0; b < 64; b++) {
    const present = (j + b) % 2 === 0;
    const hex = present
      ? ids.subarray(32 * ((j * 7919 + b) % N), 32 * ((j * 7919 + b) % N) + 32).toString('hex')
      : randomBytes(32).toString('hex');
    batch.push(store.stat(chunkBlob(hex)).then((s) => s && hits++));
  }
  await Promise.all(batch);
}
const lookupMs = Date.now() - t3;
console.log(
  `dedup lookups: ${LOOKUPS} stats (${hits} found; half the ids asked for exist, minus those prune #2 deleted) in ${lookupMs} ms = ${Math.round(LOOKUPS / (lookupMs / 1000))}/s, 64 in flight`,
);
const ok = p1.rssMiB <= 512 && p2.rssMiB <= 512;
console.log(
  JSON.stringify({
    chunks: N,
    garbage: GARBAGE,
    points: P,
    entriesPerPoint: E,
    logicalTiB: Number(logicalTiB.toFixed(3)),
    prune1: { wall: p1.wall, rssMiB: Math.round(p1.rssMiB) },
    prune2: { wall: p2.wall, rssMiB: Math.round(p2.rssMiB) },
    lookupsPerSec: Math.round(LOOKUPS / (lookupMs / 1000)),
    rssWithin512MiB: ok,
  }),
);
if (!keep) rmSync(dir, { recursive: true, force: true });
if (!ok) process.exit(1);
