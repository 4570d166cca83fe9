import { spawn } from 'node:child_process';
import { CofferError, type Op } from '../../shared/index.js';

/** Read-only filesystem checkers by filesystem kind (as `probeFilesystem` names them). None of them writes. */
export const FSCK_TOOLS: Record<string, { cmd: string; args: (file: string) => string[]; okCodes: number[] }> = {
  ext: { cmd: 'e2fsck', args: (f) => ['-n', '-f', f], okCodes: [0] },
  fat: { cmd: 'fsck.vfat', args: (f) => ['-n', f], okCodes: [0] },
  ntfs: { cmd: 'ntfsfix', args: (f) => ['-n', f], okCodes: [0] },
  xfs: { cmd: 'xfs_repair', args: (f) => ['-n', '-f', f], okCodes: [0] },
};

export interface ToolRun {
  /** exit code, or null when the tool could not be started or was stopped */
  exitCode: number | null;
  /** the end of stdout + stderr (at most OUTPUT_MAX chars) */
  output: string;
  /** why it did not run to its end (not installed, timed out) */
  problem?: string;
}

const OUTPUT_MAX = 4000;

/** Runs a command with a time limit; stopped (SIGKILL, by its pid) when the limit or the signal fires. */
export function runTool(cmd: string, args: string[], opts: { timeoutMs: number } & Op): Promise<ToolRun> {
  return new Promise((resolve) => {
    let output = '';
    let problem: string | undefined;
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    const add = (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-OUTPUT_MAX);
    };
    child.stdout.on('data', add);
    child.stderr.on('data', add);
    const stop = (why: string) => {
      problem ??= why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => stop(`${cmd} did not finish within ${opts.timeoutMs} ms`), opts.timeoutMs);
    const onAbort = () => stop('cancelled');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e: NodeJS.ErrnoException) => {
      problem ??= e.code === 'ENOENT' ? `${cmd} is not installed` : `${cmd} could not be started: ${e.message}`;
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve({ exitCode: problem ? null : code, output: output.trim(), ...(problem ? { problem } : {}) });
    });
  });
}

/** Throws CANCELLED when the signal fired. */
export function throwIfCancelled(op: Op): void {
  if (op.signal?.aborted) throw new CofferError('CANCELLED', 'the check was cancelled');
}
