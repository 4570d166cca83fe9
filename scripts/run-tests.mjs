#!/usr/bin/env node
// Builds nothing: `npm test` runs `npm run build` first (pretest) and compiles the tests here.
// Runs every *.test.js under dist-test/ with node's test runner, first on this Node (20 here), then on Node 24
// (.tools/node24, installed by scripts/setup.sh), each ending with its runner summary, and ends with one line
// `N passed, N failed` summing the runs. Node 24 runs by default for the full suite only; COFFER_NODE24=1 forces it
// for a filtered run too (`npm test -- fs/ext`), COFFER_NODE24=0 skips it. See docs/adr/0008-tooling-biome-node24.md.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

rmSync('dist-test', { recursive: true, force: true });
const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.test.json'], {
  stdio: 'inherit',
});
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

const files = [];
const walk = (dir) => {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.test.js')) files.push(p);
  }
};
walk('dist-test');
const filter = process.argv[2];
const selected = filter ? files.filter((f) => f.includes(filter)) : files;
// Left out of the Node 24 run (not of the Node 20 one, ADR 0008). Node 24 runs the same JavaScript: what can differ is
// the runtime underneath (child processes, sockets, TLS, fetch/undici, fs, crypto, workers, zlib, native modules). Every
// one of those surfaces stays covered on Node 24 by the files that remain (CLI surface and operations, server API,
// console, events and lifecycle, cloud stores and requests, NBD, TLS, FUSE mount, vSphere backup/restore/NFC/hot-add/
// VDDK/check, catalogs, packaging). What is left out re-runs logic the Node 20 run has just proven, on those same
// surfaces. COFFER_NODE24_FULL=1 runs everything on Node 24 too.
const NODE24_SKIP = [
  // soak, stress and fuzzing: long loops over engine and parser logic
  'test/ransomware-signals.test.js',
  // boots Debian's kernel in QEMU (TCG in CI: ~15-25 s a boot, ~1 min the file)
  'test/check-boot.test.js',
  'test/check-boot-agent.test.js',
  'test/cli-bad-input.test.js',
  'test/vmdk-hostile.test.js',
  'test/crash-kill9.test.js',
  // 60 VMs, two replicas, three proxies and a PostgreSQL restart (~65 s; PostgreSQL tests skip on Node 24 anyway)
  'test/proxy-scale.test.js',
  'test/gc-stress.test.js',
  'test/copy-gc.test.js',
  'test/cli-concurrency.test.js',
  'test/files-cooperative.test.js',
  'test/files-hostile.test.js',
  'test/fuzz-parsers.test.js',
  'src/fs/xfs/xfs-fuzz.test.js',
  'src/fs/ntfs/ntfs-fuzz.test.js',
  // guest filesystem and image readers: pure parsing over Buffers (file-level restore on Node 24: server-files, mount)
  'test/files-restore.test.js',
  'test/files-find.test.js',
  'test/files-xfs-lvm.test.js',
  'test/files-ntfs.test.js',
  'src/fs/ext.test.js',
  'src/fs/xfs/xfs.test.js',
  'src/fs/lvm/lvm.test.js',
  'src/fs/partitions.test.js',
  'src/fs/fat.test.js',
  'src/sources/container-formats.test.js',
  'test/export.test.js',
  // fault and layout variants of the vCenter conversation (SOAP over https on Node 24: vsphere-backup, -restore, -nfc,
  // -hotadd, -vddk, -check, server-vsphere)
  'test/vsphere-faults.test.js',
  'test/vsphere-midbackup.test.js',
  'test/vsphere-layout.test.js',
  'test/vsphere-quiesce.test.js',
  'test/vsphere-consistency.test.js',
  'test/vsphere-restore-site.test.js', // two simulators, ~50 s (issue 15)
  'test/vsphere-restore-metadata.test.js',
  'test/vsphere-inventory.test.js',
  // fault, retry and copy logic over the stores (the Azure/S3 SDKs on Node 24: cloud-cli, cloud-requests, cloud-lock,
  // cloud-archive, azure-store; NBD reconnects: nbd-incremental, nbd-tls, mount)
  'test/cloud-faults.test.js',
  'test/cloud-copy.test.js',
  'test/nbd-faults.test.js',
  // retention and maintenance commands (forget/hold/prune): repository logic, run by server-retention on Node 24
  'test/maint-cli.test.js',
  // the packed package, installed and run by the `node` on PATH (its bin's #!/usr/bin/env node): not the runner's Node
  'test/packaging.test.js',
];

// Longest files first (from the last full runs), the rest in name order: with two at a time, a long file started
// last would run alone at the end (the runner starts files in the order given).
const LONGEST_FIRST = [
  'test/ransomware-signals.test.js',
  'test/nbd-faults.test.js',
  'test/cli-bad-input.test.js',
  'test/vmdk-hostile.test.js',
  'test/cloud-copy.test.js',
  'test/vsphere-restore.test.js',
  'test/server-replicas.test.js',
  'test/cli-surface.test.js',
  'test/gc-stress.test.js',
  'test/cloud-faults.test.js',
  'test/cli-concurrency.test.js',
  'test/crash-kill9.test.js',
  'test/files-restore.test.js',
  'test/maint-cli.test.js',
  'test/vsphere-restore-site.test.js',
  'test/vsphere-restore-nfc.test.js',
  'test/vsphere-faults.test.js',
  'test/files-find.test.js',
  'test/files-xfs-lvm.test.js',
  'test/nbd-incremental.test.js',
  'test/server-vsphere.test.js',
];
const rank = (f) => {
  const i = LONGEST_FIRST.findIndex((s) => f.replaceAll('\\', '/').endsWith(s));
  return i < 0 ? LONGEST_FIRST.length : i;
};
const ordered = [...selected].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
const args = ['--test', '--test-reporter=spec', '--test-concurrency=2', ...ordered];
const args24 =
  process.env.COFFER_NODE24_FULL === '1'
    ? args
    : args.filter((a) => !NODE24_SKIP.some((s) => a.replaceAll('\\', '/').endsWith(s)));

const NODE24 = resolve('.tools/node24/node/bin/node');
const want24 = process.env.COFFER_NODE24 === '1' || (process.env.COFFER_NODE24 !== '0' && !filter);

/** Runs the suite on one node, streaming its output, and returns the counts from the runner's summary. */
function run(label, node, env, runArgs = args) {
  console.log(`\n=== tests on ${label} ===`);
  const started = Date.now();
  return new Promise((done) => {
    const child = spawn(node, runArgs, {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, COFFER_TEST: '1', ...env },
    });
    const counts = { pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0 };
    let tail = '';
    const scan = (line) => {
      const m = /^ℹ (pass|fail|cancelled|skipped|todo) (\d+)$/.exec(line.trim());
      if (m) counts[m[1]] = Number(m[2]);
    };
    child.stdout.on('data', (buf) => {
      process.stdout.write(buf);
      const lines = (tail + buf.toString('utf8')).split('\n');
      tail = lines.pop();
      lines.forEach(scan);
    });
    child.on('close', (code, signal) => {
      scan(tail);
      const seconds = Math.round((Date.now() - started) / 1000);
      console.log(`=== ${label}: ${counts.pass} passed, ${counts.fail + counts.cancelled} failed, ${seconds} s ===`);
      // A runner that died without a summary, or exited non-zero with no failed test, still counts as a failure.
      const broken = (code !== 0 || signal) && counts.fail + counts.cancelled === 0 ? 1 : 0;
      done({ ...counts, fail: counts.fail + counts.cancelled + broken });
    });
  });
}

const results = [await run(`node ${process.version}`, process.execPath, {})];
if (want24) {
  if (!existsSync(NODE24)) {
    console.error(`\nNode 24 is missing (${NODE24}): run \`bash scripts/setup.sh\`, or set COFFER_NODE24=0 to skip it`);
    results.push({ pass: 0, fail: 1, skipped: 0, todo: 0 });
  } else {
    const left = args.length - args24.length;
    if (left > 0)
      console.log(`\n(node 24: ${left} file(s) left out, run on node 20 (ADR 0008); COFFER_NODE24_FULL=1 runs them)`);
    // node --test without a file would discover tests by itself: no Node 24 run when every selected file is left out
    if (args24.some((a) => a.endsWith('.test.js'))) results.push(await run('node 24', NODE24, {}, args24));
  }
}
const sum = (k) => results.reduce((n, r) => n + r[k], 0);
const skipped = sum('skipped') + sum('todo');
console.log(`\n${sum('pass')} passed, ${sum('fail')} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(sum('fail') > 0 ? 1 : 0);
