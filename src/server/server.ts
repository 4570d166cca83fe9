import { mkdirSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { pino } from 'pino';
import { TOOL_VERSION } from '../engine/index.js';
import { CofferError, type Logger } from '../shared/index.js';
import { buildApp } from './app.js';
import { openCatalog } from './catalog/index.js';
import { loadConfig } from './config.js';
import type { ServerDeps } from './deps.js';
import { LeaderElection } from './leader-election.js';
import { buildServices } from './services.js';

export interface ServerOptions {
  /** HOST:PORT ([v6]:PORT) */
  listen: string;
  dataDir: string;
  /** postgres://... : the shared catalog of server replicas (ADR 0015); absent: DATA/catalog.db (SQLite) */
  catalogUrl?: string;
  /** how long a job claim holds without renewal (default 30 s) */
  leaseSeconds?: number;
  /** false: this server runs no job itself, remote `coffer proxy` processes do (default: the config's localProxy) */
  localProxy?: boolean;
  configFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  pidFile?: string;
  /** where the structured (pino, JSON lines) log goes */
  logStream: Writable;
  /** called once the server accepts connections */
  onListening?: (url: string) => void;
}

export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535)
    throw new CofferError('USAGE', `--listen must be HOST:PORT (e.g. 127.0.0.1:8080), not ${JSON.stringify(s)}`);
  return { host: m[1] ?? m[2]!, port };
}

/** Runs `coffer server` until deps.signal aborts; then stops scheduling, interrupts jobs and closes cleanly. */
export async function runServer(opts: ServerOptions, deps: ServerDeps): Promise<void> {
  const { host, port } = parseListen(opts.listen);
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined))
    throw new CofferError('USAGE', '--tls-cert and --tls-key go together');
  const config = await loadConfig(opts.configFile, opts.dataDir);
  let https: { cert: Buffer; key: Buffer } | undefined;
  if (opts.tlsCert && opts.tlsKey) {
    try {
      https = { cert: await readFile(opts.tlsCert), key: await readFile(opts.tlsKey) };
    } catch (e) {
      throw new CofferError('USAGE', `cannot read the TLS certificate or key: ${(e as Error).message}`);
    }
  }
  const log = pino(
    { level: config.log.level, base: { service: 'coffer-server' }, redact: ['req.headers.authorization'] },
    opts.logStream,
  );
  const logger: Logger = {
    info: (m, f) => log.info(f ?? {}, m),
    warn: (m, f) => log.warn(f ?? {}, m),
    debug: (m, f) => log.debug(f ?? {}, m),
  };
  const catalog = openCatalog(opts.dataDir, opts.catalogUrl);
  for (const d of config.restoreDirs!) mkdirSync(d, { recursive: true });
  const startedAt = new Date();
  const services = buildServices(catalog, config, deps, logger, log, {
    ...(opts.leaseSeconds ? { leaseMs: opts.leaseSeconds * 1000 } : {}),
    ...(opts.localProxy === false ? { localProxy: false } : {}),
  });
  const { repos, runner, scheduler, sla, queue, notifier } = services;
  // one server per SQLite catalog: what is running belonged to this server's previous run. With replicas
  // (PostgreSQL) a running job may be another replica's: expired leases are taken back instead (runner.ts)
  if (catalog.dialect === 'sqlite') {
    const interrupted = queue.recover();
    if (interrupted) logger.warn(`${interrupted} job(s) were running when the server stopped: marked failed`);
  }
  const election = new LeaderElection(catalog.leaderLock(), scheduler, [sla], logger);

  const app = buildApp({ catalog, config, ...services, startedAt }, https, log);
  try {
    await app.listen({ host, port });
  } catch (e) {
    catalog.close();
    throw new CofferError('USAGE', `cannot listen on ${opts.listen}: ${(e as Error).message}`);
  }
  const addr = app.server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const url = `${https ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
  if (opts.pidFile) await writeFile(opts.pidFile, `${process.pid}\n`);
  log.info(
    {
      url,
      dataDir: opts.dataDir,
      catalog: catalog.dialect,
      owner: queue.owner,
      version: TOOL_VERSION,
      repositories: repos.names(),
    },
    'coffer server listening',
  );
  opts.onListening?.(url);
  election.start();
  runner.start();
  void repos.syncAll().then(() => sla.check());

  if (!deps.signal.aborted)
    await new Promise<void>((r) => deps.signal.addEventListener('abort', () => r(), { once: true }));
  log.info('shutting down');
  election.stop();
  await runner.shutdown();
  await app.close();
  await repos.close();
  await notifier.drain();
  catalog.close();
  if (opts.pidFile) await rm(opts.pidFile, { force: true });
}
