import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  writeSync,
  ftruncateSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { COFFER_BIN, TEST_PASSWORD, type CliResult } from './cli.js';
import { makeDisk } from './disks.js';

/** Like `coffer()` but stdout is kept as raw bytes (for `restore --target -`). */
export function cofferRaw(
  args: string[],
  env: Record<string, string | undefined> = {},
): { code: number; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [COFFER_BIN, ...args], {
    env: { ...process.env, COFFER_PASSWORD: TEST_PASSWORD, ...env },
    timeout: 120_000,
    maxBuffer: 256 * 1024 * 1024,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/** Runs `coffer ARGS` as another user (root only: spawn's uid/gid options). */
export function cofferAs(
  uid: number,
  gid: number,
  args: string[],
  env: Record<string, string | undefined> = {},
): CliResult {
  const r = spawnSync(process.execPath, [COFFER_BIN, ...args], {
    env: { ...process.env, COFFER_PASSWORD: TEST_PASSWORD, ...env },
    encoding: 'utf8',
    timeout: 120_000,
    uid,
    gid,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The JSON values printed on stdout, one per non-empty line. */
export function jsonLines(r: { stdout: string; stderr: string; code: number }): any[] {
  const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
  try {
    return lines.map((l) => JSON.parse(l));
  } catch {
    throw new Error(`stdout is not JSON lines (exit ${r.code}):\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

/** Asserts that stderr carries no JavaScript stack trace. */
export function assertNoStack(r: { stderr: string }): void {
  const frames = r.stderr.split('\n').filter((l) => /^\s{4}at /.test(l));
  assert.deepEqual(frames, [], `stderr has a stack trace:\n${r.stderr}`);
}

/**
 * Asserts a failed `--json` run: exit code, `{error:{code,message}}` as the last JSON line on stdout,
 * no stack trace on stderr. Returns the error object.
 */
export function expectError(
  r: CliResult,
  exitCode: number,
  errorCode: string,
): { code: string; message: string; hint?: string; details: Record<string, any> } {
  const ctx = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  assert.equal(r.code, exitCode, `expected exit ${exitCode} (${errorCode}); ${ctx}`);
  const docs = jsonLines(r);
  assert.ok(docs.length > 0, `no JSON on stdout; ${ctx}`);
  const last = docs.at(-1);
  assert.ok(last && typeof last === 'object' && last.error, `last JSON line is not an error object; ${ctx}`);
  assert.equal(last.error.code, errorCode, ctx);
  assert.equal(typeof last.error.message, 'string', ctx);
  assert.ok(last.error.message.length > 0, ctx);
  assertNoStack(r);
  return last.error;
}

/**
 * A command that printed its result and then failed on what it found (verify with problems, list with damaged
 * points): the exit code says so, stdout holds exactly one JSON document, the result (no second error document).
 */
export function expectReport<T = any>(r: CliResult, exitCode: number): T {
  const ctx = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  assert.equal(r.code, exitCode, ctx);
  const docs = jsonLines(r);
  assert.equal(docs.length, 1, `expected exactly one JSON document; ${ctx}`);
  assert.ok(!docs[0].error, `expected the result, not an error document; ${ctx}`);
  assertNoStack(r);
  return docs[0] as T;
}

/** Asserts a successful run and returns the parsed single JSON document on stdout. */
export function expectOk<T = any>(r: CliResult): T {
  assert.equal(r.code, 0, `expected success, got exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assertNoStack(r);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not one JSON document:\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

/** Every regular file under DIR/PREFIX, as repository-relative blob names ('chunks/ab/ab...'), sorted. */
export function blobFiles(repoDir: string, prefix = ''): string[] {
  const out: string[] = [];
  const walk = (abs: string) => {
    if (!existsSync(abs)) return;
    for (const e of readdirSync(abs, { withFileTypes: true })) {
      const p = join(abs, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(repoDir, p).split('\\').join('/'));
    }
  };
  walk(join(repoDir, prefix));
  return out.sort();
}

/** XORs one byte of a (possibly read-only) file; returns a function that undoes it. */
export function flipByte(path: string, offset: number): () => void {
  chmodSync(path, 0o644);
  const fd = openSync(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    const size = statSync(path).size;
    assert.ok(offset < size, `offset ${offset} beyond ${path} (${size} bytes)`);
    const data = readFileSync(path);
    b[0] = data[offset]! ^ 0x5a;
    writeSync(fd, b, 0, 1, offset);
  } finally {
    closeSync(fd);
  }
  return () => {
    flipByte(path, offset);
  };
}

/** Fast deterministic incompressible bytes: AES-256-CTR keystream keyed by the seed. */
export function fastPrng(seed: string, length: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  const c = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return c.update(Buffer.alloc(length));
}

/** Writes an incompressible disk of `sizeBytes` (in 8 MiB pieces, each from its own keystream). */
export function makeRandomDisk(path: string, sizeBytes: number, seed: string): void {
  const fd = openSync(path, 'w');
  try {
    const piece = 8 * 1024 * 1024;
    for (let off = 0, n = 0; off < sizeBytes; off += piece, n++) {
      const len = Math.min(piece, sizeBytes - off);
      const data = fastPrng(`${seed}:${n}`, len);
      let done = 0;
      while (done < len) done += writeSync(fd, data, done, len - done, off + done);
    }
  } finally {
    closeSync(fd);
  }
}

/** A sparse disk: `sizeBytes` of holes with random data at the given [offset, length] ranges. */
export function makeSparseDisk(path: string, sizeBytes: number, regions: [number, number][], seed: string): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, sizeBytes);
    for (const [i, [off, len]] of regions.entries()) writeSync(fd, fastPrng(`${seed}:${i}`, len), 0, len, off);
  } finally {
    closeSync(fd);
  }
}

/** Asserts two files have identical bytes (with a useful message on the first difference). */
export function assertSameBytes(actualPath: string, expectedPath: string): void {
  const a = readFileSync(actualPath);
  const e = readFileSync(expectedPath);
  assertSameBuffer(a, e, `${actualPath} vs ${expectedPath}`);
}

export function assertSameBuffer(a: Buffer, e: Buffer, what: string): void {
  assert.equal(a.length, e.length, `${what}: size ${a.length} != ${e.length}`);
  if (!a.equals(e)) {
    let i = 0;
    while (i < a.length && a[i] === e[i]) i++;
    assert.fail(`${what}: first difference at byte ${i}`);
  }
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/**
 * Bytes of a raw file that hold data (qemu-img map, i.e. SEEK_DATA/SEEK_HOLE): what a full backup of it reads,
 * since holes are skipped.
 */
export function dataBytes(path: string): number {
  const r = spawnSync('qemu-img', ['map', '--output=json', '-f', 'raw', path], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { length: number; data: boolean }[])
    .filter((e) => e.data)
    .reduce((a, e) => a + e.length, 0);
}

/** A guest-like disk (data, compressible text, holes): the shared generator of helpers/disks.ts. */
export function makeGuestDisk(path: string, sizeBytes: number, seed = 'disk'): void {
  makeDisk(path, sizeBytes, seed);
}
