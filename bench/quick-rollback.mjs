#!/usr/bin/env node
// quick-rollback.mjs [SIZE_MIB=1024] [WORKDIR]: quick rollback vs a full in-place restore after 2% churn (issue 15,
// item 3) against the simulated vCenter. DC0_H0_VM1 (LocalDS_0, a flat extent) gets a guest-like disk of SIZE_MIB
// (3/4 random data in 1 MiB runs, 1/4 holes) and CBT, is backed up (http), powered off; then three times 2% of its
// 64 KiB blocks (spread evenly) are rewritten and the VM restored in place: (1) `--force --quick` (CBT: only the
// changed areas, hot-add writes; the launcher plays the proxy DC0_H0_VM0's guest), (2) `--force --quick` after a CBT
// reset (a comparison read of the whole disk), (3) `--force` (the full in-place restore: every byte PUT through /folder
// into the flat extent). Each result is checked byte for byte against the image. Needs `npm run build` and the
// compiled test helpers (npm test ran once). Prints one JSON document.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const SIZE_MIB = Number(process.argv[2] ?? 1024);
const WORK = process.argv[3] ?? mkdtempSync(join(tmpdir(), 'coffer-bench-quick-'));
const h = await import(join(ROOT, 'dist-test/test/helpers/vsphere.js'));
const BIN = join(ROOT, 'dist/bin/coffer.js');
const MiB = 1 << 20;
const BLOCK = 64 << 10;
const VM = 'DC0_H0_VM1';
const PROXY = 'DC0_H0_VM0';

const run = (args, env = {}) => {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [BIN, ...args, '--json', '--no-progress'], {
    env: { ...process.env, COFFER_PASSWORD: 'bench', ...env },
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`coffer ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return { s: Math.round(s * 100) / 100, out: JSON.parse(r.stdout) };
};
const sha = (p) => createHash('sha256').update(readFileSync(p)).digest('hex');

mkdirSync(WORK, { recursive: true });
const byId = join(WORK, 'by-id');
mkdirSync(byId, { recursive: true });
const vc = await h.startVcsim({
  diskMiB: [SIZE_MIB],
  byIdDir: byId,
  layoutVms: false,
  dir: join(WORK, 'vcsim'),
  timeoutMs: 300_000,
});
try {
  const s = await h.vcLogin(vc);
  const disk = vc.vm(VM).disks[0];
  const fo = openSync(disk.dataLocalPath, 'r+');
  for (let off = 0; off < SIZE_MIB * MiB; off += MiB)
    if ((off / MiB) % 4 !== 3) writeSync(fo, randomBytes(MiB), 0, MiB, off);
  closeSync(fo);
  const want = sha(disk.dataLocalPath);
  const uuidFile = join(WORK, 'product_uuid');
  writeFileSync(uuidFile, `${vc.vm(PROXY).uuid.toUpperCase()}\n`);
  const env = {
    COFFER_VSPHERE_USER: vc.username,
    COFFER_VSPHERE_PASSWORD: vc.password,
    COFFER_PRODUCT_UUID_PATH: uuidFile,
    COFFER_DISK_BY_ID_DIR: byId,
    COFFER_HOTADD_STATE_DIR: join(WORK, 'hotadd-state'),
  };
  const url = `vsphere://${vc.host}:${vc.port}`;
  await h.setChangeTracking(s, vc.vm(VM).ref, true);
  const repo = join(WORK, 'repo');
  run(['init', '--repo', repo, '--kdf-cost', '1024']);
  const backup = run(['backup', '--repo', repo, `${url}/${VM}`, '--insecure-tls'], env);
  await h.powerOff(s, vc.vm(VM).ref);
  const blocks = (SIZE_MIB * MiB) / BLOCK;
  const every = 50; // 2% of the blocks, spread evenly
  const churn = () => {
    const f = openSync(disk.dataLocalPath, 'r+');
    let n = 0;
    for (let b = 0; b < blocks; b += every, n++) writeSync(f, randomBytes(BLOCK), 0, BLOCK, b * BLOCK);
    closeSync(f);
    return n * BLOCK;
  };
  const base = ['restore', '--repo', repo, backup.out.id, '--to', `${url}/${VM}`, '--datastore', 'LocalDS_0'];
  const rows = [];
  for (const [name, extra, prep] of [
    ['quick rollback (CBT)', ['--force', '--quick'], async () => undefined],
    ['quick rollback after a CBT reset (comparison read)', ['--force', '--quick'], () => h.forgetChangeIds(vc)],
    ['full in-place restore (/folder PUT of every byte)', ['--force'], async () => undefined],
  ]) {
    const changed = churn();
    await prep();
    const r = run([...base, '--insecure-tls', ...extra], env);
    const ok = sha(disk.dataLocalPath) === want;
    if (!ok) throw new Error(`${name}: the disk does not equal the restore point`);
    rows.push({
      name,
      seconds: r.s,
      changedBytes: changed,
      mode: r.out.mode ?? 'full',
      bytesWritten: r.out.bytesWritten ?? r.out.bytesSent,
      bytesCompared: r.out.bytesCompared ?? 0,
      equal: ok,
    });
  }
  console.log(
    JSON.stringify(
      { diskMiB: SIZE_MIB, backupSeconds: backup.s, storedBytes: backup.out.stats?.bytesStored, rows },
      null,
      2,
    ),
  );
} finally {
  await vc.stop();
  if (!process.argv[3]) rmSync(WORK, { recursive: true, force: true });
}
