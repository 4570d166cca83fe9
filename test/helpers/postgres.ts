import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive, freePort } from './servers.js';

/**
 * Why pg-native cannot load in this Node, if it cannot: node_modules holds a build of its libpq addon for Node 20's ABI
 * only, and scripts/setup.sh does not yet build one for the Node 24 run (ADR 0015). The PostgreSQL tests skip with
 * this reason there; under Node 20 they always run.
 */
export function pgNativeUnavailable(): string | undefined {
  try {
    createRequire(import.meta.url)('pg-native');
    return undefined;
  } catch (e) {
    if (process.versions.node.startsWith('20.')) throw e;
    return `pg-native does not load in Node ${process.versions.node} (built for Node 20 only): ${(e as Error).message}`;
  }
}

/** Debian's PostgreSQL binaries (scripts/setup.sh installs the `postgresql` package). */
export function postgresBinDir(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = spawnSync('ls', [base], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (existsSync(join(base, v, 'bin', 'pg_ctl'))) return join(base, v, 'bin');
  return undefined;
}

export interface RunningPostgres {
  /** postgres://coffer@127.0.0.1:PORT/DB for a fresh database (createDatabase) */
  url(db?: string): string;
  port: number;
  pid: number;
  /** CREATE DATABASE name (each test its own database) and returns its URL */
  createDatabase(name: string): string;
  /** pg_ctl restart (the same port and data): connections break, the data stays */
  restart(): void;
  stop(): void;
}

/**
 * A real PostgreSQL for tests: initdb in a temporary directory and pg_ctl start, as the unprivileged `postgres`
 * user when run as root (PostgreSQL refuses root), on 127.0.0.1 and a free port, trust authentication on the
 * loopback only; stopped by the pid in its postmaster.pid (SIGINT: fast shutdown), the directory removed.
 */
export async function startPostgres(): Promise<RunningPostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL is not installed: run scripts/setup.sh');
  const dir = mkdtempSync(join(tmpdir(), 'coffer-pg-'));
  chmodSync(dir, 0o755);
  const data = join(dir, 'data');
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  const as = (cmd: string, args: string[]) => {
    const r = asRoot
      ? spawnSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8' })
      : spawnSync(cmd, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
    return r.stdout;
  };
  if (asRoot) spawnSync('chown', ['postgres:postgres', dir]);
  as(join(bin, 'initdb'), ['-D', data, '-U', 'coffer', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  // settings on the command line (no quoting through a shell into postgresql.conf)
  const settings = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c max_connections=200`;
  const start = () =>
    as(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-o', settings, '-w', '-t', '60', 'start']);
  try {
    start();
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const pidOf = () => Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const url = (db = 'postgres') => `postgres://coffer@127.0.0.1:${port}/${db}`;
  const running: RunningPostgres = {
    url,
    port,
    pid: pidOf(),
    createDatabase(name) {
      as(join(bin, 'psql'), [
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        'coffer',
        '-d',
        'postgres',
        '-c',
        `CREATE DATABASE ${name}`,
      ]);
      return url(name);
    },
    restart() {
      as(join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);
      start();
      running.pid = pidOf();
    },
    stop() {
      const pid = running.pid;
      try {
        process.kill(pid, 'SIGINT');
      } catch {
        /* gone */
      }
      const until = Date.now() + 30_000;
      while (alive(pid) && Date.now() < until) spawnSync('sleep', ['0.05']);
      if (alive(pid)) process.kill(pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return running;
}
