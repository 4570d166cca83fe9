import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger as PinoLogger } from 'pino';
import { TOOL_VERSION } from '../engine/index.js';
import { CofferError } from '../shared/index.js';
import { authenticate, can } from './auth.js';
import type { AuditEntry, Catalog } from './catalog/index.js';
import { HttpCounters, renderMetrics } from './metrics.js';
import { errorReply, jsonParseCounter, parseJsonBody, registerApi, Routes, type ApiContext } from './routes/index.js';
import { registerConsole } from './static.js';
import { vmStatuses } from './vm-status.js';

const MUTATING = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);
/** Longer URLs get 414 (no route needs more: ids, cursors and a guest path of at most 4096 bytes, encoded). */
export const MAX_URL_LENGTH = 8 * 1024;

/** node's HTTP parser errors (before any route): a status and the {"error": {code, message}} body, then close. */
function clientError(err: NodeJS.ErrnoException, socket: import('node:net').Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'the request was not received within the request timeout']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'the request line or headers are too large']
        : err.code === 'HPE_URI_TOO_LONG'
          ? [414, 'the URL is too long']
          : [400, 'the request is not valid HTTP'];
  const body = JSON.stringify({ error: { code: 'USAGE', message } });
  const reason = {
    400: 'Bad Request',
    408: 'Request Timeout',
    414: 'URI Too Long',
    431: 'Request Header Fields Too Large',
  }[status];
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

/** The fastify application: error mapping, request log and audit hook, the API, OpenAPI, metrics, the console. */
export function buildApp(
  ctx: ApiContext,
  https: { cert: Buffer; key: Buffer } | undefined,
  log: PinoLogger,
): FastifyInstance {
  const { catalog, config } = ctx;
  const app = Fastify({
    loggerInstance: log,
    // no request log lines (the audit log records what matters); the logController form, not the deprecated
    // top-level disableRequestLogging (FSTDEP023 printed a warning at every server start)
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.http.bodyLimitBytes,
    // a client gets 30 s to send its request (slow-loris); responses (SSE) may last longer
    requestTimeout: config.http.requestTimeoutSeconds * 1000,
    // on shutdown, open SSE streams of jobs that never started must not keep the server alive
    forceCloseConnections: true,
    // errors node's HTTP parser raises before fastify sees a request (431, 408, malformed requests):
    // the documented shape
    clientErrorHandler: clientError,
    // errors fastify's router raises (bad URL encoding, a path parameter too long): the documented shape
    frameworkErrors: (
      e: { code?: string; statusCode?: number },
      _req: unknown,
      reply: { code(n: number): { send(b: unknown): void } },
    ) => {
      const status = e.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 400;
      reply.code(status).send({
        error: {
          code: 'USAGE',
          message: status === 414 ? 'a path parameter is too long' : 'the URL is not valid (bad percent-encoding)',
        },
      });
    },
    ...(https ? { https } : {}),
  } as never) as unknown as FastifyInstance;
  // API answers carry tokens and internals: never cached, never sniffed; under TLS browsers keep to https (HSTS)
  app.addHook('onRequest', async (req, reply) => {
    if (req.url.startsWith('/api/') || req.url.startsWith('/metrics'))
      void reply.header('cache-control', 'no-store').header('x-content-type-options', 'nosniff');
    if (https) void reply.header('strict-transport-security', 'max-age=31536000');
    if (req.url.length > MAX_URL_LENGTH) {
      return reply
        .code(414)
        .send({ error: { code: 'USAGE', message: `the URL is longer than ${MAX_URL_LENGTH} characters` } });
    }
  });
  const http = new HttpCounters();
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (e) {
      done(e as Error, undefined);
    }
  });

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
  // node checks requestTimeout only every 30 s, so a trickled body could be held for about twice the timeout: each
  // request gets its own timer that answers 408 (the error shape) and closes the connection when the body is late
  app.addHook('onRequest', async (req, reply) => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (!hasBody || req.raw.complete) return;
    const timer = setTimeout(() => {
      if (req.raw.complete) return;
      log.info(
        { method: req.method, url: req.url.split('?')[0]!.slice(0, 200), remote: req.ip },
        'request body timeout',
      );
      clientError(Object.assign(new Error('request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), req.raw.socket);
    }, config.http.requestTimeoutSeconds * 1000);
    timer.unref();
    req.raw.once('end', () => clearTimeout(timer));
    req.raw.once('close', () => clearTimeout(timer));
    reply.raw.once('finish', () => clearTimeout(timer));
  });
  // an unknown route answers 404 before its body is read (nobody gets a free JSON parse)
  app.addHook('onRequest', async (req, reply) => {
    if (req.is404)
      return reply.code(404).send({
        error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]!.slice(0, 200)}` },
      });
  });
  addAuditHook(app, catalog, http, log, config.audit.retentionDays);

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
      .send(renderMetrics(catalog.jobs, ctx.repos, vms, http, ctx.startedAt, jsonParseCounter.parsed));
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
  retentionDays: number,
): void {
  const anonymous = new AnonymousAudit(catalog);
  const retention = () => {
    try {
      const n = catalog.audit.deleteBefore(new Date(Date.now() - retentionDays * 86400_000));
      if (n > 0) log.info({ deleted: n, retentionDays }, 'audit retention');
    } catch (e) {
      log.error({ err: e }, 'audit retention failed');
    }
  };
  retention();
  const timers = [setInterval(() => anonymous.flush(), 60_000), setInterval(retention, 3600_000)];
  for (const t of timers) t.unref();
  app.addHook('onClose', async () => {
    for (const t of timers) clearInterval(t);
    anonymous.flush(Infinity);
  });
  app.addHook('onResponse', async (req, reply) => {
    http.add(req.method, reply.statusCode);
    const path = truncate(req.url.split('?')[0]!);
    log.info(
      {
        method: req.method,
        url: path,
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
      const entry = {
        actor: req.principal?.actor ?? 'anonymous',
        action: `${req.method} ${req.routeOptions.url ?? (req.is404 ? '(unknown route)' : path)}`,
        target: path,
        remote: req.ip,
        status: reply.statusCode,
        details: req.auditDetails ?? {},
      };
      // anonymous requests (refused, or to unknown routes) are bounded: one row per remote address per minute
      if (!req.principal) anonymous.record(entry);
      else catalog.audit.append(entry);
    }
  });
}

/** Longest path an audit row or log line keeps. */
export const AUDIT_MAX_PATH = 512;
const truncate = (p: string) => (p.length > AUDIT_MAX_PATH ? `${p.slice(0, AUDIT_MAX_PATH)}...(${p.length} chars)` : p);

/**
 * Unauthenticated requests cannot grow the audit log: the first one from a remote address in a minute is written,
 * the others of that minute are counted and written as one summary row ("anonymous.suppressed", with the count).
 * At most 10,000 addresses are tracked (bounded memory).
 */
export class AnonymousAudit {
  private readonly windows = new Map<string, { start: number; suppressed: number; statuses: Record<string, number> }>();

  constructor(private readonly catalog: Pick<Catalog, 'audit'>) {}

  record(e: AuditEntry, now = Date.now()): void {
    const w = this.windows.get(e.remote);
    if (w && now - w.start < 60_000) {
      w.suppressed++;
      w.statuses[e.status] = (w.statuses[e.status] ?? 0) + 1;
      return;
    }
    if (w) this.summary(e.remote, w);
    if (this.windows.size >= 10_000) this.flush(Infinity, now);
    this.windows.set(e.remote, { start: now, suppressed: 0, statuses: {} });
    this.catalog.audit.append({
      ...e,
      details: {
        ...(e.details ?? {}),
        note:
          'further anonymous requests from this address in the next minute ' +
          'are counted in one anonymous.suppressed row',
      },
    });
  }

  /** Writes the summary rows of windows older than `maxAgeMs` and forgets them. */
  flush(maxAgeMs = 60_000, now = Date.now()): void {
    for (const [remote, w] of this.windows) {
      if (now - w.start >= maxAgeMs || maxAgeMs === Infinity) {
        this.summary(remote, w);
        this.windows.delete(remote);
      }
    }
  }

  private summary(remote: string, w: { start: number; suppressed: number; statuses: Record<string, number> }): void {
    if (w.suppressed === 0) return;
    this.catalog.audit.append({
      actor: 'anonymous',
      action: 'anonymous.suppressed',
      target: '*',
      remote,
      status: 0,
      details: { count: w.suppressed, statuses: w.statuses, since: new Date(w.start).toISOString() },
    });
  }
}
