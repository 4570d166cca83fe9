#!/usr/bin/env node
// floor.mjs restore [REPO=/tmp/coffer-bench/repos/coffer] [POINT=newest]
// floor.mjs backup [IMAGE=/tmp/coffer-bench/guest-4g.raw]
// How fast could a local restore (or full backup) of one disk be on this machine, and how close does Coffer come?
// (issue 19, docs/BENCHMARKS.md). Run after bench/compare.sh: it leaves its repository and image in /tmp/coffer-bench.
//
// Does the work no run can skip, and nothing else, in one worker thread per core, each taking every cores-th chunk in
// disk order, all at once (as the codec workers run), each timing its stages:
// - restore: for every non-zero chunk of disk 0, read its file, open it with AES-256-GCM through Node's cipher (as
//   aeadOpenInto does), decompress it (zstd), pwrite it into a fresh sparse file;
// - backup: for every chunk with allocated data (`qemu-img map`, as the file source reads), read the allocated parts,
//   test for zeros and hash it (HMAC-SHA256), compress it at the repository's zstd level, seal it (AES-256-GCM). No
//   chunk is stored: what the store costs (a file, an fsync and a link per chunk) is the gap to `coffer backup`.
// The pass runs RUNS times (default 3, each after the warming below); the fastest counts and its stages are printed.
// Then the fixed costs, one after the other: `node coffer.js --version` (Node and the bundle), opening the repository
// (config, key file, scrypt) and, for a restore, loading the point and its index. The floor is
//   bundle + open (+ index) + the fastest pass (its slowest worker)
// It is a floor for this format in Node: native AES-GCM is faster (`openssl speed -evp aes-256-gcm`, printed), and a
// real run also starts its workers, hands them the chunks and keeps a window of them in flight.
// Last, the real command, RUNS times (fastest and median; a backup into a fresh repository each time, `init` not
// timed), each after WARM_PAGES MiB (default 5120) written to /dev/shm and freed (bench/compare.sh explains the VM's
// free page reporting; 0 to skip). COFFER_PASSWORD as for the repository (default coffer-bench-password).
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const ROOT = resolve(import.meta.dirname, '..');
const DIST = join(ROOT, 'dist');
const COFFER = join(DIST, 'bundle', 'coffer.js');

const { Repository, chunkBlob, sealObject } = await import(join(DIST, 'repository/index.js'));
const { LocalBlobStore } = await import(join(DIST, 'storage/index.js'));
const { aeadOpenInto, keyedDigest } = await import(join(DIST, 'crypto/index.js'));
const fmt = await import(join(DIST, 'format/index.js'));
const { compressIfWorthwhile, decodeEnvelopeHeader, envelopeAad, decompressBounded } = fmt;
const { ENVELOPE_HEADER_BYTES, COMPRESSION_ZSTD } = fmt;

/** One worker's share: the stages of every job, each timed; returns the sums. */
function work(w) {
  const stage = {};
  const time = (name, f) => {
    const t = performance.now();
    const r = f();
    stage[name] = (stage[name] ?? 0) + performance.now() - t;
    return r;
  };
  let inBytes = 0;
  let outBytes = 0;
  const bufA = Buffer.allocUnsafeSlow(w.maxChunkBytes + 64);
  const bufB = Buffer.allocUnsafeSlow(w.maxChunkBytes + 64);
  const bufC = Buffer.allocUnsafeSlow(w.maxChunkBytes + 64);
  const started = performance.now();
  if (w.mode === 'restore') {
    const out = openSync(w.target, 'r+');
    for (const { idHex, file, offset } of w.jobs) {
      const blob = time('read chunk files', () => {
        const fd = openSync(file, 'r');
        const size = fstatSync(fd).size;
        let got = 0;
        while (got < size) got += readSync(fd, bufA, got, size - got, got);
        closeSync(fd);
        return bufA.subarray(0, size);
      });
      const header = decodeEnvelopeHeader(blob, 'chunk', idHex);
      const payload = time('AES-256-GCM open (Node)', () =>
        aeadOpenInto(w.encKey, header.nonce, blob.subarray(ENVELOPE_HEADER_BYTES), envelopeAad(blob, idHex), bufB),
      );
      if (!payload) throw new Error(`chunk ${idHex}: authentication failed`);
      const plain = time('zstd decompression', () =>
        header.compression === COMPRESSION_ZSTD ? decompressBounded(payload, w.maxChunkBytes, idHex, bufC) : payload,
      );
      time('pwrite to a sparse file', () => {
        let done = 0;
        while (done < plain.length) done += writeSync(out, plain, done, plain.length - done, offset + done);
      });
      inBytes += blob.length;
      outBytes += plain.length;
    }
    closeSync(out);
  } else {
    const fd = openSync(w.image, 'r');
    const zeros = Buffer.alloc(w.maxChunkBytes);
    for (const { offset, length, parts } of w.jobs) {
      const plain = bufA.subarray(0, length);
      time('read allocated data', () => {
        plain.fill(0);
        for (const p of parts) {
          let got = 0;
          while (got < p.length) got += readSync(fd, plain, p.offset - offset + got, p.length - got, p.offset + got);
        }
      });
      const id = time('zero test + HMAC-SHA256', () =>
        plain.equals(zeros.subarray(0, length)) ? null : keyedDigest(w.idKey, plain),
      );
      inBytes += length;
      if (!id) continue;
      const payload = time(`zstd level ${w.zstdLevel}`, () => compressIfWorthwhile(plain, w.zstdLevel) ?? plain);
      const sealed = time('AES-256-GCM seal (Node)', () =>
        sealObject(w.encKey, 'chunk', id.toString('hex'), payload, null, bufB),
      );
      outBytes += sealed.length;
    }
    closeSync(fd);
  }
  return { stage, ms: performance.now() - started, chunks: w.jobs.length, inBytes, outBytes };
}

if (!isMainThread) {
  parentPort.postMessage(work(workerData));
} else {
  const mode = process.argv[2];
  if (mode !== 'restore' && mode !== 'backup') {
    console.error('usage: floor.mjs restore [REPO] [POINT] | floor.mjs backup [IMAGE]');
    process.exit(2);
  }
  const password = process.env.COFFER_PASSWORD ?? 'coffer-bench-password';
  const RUNS = Number(process.env.RUNS ?? 3);
  const WARM_MIB = Number(process.env.WARM_PAGES ?? 5120);
  const cores = availableParallelism();
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const secs = (ms) => (ms / 1000).toFixed(3);
  const mbps = (bytes, ms) => `${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`;
  const node = (args, timed = true) => {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [COFFER, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, COFFER_PASSWORD: password },
    });
    if (r.status !== 0) throw new Error(`coffer ${args.join(' ')} failed: ${r.stderr}`);
    return timed ? performance.now() - t0 : 0;
  };
  const warm = () => {
    if (!WARM_MIB) return;
    const f = `/dev/shm/floor-warm-${process.pid}`;
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${f}`, 'bs=1M', `count=${WARM_MIB}`, 'status=none']);
    } finally {
      rmSync(f, { force: true });
    }
  };
  const bundleMs = median(Array.from({ length: 5 }, () => node(['--version'])));

  let repoDir;
  let scratch;
  let indexMs = 0;
  const w = { mode };
  let jobs = [];
  let real; // one run of the real command, timed
  let what;
  if (mode === 'restore') {
    repoDir = resolve(process.argv[3] ?? '/tmp/coffer-bench/repos/coffer');
    scratch = mkdtempSync(join(dirname(repoDir), 'floor-'));
  } else {
    w.image = resolve(process.argv[3] ?? '/tmp/coffer-bench/guest-4g.raw');
    scratch = mkdtempSync(join(dirname(w.image), 'floor-'));
    repoDir = join(scratch, 'repo');
    node(['init', '--repo', repoDir], false);
  }
  try {
    const store = new LocalBlobStore(repoDir);
    let t0 = performance.now();
    const repo = await Repository.open(store, password);
    const openMs = performance.now() - t0;
    Object.assign(w, repo.codecParams);
    if (mode === 'restore') {
      const points = await repo.listPoints();
      const pointId = process.argv[4] ?? points[points.length - 1]?.id;
      if (!pointId) throw new Error(`no restore point in ${repoDir}`);
      t0 = performance.now();
      const manifest = await repo.loadManifest(pointId);
      const index = await repo.loadIndex(manifest.disks[0].indexId);
      indexMs = performance.now() - t0;
      for (let i = 0; i < index.entryCount; i++) {
        if (index.isZero(i)) continue;
        const idHex = index.id(i).toString('hex');
        jobs.push({ idHex, file: store.fileOf(chunkBlob(idHex)), offset: i * index.chunkSizeBytes });
      }
      w.target = join(scratch, 'floor.raw');
      writeFileSync(w.target, '');
      const dest = join(scratch, 'coffer.raw');
      what = `restore of point ${pointId} disk 0 from ${repoDir}`;
      real = () => {
        rmSync(dest, { force: true });
        warm();
        const ms = node(['restore', '--repo', repoDir, pointId, '--disk', '0', '--target', dest]);
        rmSync(dest, { force: true });
        return ms;
      };
    } else {
      const { FileSource } = await import(join(DIST, 'sources/index.js'));
      const source = await FileSource.open(w.image);
      const cs = repo.chunkSizeBytes;
      const byChunk = new Map();
      for await (const e of source.dataExtents()) {
        for (let at = e.offset; at < e.offset + e.length; ) {
          const i = Math.floor(at / cs);
          const end = Math.min(e.offset + e.length, (i + 1) * cs);
          if (!byChunk.has(i)) byChunk.set(i, []);
          byChunk.get(i).push({ offset: at, length: end - at });
          at = end;
        }
      }
      await source.close();
      jobs = [...byChunk]
        .sort((a, b) => a[0] - b[0])
        .map(([i, parts]) => ({ offset: i * cs, length: Math.min(cs, source.sizeBytes - i * cs), parts }));
      what = `full backup of ${w.image} (${(source.sizeBytes / 2 ** 30).toFixed(1)} GiB) into a fresh repository`;
      real = () => {
        rmSync(repoDir, { recursive: true, force: true });
        node(['init', '--repo', repoDir], false);
        warm();
        return node(['backup', '--repo', repoDir, '--vm', 'floor', w.image]);
      };
    }

    // the workers' pass RUNS times like the real command (the VM's page cache is noisy): the fastest is the floor
    const passes = [];
    for (let run = 0; run < RUNS; run++) {
      warm();
      const t1 = performance.now();
      const results = await Promise.all(
        Array.from(
          { length: cores },
          (_, k) =>
            new Promise((res, rej) => {
              const worker = new Worker(new URL(import.meta.url), {
                workerData: { ...w, jobs: jobs.filter((_, j) => j % cores === k) },
              });
              worker.once('message', res).once('error', rej);
            }),
        ),
      );
      passes.push({ results, dataMs: performance.now() - t1, slowest: Math.max(...results.map((r) => r.ms)) });
    }
    passes.sort((a, b) => a.slowest - b.slowest);
    const { results, dataMs, slowest } = passes[0];
    const stage = {};
    let inBytes = 0;
    let outBytes = 0;
    for (const r of results) {
      for (const [k, v] of Object.entries(r.stage)) stage[k] = (stage[k] ?? 0) + v;
      inBytes += r.inBytes;
      outBytes += r.outBytes;
    }
    const floorMs = bundleMs + openMs + indexMs + slowest;
    const realMs = Array.from({ length: RUNS }, real);
    const best = Math.min(...realMs);

    let aesNative = '';
    try {
      const o = execFileSync(
        'openssl',
        ['speed', '-elapsed', '-seconds', '1', '-bytes', '16384', '-evp', 'aes-256-gcm'],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        },
      );
      const k = Number(/AES-256-GCM\s+([\d.]+)k/i.exec(o)?.[1]);
      if (k) aesNative = `${((k * 1000) / 1e6).toFixed(0)} MB/s`;
    } catch {}

    const [inName, outName] = mode === 'restore' ? ['stored', 'restored'] : ['read', 'sealed'];
    console.log(`floor of the ${what}: ${jobs.length} chunks, ${(inBytes / 1e6).toFixed(0)} MB ${inName},`);
    console.log(`${(outBytes / 1e6).toFixed(0)} MB ${outName}; ${cores} cores\n`);
    console.log('| what | seconds | rate |');
    console.log('| --- | --- | --- |');
    console.log(`| node coffer.js --version (Node and the bundle) | ${secs(bundleMs)} | |`);
    console.log(`| open the repository (config, key, scrypt) | ${secs(openMs)} | |`);
    if (mode === 'restore') console.log(`| load the point and its index | ${secs(indexMs)} | |`);
    for (const [k, v] of Object.entries(stage)) console.log(`| ${k}, CPU of all workers | ${secs(v)} | |`);
    const all = passes.map((p) => secs(p.slowest)).join(', ');
    console.log(
      `| ${cores} workers together, the slowest (wall), ${RUNS} passes | ${all} | ${mbps(inBytes, dataMs)} ${inName} |`,
    );
    console.log(
      `| **floor**: bundle + open${mode === 'restore' ? ' + index' : ''} + workers | **${secs(floorMs)}** | |`,
    );
    const realName = mode === 'restore' ? 'coffer restore' : 'coffer backup';
    console.log(
      `| ${realName}, ${RUNS} runs (median) | ${realMs.map(secs).join(', ')} (**${secs(median(realMs))}**) | |`,
    );
    console.log(
      `\n${realName} / floor: ${(median(realMs) / floorMs).toFixed(2)} median, ${(best / floorMs).toFixed(2)} fastest`,
    );
    if (aesNative) console.log(`AES-256-GCM in OpenSSL itself, 16 KiB blocks: ${aesNative} (openssl speed)`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
