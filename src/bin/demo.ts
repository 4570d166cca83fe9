#!/usr/bin/env node
/**
 * The main job on the embedded default, end to end, as a user would run it: generate a sample guest disk,
 * create a local repository, back the disk up, change 2% of it, back it up again (deduplicated), list,
 * restore the latest restore point, compare bit for bit, verify every chunk.
 * Files go to ./coffer-demo (or $COFFER_DEMO_DIR); the password is $COFFER_PASSWORD or "demo-password".
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeSync,
  ftruncateSync,
  createReadStream,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const cofferBin = join(here, 'coffer.js');
const dir = resolve(process.env.COFFER_DEMO_DIR ?? 'coffer-demo');
const repo = join(dir, 'repo');
const diskPath = join(dir, 'guest-disk.raw');
const restored = join(dir, 'restored.raw');
const env = { ...process.env, COFFER_PASSWORD: process.env.COFFER_PASSWORD ?? 'demo-password' };

function run(args: string[]): string {
  process.stdout.write(`\n$ coffer ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [cofferBin, ...args], {
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  process.stdout.write(r.stdout);
  if (r.status !== 0) {
    process.stderr.write(`demo: coffer ${args[0]} failed with exit code ${r.status}\n`);
    process.exit(r.status ?? 1);
  }
  return r.stdout;
}

/** A 1 GiB sparse guest-like disk: a partition table, OS-like files taken from this machine, free space as holes. */
function makeGuestDisk(path: string): void {
  const size = 1024 * 1024 * 1024;
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  const mbr = Buffer.alloc(512);
  mbr.writeUInt16LE(0xaa55, 510);
  mbr[446 + 4] = 0x83; // one Linux partition
  mbr.writeUInt32LE(2048, 446 + 8);
  mbr.writeUInt32LE(size / 512 - 2048, 446 + 12);
  writeSync(fd, mbr, 0, 512, 0);
  let off = 1024 * 1024;
  const limit = 360 * 1024 * 1024;
  const roots = ['/usr/lib', '/usr/share', '/usr/bin', process.execPath, join(here, '..')];
  const seen = new Set<string>();
  const visit = (p: string): void => {
    if (off >= limit || seen.has(p)) return;
    seen.add(p);
    let st;
    try {
      st = statSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      let names: string[] = [];
      try {
        names = readdirSync(p).sort();
      } catch {
        return;
      }
      for (const n of names) visit(join(p, n));
    } else if (st.isFile() && st.size > 0 && st.size < 64 * 1024 * 1024) {
      let data: Buffer;
      try {
        data = readFileSync(p);
      } catch {
        return;
      }
      const len = Math.min(data.length, limit - off);
      writeSync(fd, data, 0, len, off);
      off += Math.ceil(len / 4096) * 4096; // file systems allocate in blocks
    }
  };
  for (const r of roots) visit(r);
  closeSync(fd);
}

function changeTwoPercent(path: string): void {
  const fd = openSync(path, 'r+');
  const size = statSync(path).size;
  const region = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < (size * 0.02) / region.length; i++) {
    createHash('sha256').update(`demo-change-${i}`).digest().copy(region, 0);
    region.fill(i & 0xff, 32);
    writeSync(fd, region, 0, region.length, ((i * 7919) % (size / region.length)) * region.length);
  }
  closeSync(fd);
}

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
process.stdout.write(`Coffer demo in ${dir}\ngenerating a 1 GiB sample guest disk ${diskPath} ...\n`);
makeGuestDisk(diskPath);
run(['init', '--repo', repo]);
run(['backup', '--repo', repo, '--vm', 'demo-vm', diskPath]);
process.stdout.write('\nchanging 2% of the disk (as a running guest would) ...\n');
changeTwoPercent(diskPath);
run(['backup', '--repo', repo, '--vm', 'demo-vm', diskPath]);
run(['list', '--repo', repo]);
run(['restore', '--repo', repo, 'latest', '--disk', '0', '--target', restored]);
run(['verify', '--repo', repo, '--read-data']);
const [a, b] = [await sha256(diskPath), await sha256(restored)];
if (a !== b || !existsSync(restored)) {
  process.stderr.write(`demo: FAILED: restored disk differs from the source (${a} vs ${b})\n`);
  process.exit(1);
}
const repoBytes = spawnSync('du', ['-sb', repo], { encoding: 'utf8' }).stdout.split('\t')[0];
process.stdout.write(
  `\nOK: the restored disk is bit-identical to the source (sha256 ${a.slice(0, 16)}...).\n` +
    `Repository size ${(Number(repoBytes) / 1024 ** 2).toFixed(0)} MiB for two restore points of a 1 GiB disk.\n`,
);
