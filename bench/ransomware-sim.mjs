#!/usr/bin/env node
// ransomware-sim.mjs IMAGE.raw make    [--seed S] [--size-mib 128]
//                   IMAGE.raw churn   [--seed S]
//                   IMAGE.raw attack  [--seed S] [--percent 100] [--rename .locked] [--note NAME] [--keep-names 1]
//
// Guest-like changes to an ext4 image (no partition table), made with the real tools, offline (no mount needed):
//   make    mkfs.ext4 -d of a small "guest" tree: text configs and logs, compressed packages, a database file.
//   churn   one round of ordinary changes (seeded): log growth (text), now and then a package update (compressed
//           files replaced), database pages rewritten in place, a few config edits.
//   attack  what ransomware does: PERCENT % of the files (biggest first is not assumed: seeded pick) are read,
//           encrypted with `openssl enc -aes-256-ctr` and written back IN PLACE over their own blocks (found with
//           debugfs), renamed to NAME.locked, and a ransom note dropped in every directory. With --keep-names 1:
//           no rename, no note, size and mtime kept (what `openssl ... && cat > f && touch -r` in the guest leaves):
//           only the inode change time moves, set with debugfs to the time of the attack as the guest kernel would.
// Prints one JSON line: {op, changedBytes, files}.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';

const dirCache = new Map();

export const DEFAULTS = {
  seed: '1',
  percent: 100,
  sizeMib: 128,
  rename: '.locked',
  note: 'README_RESTORE_FILES.txt',
  keepNames: 0,
};

/** One operation on IMAGE (make, churn, attack); returns {op, changedBytes, files}. Usable in-process (tests). */
export function simulate(img, op, options = {}) {
  if (!['make', 'churn', 'attack'].includes(op)) throw new Error(`unknown operation ${op}`);
  const opt = { ...DEFAULTS, ...options };
  // seeded PRNG (mulberry32, seeded by sha256 of seed and operation)
  let ctr = 0;
  let state = createHash('sha256').update(`${opt.seed}:${op}`).digest().readUInt32LE(0);
  const rnd = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = (n) => Math.floor(rnd() * n);
  const words =
    'the quick brown fox jumps over lazy dog kernel service started stopped user login session error warning info debug request response ok'.split(
      ' ',
    );
  const text = (bytes) => {
    const out = [];
    let n = 0;
    while (n < bytes) {
      const line = `${new Date(1.7e12 + pick(1e9)).toISOString()} host ${words[pick(words.length)]}[${pick(9999)}]: ${Array.from({ length: 8 }, () => words[pick(words.length)]).join(' ')}\n`;
      out.push(line);
      n += line.length;
    }
    return out.join('').slice(0, bytes);
  };
  const pseudoRandom = (bytes) => {
    const out = Buffer.alloc(bytes);
    for (let o = 0; o < bytes; o += 32)
      createHash('sha256').update(`${opt.seed}:${op}:r:${ctr++}`).digest().copy(out, o);
    return out;
  };
  // a "package": gzip of mixed text and binary-ish data (compresses no further, like .deb/.rpm/.jar)
  const pkg = (bytes) =>
    gzipSync(Buffer.concat([Buffer.from(text(bytes)), pseudoRandom(bytes >> 1)])).subarray(0, bytes);

  const dbg = (cmds, write = false, batch = false) => {
    // one read command: -R (with -f debugfs echoes each command into the output)
    if (cmds.length === 1 && !write && !batch)
      return execFileSync('debugfs', ['-R', cmds[0], img], {
        encoding: 'latin1',
        stdio: ['ignore', 'pipe', 'ignore'],
        maxBuffer: 1 << 30,
      });
    const tmp = mkdtempSync(join(tmpdir(), 'rsim-'));
    try {
      writeFileSync(join(tmp, 'cmds'), cmds.join('\n') + '\n');
      return execFileSync('debugfs', [...(write ? ['-w'] : []), '-f', join(tmp, 'cmds'), img], {
        encoding: 'latin1',
        stdio: ['ignore', 'pipe', 'ignore'],
        maxBuffer: 1 << 30,
      });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  };
  let bsCache;
  const blockSize = () =>
    (bsCache ??= Number(
      /Block size:\s+(\d+)/.exec(
        execFileSync('dumpe2fs', ['-h', img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
      )[1],
    ));

  /** Every regular file: {path, size}. */
  /** Several read commands in one debugfs run: the output of each (debugfs -f echoes "debugfs: CMD" before it). */
  const dbgBatch = (cmds) => {
    if (cmds.length === 0) return [];
    const out = dbg(cmds, false, true);
    const parts = out.split(/^debugfs: .*$/m).slice(1);
    if (parts.length !== cmds.length) throw new Error(`debugfs: ${parts.length} outputs for ${cmds.length} commands`);
    return parts;
  };

  /** Every regular file: {path, size}, depth first in directory order; one debugfs run per directory level. */
  function files() {
    const listings = new Map();
    // in-process callers: the directories seen last time listed in one debugfs run (the sim adds no directory; a
    // directory not seen before falls back to the walk by levels)
    let level = dirCache.get(img) ?? ['/'];
    while (level.length) {
      const next = [];
      dbgBatch(level.map((d) => `ls -p ${d}`)).forEach((listing, i) => {
        const dir = level[i];
        const entries = [];
        for (const line of listing.split('\n')) {
          const m = /^\/(\d+)\/(\d+)\/\d+\/\d+\/(.*)\/(\d*)\/$/.exec(line);
          if (!m || m[3] === '.' || m[3] === '..' || m[3] === 'lost+found') continue;
          const path = `${dir === '/' ? '' : dir}/${m[3]}`;
          if (m[2].startsWith('04')) {
            entries.push({ dir: path });
            next.push(path);
          } else if (m[2].startsWith('10')) entries.push({ path, size: Number(m[4]) });
        }
        listings.set(dir, entries);
      });
      level = next.filter((d) => !listings.has(d));
    }
    dirCache.set(img, [...listings.keys()]);
    const out = [];
    const walk = (dir) => {
      for (const e of listings.get(dir) ?? []) {
        if (e.dir) walk(e.dir);
        else out.push(e);
      }
    };
    walk('/');
    return out;
  }

  /** The data blocks of files, in file order (one debugfs run). */
  const blocksOf = (paths) =>
    dbgBatch(paths.map((p) => `blocks ${p}`)).map((o) =>
      o
        .trim()
        .split(/\s+/)
        .filter((w) => /^\d+$/.test(w))
        .map(Number),
    );

  /** A file's content read from its blocks in the image (the files here have no holes). */
  function readContent(blocks, size) {
    const bs = blockSize();
    const out = Buffer.alloc(size);
    const fd = openSync(img, 'r');
    try {
      for (let k = 0; k < blocks.length && k * bs < size; k++)
        readSync(fd, out, k * bs, Math.min(bs, size - k * bs), blocks[k] * bs);
    } finally {
      closeSync(fd);
    }
    return out;
  }

  /** Overwrites a file's content in place (its own blocks, as an in-place encryptor does). */
  function overwriteInPlace(path, data, blocks = blocksOf([path])[0]) {
    if (blocks.length * blockSize() < data.length)
      throw new Error(`${path}: its blocks do not hold ${data.length} bytes`);
    const bs = blockSize();
    const fd = openSync(img, 'r+');
    try {
      for (let k = 0; k < blocks.length && k * bs < data.length; k++)
        writeSync(fd, data, k * bs, Math.min(bs, data.length - k * bs), blocks[k] * bs);
    } finally {
      closeSync(fd);
    }
  }

  const work = mkdtempSync(join(tmpdir(), 'rsim-w-'));
  let changed = 0;
  let touched = 0;
  const put = (cmds, path, data) => {
    const f = join(work, `f${ctr++}`);
    writeFileSync(f, data);
    cmds.push(`rm ${path}`, `write ${f} ${path}`);
    changed += data.length;
    touched++;
  };
  try {
    if (op === 'make') {
      const root = join(work, 'root');
      for (const d of ['etc', 'var/log', 'var/lib/db', 'usr/lib/pkgs', 'home/user/docs'])
        mkdirSync(join(root, d), { recursive: true });
      for (let i = 0; i < 40; i++) writeFileSync(join(root, 'etc', `conf${i}.conf`), text(2000 + pick(20000)));
      for (let i = 0; i < 6; i++) writeFileSync(join(root, 'var/log', `log${i}.log`), text(200_000 + pick(600_000)));
      for (let i = 0; i < 30; i++)
        writeFileSync(join(root, 'usr/lib/pkgs', `pkg${i}.deb`), pkg(100_000 + pick(900_000)));
      for (let i = 0; i < 60; i++)
        writeFileSync(join(root, 'home/user/docs', `doc${i}.txt`), text(20_000 + pick(200_000)));
      const db = Buffer.alloc(8 * 1024 * 1024);
      for (let p = 0; p < db.length; p += 4096) Buffer.from(text(4096)).copy(db, p); // no zero blocks (holes)
      writeFileSync(join(root, 'var/lib/db/data.db'), db);
      execFileSync('truncate', ['-s', `${opt.sizeMib}M`, img]);
      execFileSync('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', '-d', root, img], {
        stdio: 'ignore',
      });
    } else if (op === 'churn') {
      const all = files();
      const cmds = [];
      // log growth: each log rewritten a little longer (a new version of the file: new blocks, old ones freed)
      const logs = all.filter((x) => x.path.startsWith('/var/log/')).slice(0, 2 + pick(3));
      const logBlocks = blocksOf(logs.map((f) => f.path));
      for (const [k, f] of logs.entries()) {
        const cur = readContent(logBlocks[k], f.size);
        put(
          cmds,
          f.path,
          Buffer.concat([cur.subarray(Math.max(0, cur.length - 900_000)), Buffer.from(text(20_000 + pick(80_000)))]),
        );
      }
      // a package update now and then: a few compressed files replaced
      if (rnd() < 0.3) {
        const pkgs = all.filter((x) => x.path.startsWith('/usr/lib/pkgs/'));
        for (let i = 0, n = 1 + pick(4); i < n && pkgs.length; i++)
          put(cmds, pkgs[pick(pkgs.length)].path, pkg(100_000 + pick(900_000)));
      }
      // config and document edits
      for (const f of all.filter((x) => /^\/(etc|home)\//.test(x.path)).filter(() => rnd() < 0.05))
        put(cmds, f.path, text(Math.max(500, f.size + pick(4000) - 1000)));
      if (cmds.length) dbg(cmds, true);
      // database pages rewritten in place
      const db = all.find((x) => x.path.endsWith('data.db'));
      if (db) {
        const dbBlocks = blocksOf([db.path])[0];
        const cur = readContent(dbBlocks, db.size);
        for (let i = 0, n = 20 + pick(200); i < n; i++) {
          const p = pick(cur.length / 4096) * 4096;
          Buffer.from(text(4096)).copy(cur, p);
          changed += 4096;
        }
        overwriteInPlace(db.path, cur, dbBlocks);
        touched++;
      }
    } else {
      const all = files().filter((f) => f.size > 0);
      const victims = all.filter(() => rnd() * 100 < opt.percent);
      const dirs = new Set();
      const cmds = [];
      const victimBlocks = blocksOf(victims.map((f) => f.path));
      for (const [k, f] of victims.entries()) {
        const plain = join(work, 'plain');
        const enc = join(work, 'enc');
        writeFileSync(plain, readContent(victimBlocks[k], f.size));
        // AES-256-CTR keeps the length: the encrypted file fits its own blocks (in-place encryption)
        execFileSync('openssl', [
          'enc',
          '-aes-256-ctr',
          '-K',
          randomBytes(32).toString('hex'),
          '-iv',
          randomBytes(16).toString('hex'),
          '-in',
          plain,
          '-out',
          enc,
        ]);
        overwriteInPlace(f.path, readFileSync(enc), victimBlocks[k]);
        changed += f.size;
        touched++;
        // the kernel sets ctime on every write and on touch -r; userspace cannot set it back
        if (Number(opt.keepNames)) cmds.push(`sif ${f.path} ctime @${Math.floor(Date.now() / 1000) + 1}`);
        else cmds.push(`ln ${f.path} ${f.path}${opt.rename}`, `unlink ${f.path}`);
        if (Number(opt.keepNames)) continue;
        dirs.add(f.path.slice(0, f.path.lastIndexOf('/')) || '/');
      }
      const note = join(work, 'note');
      writeFileSync(note, 'Your files are encrypted. To get them back, send 1 BTC to ...\n');
      for (const d of dirs) cmds.push(`write ${note} ${d === '/' ? '' : d}/${opt.note}`);
      if (cmds.length) dbg(cmds, true);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { op, changedBytes: changed, files: touched };
}

// command line: only when run as a script (tests import simulate)
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [img, op, ...rest] = process.argv.slice(2);
  if (!img || !['make', 'churn', 'attack'].includes(op)) {
    console.error('usage: ransomware-sim.mjs IMAGE.raw make|churn|attack [--seed S] [--percent P] [--size-mib N]');
    process.exit(2);
  }
  const opt = { ...DEFAULTS };
  for (let i = 0; i < rest.length; i += 2) {
    const k = rest[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(k in opt)) {
      console.error(`unknown option ${rest[i]}`);
      process.exit(2);
    }
    opt[k] = typeof opt[k] === 'number' ? Number(rest[i + 1]) : rest[i + 1];
  }
  console.log(JSON.stringify(simulate(img, op, opt)));
}
