import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger as PinoLogger } from 'pino';
import { TOOL_VERSION } from '../engine/index.js';
import { CofferError } from '../shared/index.js';
import { authenticate, can } from './auth.js';
import type { Catalog } from './catalog/index.js';
import { HttpCounters, renderMetrics } from './metrics.js';
import { errorReply, registerApi, Routes, type ApiContext } from './routes/index.js';
import { registerConsole } from './static.js';
import { vmStatuses } from './vm-status.js';

const MUTATING = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

/** The fastify application: error mapping, request log and audit hook, the API, OpenAPI, metrics, the console. */
export function buildApp(
  ctx: ApiContext,
  https: { cert: Buffer; key: Buffer } | undefined,
  log: PinoLogger,
): FastifyInstance {
  const { catalog, config } = ctx;
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
    void reply
      .code(404)
      .send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` } });
  });
  addAuditHook(app, catalog, http, log);

  const routes = new Routes(app, catalog);
  registerApi(routes, ctx);
  app.get('/api/openapi.json', async () => routes.openapi(TOOL_VERSION));
  app.get('/metrics', async (req, reply) => {
    if (!config.http.publicMetrics) {
      const p = authenticate(catalog, req.headers.authorization);
      req.principal = p;
      if (!can(p.role, 'read')) throw new CofferError('FORBIDDEN', 'role may not read metrics');
    }
    const vms = vmStatuses(catalog, catalog.policies.list(), ctx.vcenters.inventory());
    return reply
      .header('content-type', 'text/plain; version=0.0.4; charset=utf-8')
      .send(renderMetrics(catalog.jobs, ctx.repos, vms, http, ctx.startedAt));
  });
  registerConsole(app);
  return app;
}

/**
 * Counts and logs every answer, and audits every change (and every attempt at one): who, what, when, from where,
 * with which outcome. Routes marked `audit` (file downloads) are audited on every method; a handler that audits
 * itself sets auditDone.
 */
function addAuditHook(
  app: FastifyInstance,
  catalog: Pick<Catalog, 'audit'>,
  http: HttpCounters,
  log: PinoLogger,
): void {
  app.addHook('onResponse', async (req, reply) => {
    http.add(req.method, reply.statusCode);
    log.info(
      {
        method: req.method,
        url: req.url.split('?')[0],
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
        actor: req.principal?.actor,
      },
      'request',
    );
    if (
      (MUTATING.has(req.method) || req.auditAlways) &&
      !req.auditDone &&
      req.routeOptions.url !== '/api/v1/auth/login'
    ) {
      catalog.audit.append({
        actor: req.principal?.actor ?? 'anonymous',
        action: `${req.method} ${req.routeOptions.url ?? req.url.split('?')[0]}`,
        target: req.url.split('?')[0]!,
        remote: req.ip,
        status: reply.statusCode,
        details: req.auditDetails ?? {},
      });
    }
  });
}
