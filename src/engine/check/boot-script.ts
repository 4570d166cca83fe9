import { spawn } from 'node:child_process';
import { constants as FS } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CofferError, type Op } from '../../shared/index.js';

export const BOOT_SCRIPT_LIMITS = {
  /** the script's output kept in the record: its last lines, bounded */
  tailLines: 20,
  tailChars: 2000,
  /** output read from the script (the end of it is kept) */
  outputBytes: 64 * 1024,
} as const;

/** What a boot script did (FORMAT.md §8.1 `boot.script`). */
export interface BootScriptResult {
  path: string;
  /** exit code 0 within the time limit */
  ok: boolean;
  exitCode: number | null;
  /** the signal that ended it (SIGKILL at the time limit), or null */
  signal: string | null;
  timedOut: boolean;
  elapsedMs: number;
  timeoutMs: number;
  /** the last lines of its stdout and stderr */
  output: string;
}

/**
 * The absolute path of a boot script, or USAGE when it is not an executable regular file (checked before anything
 * starts: a typo must not cost a boot).
 */
export async function requireBootScript(path: string): Promise<string> {
  const abs = resolve(path);
  const st = await stat(abs).catch(() => undefined);
  if (!st) throw new CofferError('USAGE', `--boot-script ${path}: no such file`);
  if (!st.isFile()) throw new CofferError('USAGE', `--boot-script ${path}: not a regular file`);
  const x = await access(abs, FS.X_OK).then(
    () => true,
    () => false,
  );
  if (!x) throw new CofferError('USAGE', `--boot-script ${path}: not executable (chmod +x)`);
  return abs;
}

/**
 * Runs a boot script on the host while the booted copy keeps running: its own process group, the environment plus
 * `env`, stdin closed, stdout and stderr collected (the end kept). At `timeoutMs` or when the signal fires the whole
 * group is killed (SIGKILL, by the group id of the process started here). Never rejects.
 */
export function runBootScript(
  path: string,
  env: Record<string, string>,
  o: { timeoutMs: number; cwd: string } & Op,
): Promise<BootScriptResult> {
  const started = Date.now();
  return new Promise((done) => {
    let output = '';
    let timedOut = false;
    let spawnError: string | undefined;
    const child = spawn(path, [], {
      cwd: o.cwd,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    const add = (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-BOOT_SCRIPT_LIMITS.outputBytes);
    };
    child.stdout.on('data', add);
    child.stderr.on('data', add);
    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, o.timeoutMs);
    const onAbort = () => killGroup();
    if (o.signal?.aborted) onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    process.once('exit', killGroup);
    child.on('error', (e) => {
      spawnError = e.message;
    });
    let finished = false;
    const finish = (code: number | null, sig: NodeJS.Signals | null) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(grace);
      o.signal?.removeEventListener('abort', onAbort);
      process.removeListener('exit', killGroup);
      // what the script left running in its group goes with it (it cannot outlive the booted copy it talks to)
      killGroup();
      child.stdout.destroy();
      child.stderr.destroy();
      const tail = scriptTail(`${output}${spawnError ? `\n${spawnError}` : ''}`);
      done({
        path,
        ok: !timedOut && !spawnError && code === 0,
        exitCode: code,
        signal: sig,
        timedOut,
        elapsedMs: Date.now() - started,
        timeoutMs: o.timeoutMs,
        output: tail,
      });
    };
    // 'close' waits for the pipes (all output read); a process that left the group could hold them open: at
    // 'exit' the group is killed and 'close' gets a moment, then the result is taken without the rest
    let grace: NodeJS.Timeout | undefined;
    child.on('close', (code, sig) => finish(code, sig));
    child.on('exit', (code, sig) => {
      killGroup();
      grace = setTimeout(() => finish(code, sig), 2000);
    });
  });
}

/** The last lines of a script's output, control characters removed, bounded (BOOT_SCRIPT_LIMITS). */
export function scriptTail(s: string): string {
  const lines = s
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .replace(/\r/g, '')
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '')
    .split('\n')
    .filter((l) => l.trim() !== '');
  return lines.slice(-BOOT_SCRIPT_LIMITS.tailLines).join('\n').slice(-BOOT_SCRIPT_LIMITS.tailChars);
}

/** The script's outcome in words, for the record's note and problems. */
export function describeScript(r: BootScriptResult): string {
  const name = r.path.split('/').at(-1) ?? r.path;
  const how = r.timedOut
    ? `did not finish within ${Math.round(r.timeoutMs / 100) / 10} s (killed)`
    : r.signal
      ? `was ended by ${r.signal}`
      : `exited with ${r.exitCode}`;
  const last = r.output.split('\n').at(-1) ?? '';
  return `boot script ${name} ${how}${last ? `: ${last.slice(0, 300)}` : ''}`;
}
