import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** A free TCP port on 127.0.0.1 (bind to 0, read, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface Daemon {
  pid: number;
  stop(): Promise<void>;
}

/** Alive and not a zombie (a daemon that forked away is reaped by init, or not, if init does not reap). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (!alive(pid)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

function daemonFromPidFile(pidFile: string, what: string): Daemon {
  if (!existsSync(pidFile)) throw new Error(`${what} wrote no pid file`);
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return {
    pid,
    async stop() {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        return;
      }
      await waitGone(pid);
    },
  };
}

/** qemu-nbd on 127.0.0.1:port (read-only, persistent), started with a pid file, stopped by pid. */
export function startQemuNbd(
  dir: string,
  image: string,
  opts: { port: number; format?: string; bitmap?: string },
): Daemon {
  const pidFile = join(dir, `qemu-nbd-${opts.port}.pid`);
  const args = [
    '-r',
    '-t',
    '--fork',
    `--pid-file=${pidFile}`,
    '-b',
    '127.0.0.1',
    '-p',
    String(opts.port),
    '-f',
    opts.format ?? 'qcow2',
    '--shared=8',
  ];
  if (opts.bitmap) args.push('-B', opts.bitmap);
  args.push(image);
  const r = spawnSync('qemu-nbd', args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`qemu-nbd failed: ${r.stderr}`);
  return daemonFromPidFile(pidFile, 'qemu-nbd');
}

let nbdkitRuns = 0;

/** nbdkit on 127.0.0.1:port with a plugin, its arguments and filters, started with a pid file, stopped by pid. */
export function startNbdkit(
  dir: string,
  port: number,
  plugin: string,
  pluginArgs: string[],
  filters: string[] = [],
): Daemon {
  // unique: a restart on the same port must not read a stale file
  const pidFile = join(dir, `nbdkit-${port}-${++nbdkitRuns}.pid`);
  const args = [
    '--ipv4-only',
    '-i',
    '127.0.0.1',
    '-p',
    String(port),
    '-P',
    pidFile,
    ...filters.map((f) => `--filter=${f}`),
    plugin,
    ...pluginArgs,
  ];
  const r = spawnSync('nbdkit', args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`nbdkit failed: ${r.stderr}`);
  // nbdkit's forked child writes the pid file, possibly after the parent has exited: wait for it
  const until = Date.now() + 5000;
  while (!existsSync(pidFile) || readFileSync(pidFile, 'utf8').trim() === '') {
    if (Date.now() > until) throw new Error('nbdkit wrote no pid file');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  return daemonFromPidFile(pidFile, 'nbdkit');
}

export function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}
