import Fastify, { type FastifyInstance } from 'fastify';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { pino } from 'pino';
import { TOOL_VERSION } from '../engine/index.js';
import { CofferError, type Logger } from '../shared/index.js';
import { registerApi } from './api.js';
import { authenticate, can } from './auth.js';
import { audit, openCatalog, type Db } from './catalog.js';
import { loadConfig, type ServerConfig } from './config.js';
import type { ServerDeps } from './deps.js';
import { errorReply, Routes } from './http-kit.js';
import { JobRunner } from './jobs.js';
import { HttpCounters, renderMetrics } from './metrics.js';
import { Notifier } from './notifier.js';
import { PolicyStore } from './policy-store.js';
import { RepositoryManager } from './repositories.js';
import { Scheduler } from './scheduler.js';
import { Vcenters } from './vcenters.js';
import { registerConsole } from './static.js';
import { vmStatuses } from './vm-status.js';

export interface ServerOptions {
  /** HOST:PORT ([v6]:PORT) */
  listen: string;
  dataDir: string;
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
  if (!m || port > 65535) throw new CofferError('USAGE', `--listen must be HOST:PORT (e.g. 127.0.0.1:8080), not ${JSON.stringify(s)}`);
  return { host: m[1] ?? m[2]!, port };
}

const MUTATING = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

/** Runs `coffer server` until deps.signal aborts; then stops scheduling, interrupts jobs and closes cleanly. */
export async function runServer(opts: ServerOptions, deps: ServerDeps): Promise<void> {
  const { host, port } = parseListen(opts.listen);
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) throw new CofferError('USAGE', '--tls-cert and --tls-key go together');
  const config = await loadConfig(opts.configFile, opts.dataDir);
  let https: { cert: Buffer; key: Buffer } | undefined;
  if (opts.tlsCert && opts.tlsKey) {
    try {
      https = { cert: await readFile(opts.tlsCert), key: await readFile(opts.tlsKey) };
    } catch (e) {
      throw new CofferError('USAGE', `cannot read the TLS certificate or key: ${(e as Error).message}`);
    }
  }
  const log = pino({ level: config.log.level, base: { service: 'coffer-server' }, redact: ['req.headers.authorization'] }, opts.logStream);
  const logger: Logger = {
    info: (m, f) => log.info(f ?? {}, m),
    warn: (m, f) => log.warn(f ?? {}, m),
    debug: (m, f) => log.debug(f ?? {}, m),
  };
  const db = openCatalog(opts.dataDir);
  for (const d of config.restoreDirs!) mkdirSync(d, { recursive: true });
  const startedAt = new Date();
  const repos = new RepositoryManager(db, config.repositories, deps, logger);
  const notifier = new Notifier(config.notifications, deps.env, logger);
  const jobs = new JobRunner(db, config, repos, deps, logger);
  const policies = new PolicyStore(db);
  const scheduler = new Scheduler(db, config, policies, jobs, notifier, logger, new Vcenters(config, deps.env, logger));
  const interrupted = jobs.recover();
  if (interrupted) logger.warn(`${interrupted} job(s) were running when the server stopped: marked failed`);
  jobs.retentionOf = (id) => {
    try {
      const p = policies.get(id);
      return p.retention ? { name: p.name, retention: p.retention, pruneAfterForget: p.pruneAfterForget === true } : undefined;
    } catch {
      return undefined;
    }
  };
  jobs.onFinished = (job) => {
    log.info({ job: job.id, kind: job.kind, vm: job.vm, status: job.status, error: job.error }, 'job finished');
    if (job.status === 'failed' || job.status === 'succeeded') {
      notifier.notify({
        event: job.status === 'failed' ? 'job.failed' : 'job.succeeded',
        time: new Date().toISOString(),
        summary: `${job.kind} job ${job.id}${job.vm ? ` of VM ${job.vm}` : ''} ${job.status}${job.error ? `: ${job.error.message}` : ''}`,
        job: { id: job.id, kind: job.kind, vm: job.vm, repository: job.repository, status: job.status, error: job.error, attempt: job.attempt },
      });
    }
    if (job.kind === 'backup') scheduler.checkSla();
  };

  const app = buildApp(db, config, https, log, { repos, jobs, policies, scheduler, startedAt });
  try {
    await app.listen({ host, port });
  } catch (e) {
    db.close();
    throw new CofferError('USAGE', `cannot listen on ${opts.listen}: ${(e as Error).message}`);
  }
  const addr = app.server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const url = `${https ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
  if (opts.pidFile) await writeFile(opts.pidFile, `${process.pid}\n`);
  log.info({ url, dataDir: opts.dataDir, version: TOOL_VERSION, repositories: repos.names() }, 'coffer server listening');
  opts.onListening?.(url);
  jobs.start();
  scheduler.start();
  void repos.syncAll().then(() => scheduler.checkSla());

  if (!deps.signal.aborted) await new Promise<void>((r) => deps.signal.addEventListener('abort', () => r(), { once: true }));
  log.info('shutting down');
  scheduler.stop();
  await jobs.shutdown();
  await app.close();
  await repos.close();
  await notifier.drain();
  db.close();
  if (opts.pidFile) await rm(opts.pidFile, { force: true });
}

function buildApp(
  db: Db,
  config: ServerConfig,
  https: { cert: Buffer; key: Buffer } | undefined,
  log: import('pino').Logger,
  parts: { repos: RepositoryManager; jobs: JobRunner; policies: PolicyStore; scheduler: Scheduler; startedAt: Date },
): FastifyInstance {
  const app = Fastify({
    loggerInstance: log,
    disableRequestLogging: true,
    bodyLimit: config.http.bodyLimitBytes,
    // a client gets 30 s to send its request (slow-loris); responses (SSE) may last longer
    requestTimeout: 30_000,
    // on shutdown, open SSE streams of jobs that never started must not keep the server alive
    forceCloseConnections: true,
    ...(https ? { https } : {}),
  } as never) as unknown as FastifyInstance;
  const http = new HttpCounters();

  app.setErrorHandler((e, req, reply) => {
    const { status, body } = errorReply(e);
    if (status >= 500) log.error({ err: e, url: req.url }, 'request failed');
    void reply.code(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` } });
  });
  app.addHook('onResponse', async (req, reply) => {
    http.add(req.method, reply.statusCode);
    log.info({ method: req.method, url: req.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime), actor: req.principal?.actor }, 'request');
    // every change (and every attempt at one) is audited: who, what, when, from where, with which outcome
    // routes marked `audit` (file downloads) are audited on every method; a handler that audits itself sets auditDone
    if ((MUTATING.has(req.method) || req.auditAlways) && !req.auditDone && req.routeOptions.url !== '/api/v1/auth/login') {
      audit(db, {
        actor: req.principal?.actor ?? 'anonymous',
        action: `${req.method} ${req.routeOptions.url ?? req.url.split('?')[0]}`,
        target: req.url.split('?')[0]!,
        remote: req.ip,
        status: reply.statusCode,
        details: req.auditDetails ?? {},
      });
    }
  });

  const routes = new Routes(app, db);
  registerApi(routes, { db, config, ...parts });
  app.get('/api/openapi.json', async () => routes.openapi(TOOL_VERSION));
  app.get('/metrics', async (req, reply) => {
    if (!config.http.publicMetrics) {
      const p = authenticate(db, req.headers.authorization);
      req.principal = p;
      if (!can(p.role, 'read')) throw new CofferError('FORBIDDEN', 'role may not read metrics');
    }
    const vms = vmStatuses(db, parts.policies.list(), parts.scheduler.vcenters.inventory());
    return reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8').send(renderMetrics(db, parts.repos, vms, http, parts.startedAt));
  });
  registerConsole(app);
  return app;
}
