import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The built CLI (npm run build: the bundle package.json's `bin` names), exactly as users run it. */
export const COFFER_BIN = resolve(
  import.meta.dirname ?? new URL('.', import.meta.url).pathname,
  '../../../dist/bundle/coffer.js',
);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const TEST_PASSWORD = 'correct horse battery staple';

/** Runs `coffer ARGS` synchronously with COFFER_PASSWORD set (unless env overrides it). */
export function coffer(args: string[], env: Record<string, string | undefined> = {}): CliResult {
  const r = spawnSync(process.execPath, [COFFER_BIN, ...args], {
    env: { ...process.env, COFFER_PASSWORD: TEST_PASSWORD, ...env },
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 256 * 1024 * 1024,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Async variant for concurrency and signal tests. */
export function cofferAsync(args: string[], env: Record<string, string | undefined> = {}) {
  const child = spawn(process.execPath, [COFFER_BIN, ...args], {
    env: { ...process.env, COFFER_PASSWORD: TEST_PASSWORD, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((res) =>
    child.on('close', (code, sig) => res({ code: code ?? (sig ? 128 : -1), stdout, stderr })),
  );
  return { child, done };
}

export function tempDir(prefix = 'coffer-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Parses the JSON printed by a --json command, with the output in the failure message. */
export function json<T = any>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}):\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}
