#!/usr/bin/env node
// vsphere-hotadd.mjs [SIZE_MIB=4096] [WORKDIR]: HotAdd read throughput against the simulated vCenter (issue 14, item 7).
// A vSAN VM (DC0_C0_VSAN0) gets a guest-like disk of SIZE_MIB (3/4 data in 1 MiB runs, 1/4 holes); the launcher
// plays the proxy's guest (by-id symlink to the object's file). In the same run: (1) a full backup over hot-add,
// (2) a raw file backup of the same image (same bytes, own repository), (3) 2% of the 64 KiB blocks rewritten, then an
// incremental backup over hot-add (CBT). Needs `npm run build` and the compiled test helpers (npm test ran once).
// Prints one JSON document.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const SIZE_MIB = Number(process.argv[2] ?? 4096);
const WORK = process.argv[3] ?? mkdtempSync(join(tmpdir(), 'coffer-bench-hotadd-'));
const { startVcsim } = await import(join(ROOT, 'dist-test/test/helpers/vcsim.js'));
const BIN = join(ROOT, 'dist/bundle/coffer.js');
const MiB = 1 << 20;

const run = (args, env = {}) => {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [BIN, ...args, '--json', '--no-progress'], {
    env: { ...process.env, COFFER_PASSWORD: 'bench', ...env },
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`coffer ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return { s, out: JSON.parse(r.stdout) };
};

mkdirSync(WORK, { recursive: true });
const byId = join(WORK, 'by-id');
mkdirSync(byId, { recursive: true });
const vc = await startVcsim({ diskMiB: [SIZE_MIB], byIdDir: byId, dir: join(WORK, 'vcsim'), timeoutMs: 300_000 });
try {
  const disk = vc.vm('DC0_C0_VSAN0').disks[0];
  const raw = join(WORK, 'guest.raw');
  // the same bytes into the vSAN object and a raw image
  const fo = openSync(disk.dataLocalPath, 'r+');
  const fr = openSync(raw, 'w');
  for (let off = 0; off < SIZE_MIB * MiB; off += MiB) {
    if ((off / MiB) % 4 === 3) continue; // a hole every 4 MiB
    const b = randomBytes(MiB);
    writeSync(fo, b, 0, MiB, off);
    writeSync(fr, b, 0, MiB, off);
  }
  closeSync(fo);
  closeSync(fr);
  spawnSync('truncate', ['-s', `${SIZE_MIB}M`, raw]);
  const uuidFile = join(WORK, 'product_uuid');
  writeFileSync(uuidFile, vc.vm('DC0_C0_RP0_VM0').uuid);
  const env = {
    COFFER_VSPHERE_USER: vc.username,
    COFFER_VSPHERE_PASSWORD: vc.password,
    COFFER_PRODUCT_UUID_PATH: uuidFile,
    COFFER_DISK_BY_ID_DIR: byId,
    COFFER_HOTADD_STATE_DIR: join(WORK, 'state'),
  };
  const url = `vsphere://${vc.host}:${vc.port}/DC0_C0_VSAN0`;
  for (const r of ['repo-hotadd', 'repo-raw']) run(['init', '--repo', join(WORK, r), '--kdf-cost', '1024']);
  const full = run(
    ['backup', '--repo', join(WORK, 'repo-hotadd'), url, '--insecure-tls', '--transport', 'hotadd'],
    env,
  );
  const file = run(['backup', '--repo', join(WORK, 'repo-raw'), '--vm', 'bench', raw]);
  // 2% churn: rewrite 2% of the 64 KiB blocks (spread evenly)
  const blocks = (SIZE_MIB * MiB) / 65536;
  const churn = Math.round(blocks * 0.02);
  const f2 = openSync(disk.dataLocalPath, 'r+');
  for (let i = 0; i < churn; i++) writeSync(f2, randomBytes(65536), 0, 65536, Math.floor((i * blocks) / churn) * 65536);
  closeSync(f2);
  const incr = run(
    ['backup', '--repo', join(WORK, 'repo-hotadd'), url, '--insecure-tls', '--transport', 'hotadd'],
    env,
  );
  const mibs = (bytes, s) => Math.round((bytes / MiB / s) * 10) / 10;
  const read = (o) => o.disks.reduce((a, d) => a + (d.bytesRead ?? 0), 0);
  console.log(
    JSON.stringify(
      {
        sizeMiB: SIZE_MIB,
        hotaddFull: { seconds: full.s, bytesRead: read(full.out), MiBps: mibs(read(full.out), full.s) },
        rawFileFull: { seconds: file.s, bytesRead: read(file.out), MiBps: mibs(read(file.out), file.s) },
        hotaddIncremental2pct: {
          seconds: incr.s,
          changedBlocks: churn,
          bytesRead: read(incr.out),
          changedMiB: new Set(
            Array.from({ length: churn }, (_, i) => Math.floor((Math.floor((i * blocks) / churn) * 65536) / MiB)),
          ).size,
        },
      },
      null,
      2,
    ),
  );
} finally {
  await vc.stop();
  if (!process.argv[3]) rmSync(WORK, { recursive: true, force: true });
}
