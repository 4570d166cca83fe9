// Crash safety: the coffer process is killed with SIGKILL at random points of backup, prune and repair (>= 30 kills).
// Afterwards verify --read-data is clean, every committed restore point restores bit-exact, and the next runs succeed
// at once (a dead process's lease on this host is recognised by its pid and taken over).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { Repository } from '../src/repository/index.js';
import { LocalBlobStore } from '../src/storage/index.js';
import { coffer, cofferAsync, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { assertSameBytes, blobFiles, expectOk, makeRandomDisk } from './helpers/more-cli.js';
import { mutate } from './helpers/disks.js';

const KiB = 1024;
const MIN_KILLS = Number(process.env.COFFER_CRASH_KILLS ?? 30);
const tmp = tempDir('coffer-kill9-');
after(() => tmp.cleanup());

function rng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** Runs coffer and SIGKILLs it after delayMs; resolves whether it was killed (false: it finished first). */
async function runAndKill(
  args: string[],
  delayMs: number,
  env: Record<string, string> = {},
): Promise<{ killed: boolean; code: number; stderr: string }> {
  const { child, done } = cofferAsync(args, env);
  const timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
  const r = await done;
  clearTimeout(timer);
  return { killed: child.signalCode === 'SIGKILL', code: r.code, stderr: r.stderr };
}

test(`SIGKILL at >= ${MIN_KILLS} random points of backup, prune and repair: verify is clean, restores bit-exact, next runs succeed`, {
  timeout: 300_000,
}, async () => {
  const seed = Number(process.env.COFFER_CRASH_SEED ?? Date.now() % 100000);
  const rand = rng(seed);
  const repo = join(tmp.path, 'repo');
  const copy = join(tmp.path, 'copy');
  const fromEnv = { COFFER_FROM_PASSWORD: 'copy password' };
  expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
  expectOk(
    coffer(['init', '--repo', copy, '--chunk-size', '64K', '--kdf-cost', '1024', '--json'], {
      COFFER_PASSWORD: 'copy password',
    }),
  );
  const images = new Map<string, string>(); // committed restore point -> image it was taken from
  // committed points, read in-process (a CLI run per check would double the test's time)
  const reader = await Repository.open(new LocalBlobStore(repo), TEST_PASSWORD);
  const known = async () => {
    const ids = new Set<string>();
    for await (const id of reader.pointIds()) ids.add(id);
    return ids;
  };
  const vms = ['vm0', 'vm1', 'vm2'];
  const disks = vms.map((vm) => join(tmp.path, `${vm}.raw`));
  for (const [i, d] of disks.entries()) makeRandomDisk(d, 4096 * KiB + 100 * i, `kill9-${i}`);

  // the repair subject: a VM only backed up once, also into the copy repository (other password, other keys)
  const repDisk = join(tmp.path, 'rep.raw');
  makeRandomDisk(repDisk, 2048 * KiB, 'kill9-rep');
  const rep = expectOk(coffer(['backup', '--repo', repo, '--vm', 'rep', repDisk, '--json']));
  images.set(rep.id, repDisk);
  expectOk(coffer(['backup', '--repo', copy, '--vm', 'rep', repDisk, '--json'], { COFFER_PASSWORD: 'copy password' }));
  const repChunks = new Set(blobFiles(repo, 'chunks'));

  // durations of an undisturbed run, to spread the kills over the whole run
  const t0 = Date.now();
  const first = expectOk(coffer(['backup', '--repo', repo, '--vm', 'vm0', disks[0]!, '--json']));
  const backupMs = Date.now() - t0;
  const snap0 = join(tmp.path, `img-0.raw`);
  copyFileSync(disks[0]!, snap0);
  images.set(first.id, snap0);
  const t1 = Date.now();
  expectOk(coffer(['prune', '--repo', repo, '--json']));
  const pruneMs = Date.now() - t1;

  let kills = 0;
  let runs = 0;
  const byOp = { backup: 0, prune: 0, repair: 0 };
  let n = 1;
  while (kills < MIN_KILLS && runs < MIN_KILLS * 3) {
    runs++;
    const pick = rand();
    if (pick < 0.5) {
      const v = Math.floor(rand() * vms.length);
      // new data in a few chunks, the rest shared with the VM's previous point
      for (let k = 0; k < 3; k++) mutate(disks[v]!, Math.floor(rand() * 60) * 64 * KiB, 64 * KiB, `s${seed}-${n}-${k}`);
      const image = join(tmp.path, `img-${n++}.raw`);
      copyFileSync(disks[v]!, image);
      const r = await runAndKill(
        ['backup', '--repo', repo, '--vm', vms[v]!, disks[v]!, '--json', '-q'],
        20 + rand() * backupMs,
      );
      if (r.killed) byOp.backup++;
      else assert.equal(r.code, 0, r.stderr);
      for (const id of await known()) if (!images.has(id)) images.set(id, image);
    } else if (pick < 0.8) {
      // garbage to collect: forget (quick, not killed) then a prune that is killed
      expectOk(coffer(['forget', '--repo', repo, '--keep-last', '2', '--json']));
      const now = await known();
      for (const id of images.keys()) if (!now.has(id)) images.delete(id);
      const r = await runAndKill(['prune', '--repo', repo, '--json'], 20 + rand() * pruneMs * 1.5);
      if (r.killed) byOp.prune++;
      else assert.equal(r.code, 0, r.stderr);
    } else {
      // damage the repair subject (one of its chunks goes), then a repair that is killed
      const present = blobFiles(repo, 'chunks').filter((c) => repChunks.has(c));
      if (present.length > 0) rmSync(join(repo, present[Math.floor(rand() * present.length)]!));
      const r = await runAndKill(['repair', '--repo', repo, '--from', copy, '--json'], 20 + rand() * backupMs, fromEnv);
      if (r.killed) byOp.repair++;
      else assert.ok(r.code === 0 || r.code === 7, r.stderr);
    }
    kills = byOp.backup + byOp.prune + byOp.repair;
  }
  console.log(`durations undisturbed: backup ${backupMs} ms, prune ${pruneMs} ms`);
  console.log(
    `seed ${seed}: ${runs} runs, ${kills} killed (backup ${byOp.backup}, prune ${byOp.prune}, repair ${byOp.repair}); ${images.size} restore points`,
  );
  assert.ok(kills >= MIN_KILLS, `only ${kills} runs were killed before they finished`);
  assert.ok(byOp.backup > 0 && byOp.prune > 0 && byOp.repair > 0, JSON.stringify(byOp));

  // the next runs succeed at once: stale leases of the killed processes are taken over (same host, dead pid)
  const repaired = expectOk(coffer(['repair', '--repo', repo, '--from', copy, '--json'], fromEnv));
  assert.deepEqual(repaired.unrepaired, []);
  const next = expectOk(coffer(['backup', '--repo', repo, '--vm', 'vm1', disks[1]!, '--json']));
  const last = join(tmp.path, 'img-last.raw');
  copyFileSync(disks[1]!, last);
  images.set(next.id, last);
  // temporary files of puts cut short by the kills: a prune removes them once they are older than a minute
  // (utimes stands in for the passing of time)
  const temps = blobFiles(repo).filter((f) => /(^|\/)\.tmp-/.test(f));
  const hourAgo = new Date(Date.now() - 3_600_000);
  for (const t of temps) utimesSync(join(repo, t), hourAgo, hourAgo);
  const pr = expectOk(coffer(['prune', '--repo', repo, '--json']));
  assert.deepEqual(pr.deferred, []);
  assert.equal(pr.tempFilesRemoved, temps.length);

  const v = expectOk(coffer(['verify', '--repo', repo, '--read-data', '--json']));
  assert.equal(v.ok, true);
  const points = await known();
  assert.deepEqual([...points].sort(), [...images.keys()].sort(), 'every committed point is known, none is half there');
  for (const [id, image] of images) {
    const out = join(tmp.path, `out-${id}.raw`);
    expectOk(coffer(['restore', id, '--repo', repo, '--disk', '0', '--target', out, '--json']));
    assertSameBytes(out, image);
    rmSync(out);
  }
  const left = blobFiles(repo, 'locks').map((f) => `${f}: ${readFileSync(join(repo, f), 'utf8')}`);
  assert.deepEqual(left, [], 'no lease (and no temporary file) left behind');
});
