import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COFFER_BIN } from './cli.js';

export interface RunningProxy {
  name: string;
  pid: number;
  child: ChildProcess;
  logFile: string;
  /** its exit code (null: ended by a signal) */
  exited: Promise<number | null>;
  /** SIGKILL, as a crashed proxy VM: nothing reaches the server */
  kill(): Promise<void>;
  /** SIGSTOP: frozen, it sends nothing until resume() (or kill()) */
  pause(): void;
  /** SIGCONT after pause() */
  resume(): void;
  /** SIGTERM, then SIGKILL after 15 s */
  stop(): Promise<void>;
}

/** `coffer proxy` as our child process (token file, pid file, log file), stopped by its pid */
export function startProxy(
  dir: string,
  server: string,
  name: string,
  token: string,
  extra: string[] = [],
  opts: { pollMs?: number } = {},
): RunningProxy {
  const tokenFile = join(dir, `${name}.token`);
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const logFile = join(dir, `proxy-${name}-${Date.now()}.log`);
  const log = createWriteStream(logFile);
  const child = spawn(
    process.execPath,
    [
      COFFER_BIN,
      'proxy',
      '--server',
      server,
      '--token-file',
      tokenFile,
      '--name',
      name,
      '--poll-ms',
      String(opts.pollMs ?? 100),
      '--pid-file',
      join(dir, `proxy-${name}.pid`),
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    name,
    pid: child.pid!,
    child,
    logFile,
    exited,
    async kill() {
      if (alive()) process.kill(child.pid!, 'SIGKILL');
      await exited;
    },
    pause() {
      if (alive()) process.kill(child.pid!, 'SIGSTOP');
    },
    resume() {
      if (alive()) process.kill(child.pid!, 'SIGCONT');
    },
    async stop() {
      if (alive()) process.kill(child.pid!, 'SIGCONT');
      if (alive()) process.kill(child.pid!, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (alive()) {
        process.kill(child.pid!, 'SIGKILL');
        await exited;
      }
    },
  };
}
