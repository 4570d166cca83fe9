import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CofferError, asCofferError, type ErrorCode } from '../../shared/index.js';
import { authenticate, authenticateProxy, can, type Permission, type Principal } from '../auth.js';
import { encodeCursor, type Catalog } from '../catalog/index.js';
import { formatIssues } from '../config.js';

/**
 * The route kit every resource module (routes/<tag>.ts) uses: a route is a RouteSpec (zod schemas for params,
 * query and body, a permission, an OpenAPI tag); Routes registers it with fastify, authenticates, checks RBAC,
 * validates, and keeps it for the OpenAPI document. Also the error mapping, pagination and common parameters.
 */

/** HTTP status of each error code; the body always carries the code (docs/ERRORS.md). */
export const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  USAGE: 400,
  AMBIGUOUS: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  LOCKED: 409,
  TARGET_EXISTS: 409,
  NOT_AVAILABLE: 501,
  // a backed-up guest filesystem that is damaged or of a kind file browsing cannot read: the request was fine
  FS_CORRUPT: 422,
  FS_UNSUPPORTED: 422,
  TRANSIENT: 503,
  CATALOG_UNAVAILABLE: 503,
  PROXY_REFUSED: 403,
  PROXY_VERSION: 409,
};

export interface ErrorBody {
  error: { code: ErrorCode; message: string; hint?: string; details?: Record<string, unknown> };
}

/** Turns anything thrown in a handler into a status and a body without stack traces or internals. */
export function errorReply(e: unknown): { status: number; body: ErrorBody } {
  const fe = e as { statusCode?: number; code?: string; message?: string; validation?: unknown };
  if (
    !(e instanceof CofferError) &&
    typeof fe?.statusCode === 'number' &&
    fe.statusCode >= 400 &&
    fe.statusCode < 500
  ) {
    // fastify's own errors (body too large, malformed JSON, bad content type): safe, short messages
    const status = fe.statusCode;
    const message =
      fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? 'request body is too large'
        : fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? 'unsupported content type (send application/json)'
          : fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
            ? 'body: a JSON body is required'
            : status === 400 && /JSON/i.test(fe.message ?? '')
              ? `body is not valid JSON: ${(fe.message ?? '').slice(0, 200)}`
              : (fe.message ?? 'bad request').slice(0, 300);
    return {
      status,
      body: {
        error: {
          code:
            status === 401 ? 'UNAUTHENTICATED' : status === 403 ? 'FORBIDDEN' : status === 404 ? 'NOT_FOUND' : 'USAGE',
          message,
        },
      },
    };
  }
  const err = asCofferError(e);
  const status = HTTP_STATUS[err.code] ?? 500;
  if (err.code === 'INTERNAL')
    return { status, body: { error: { code: 'INTERNAL', message: 'internal error (logged on the server)' } } };
  const details =
    err.details && Object.keys(err.details).length > 0 && err.code === 'USAGE' ? { details: err.details } : {};
  return {
    status,
    body: { error: { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}), ...details } },
  };
}

export interface RouteContext<B, Q, P> {
  principal: Principal | undefined;
  body: B;
  query: Q;
  params: P;
  remote: string;
  req: FastifyRequest;
  reply: FastifyReply;
  /** what the audit record of this request says besides method, route and status */
  audit(details: Record<string, unknown>): void;
}

export interface RouteSpec<B extends z.ZodType, Q extends z.ZodType, P extends z.ZodType> {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  summary: string;
  tag: string;
  /** null: no authentication (health, OpenAPI); 'proxy': a proxy token (the `coffer proxy` protocol) only */
  permission: Permission | 'proxy' | null;
  body?: B;
  query?: Q;
  params?: P;
  status?: number;
  response?: string;
  /** audit every request of this route, also GETs and refused ones (file downloads) */
  audit?: boolean;
  handler(ctx: RouteContext<z.infer<B>, z.infer<Q>, z.infer<P>>): unknown;
}

type AnyRoute = RouteSpec<z.ZodType, z.ZodType, z.ZodType>;

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
    auditDetails?: Record<string, unknown>;
    /** audit this request whatever its method (RouteSpec.audit) */
    auditAlways?: boolean;
    /** the handler wrote this request's audit record itself (a streamed download, audited when it ends) */
    auditDone?: boolean;
    /** the proxy token of a proxy-protocol request */
    proxyToken?: { tokenId: string; actor: string };
  }
}

/** Registers routes from zod schemas and keeps them for the OpenAPI document (one source of truth). */
export class Routes {
  readonly all: AnyRoute[] = [];

  constructor(
    private readonly app: FastifyInstance,
    private readonly catalog: Pick<Catalog, 'tokens' | 'users'>,
  ) {}

  /**
   * Runs `fn` when the server shuts down, before open connections are force-closed: long-lived responses (event
   * streams) end with their last bytes on the wire instead of being reset mid-stream.
   */
  beforeClose(fn: () => Promise<void>): void {
    this.app.addHook('preClose', fn);
  }

  add<B extends z.ZodType = z.ZodUnknown, Q extends z.ZodType = z.ZodUnknown, P extends z.ZodType = z.ZodUnknown>(
    spec: RouteSpec<B, Q, P>,
  ): void {
    this.all.push(spec as unknown as AnyRoute);
    this.app.route({
      method: spec.method,
      url: spec.url,
      // authentication and RBAC run in onRequest, before fastify reads and parses the body: an anonymous or
      // unauthorised client never costs the server a JSON parse (issue 21 item 6)
      onRequest: async (req) => {
        if (spec.audit) req.auditAlways = true;
        if (spec.permission === 'proxy') {
          req.proxyToken = authenticateProxy(this.catalog, req.headers.authorization);
          // heartbeats, claims and progress are not audited one by one (the job log keeps what proxies did)
          req.auditDone = true;
        } else if (spec.permission !== null) {
          const principal = authenticate(this.catalog, req.headers.authorization);
          req.principal = principal;
          if (!can(principal.role, spec.permission)) {
            throw new CofferError('FORBIDDEN', `role ${principal.role} may not ${spec.summary.toLowerCase()}`);
          }
        }
      },
      handler: async (req, reply) => {
        const parse = (schema: z.ZodType | undefined, value: unknown, where: string) => {
          if (!schema) return value;
          const r = schema.safeParse(value ?? (where === 'body' ? undefined : {}));
          if (!r.success) {
            throw new CofferError('USAGE', `invalid request: ${formatIssues(r.error.issues, where)}`, {
              details: {
                issues: r.error.issues.map((i) => ({
                  path: [where, ...i.path.map(String)].join('.'),
                  message: i.message,
                })),
              },
            });
          }
          return r.data;
        };
        const params = parse(spec.params, req.params, 'params');
        const query = parse(spec.query, req.query, 'query');
        const body = parse(spec.body, req.body, 'body');
        const out = await spec.handler({
          principal: req.principal,
          body,
          query,
          params,
          remote: req.ip,
          req,
          reply,
          audit: (d: Record<string, unknown>) => (req.auditDetails = { ...(req.auditDetails ?? {}), ...d }),
        } as never);
        if (reply.sent) return reply;
        reply.code(spec.status ?? 200);
        return out ?? {};
      },
    });
  }

  openapi(version: string): unknown {
    const paths: Record<string, Record<string, unknown>> = {};
    const js = (s: z.ZodType) =>
      z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as {
        properties?: Record<string, unknown>;
        required?: string[];
      };
    for (const r of this.all) {
      const path = r.url.replace(/:([A-Za-z]+)/g, '{$1}');
      const parameters: unknown[] = [];
      for (const [where, schema] of [
        ['path', r.params],
        ['query', r.query],
      ] as const) {
        if (!schema) continue;
        const s = js(schema);
        for (const [name, ps] of Object.entries(s.properties ?? {}))
          parameters.push({
            name,
            in: where,
            required: where === 'path' || (s.required ?? []).includes(name),
            schema: ps,
          });
      }
      const op: Record<string, unknown> = {
        summary: r.summary,
        tags: [r.tag],
        ...(r.permission ? { security: [{ bearer: [] }], 'x-coffer-permission': r.permission } : { security: [] }),
        ...(parameters.length ? { parameters } : {}),
        ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: js(r.body) } } } } : {}),
        responses: {
          [String(r.status ?? 200)]: { description: r.response ?? 'success' },
          ...(r.permission
            ? { '401': { $ref: '#/components/responses/Error' }, '403': { $ref: '#/components/responses/Error' } }
            : {}),
          ...(r.body || r.query ? { '400': { $ref: '#/components/responses/Error' } } : {}),
        },
      };
      (paths[path] ??= {})[r.method.toLowerCase()] = op;
    }
    return {
      openapi: '3.0.3',
      info: {
        title: 'Coffer server API',
        version,
        description:
          'Backup policies, jobs, restore points. Errors: {"error": {"code", "message"}} with the codes of ' +
          'docs/ERRORS.md.',
      },
      servers: [{ url: '/' }],
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'an API token (coffer token create) or a session token (POST /api/v1/auth/login)',
          },
        },
        responses: {
          Error: {
            description: 'error',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  properties: {
                    error: {
                      type: 'object',
                      properties: { code: { type: 'string' }, message: { type: 'string' }, hint: { type: 'string' } },
                      required: ['code', 'message'],
                    },
                  },
                },
              },
            },
          },
        },
      },
      paths,
    };
  }
}

/** Deepest nesting of arrays and objects a JSON body may have (no route needs more than a handful). */
export const MAX_JSON_DEPTH = 32;

/** JSON bodies parsed since start (the `coffer_http_json_bodies_parsed_total` metric). */
export const jsonParseCounter = { parsed: 0 };

/**
 * The JSON body parser: refuses bodies nested deeper than MAX_JSON_DEPTH with USAGE (400) before JSON.parse runs,
 * by one linear scan of the text that skips strings.
 */
export function parseJsonBody(text: string): unknown {
  jsonParseCounter.parsed++;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_JSON_DEPTH)
        throw new CofferError('USAGE', `body: JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  if (text.trim() === '') throw new CofferError('USAGE', 'body: a JSON body is required');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new CofferError('USAGE', `body is not valid JSON: ${String((e as Error).message).slice(0, 200)}`);
  }
}

export const Pagination = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(500).optional(),
});

export const IdParam = z.strictObject({ id: z.string().min(1).max(100) });
export const JobIdParam = z.strictObject({ id: z.coerce.number().int().positive() });

/** One page of `rows` (fetched with limit + 1): the items and the cursor of the next page (null at the end). */
export function page<T>(
  rows: T[],
  limit: number,
  key: (t: T) => (string | number)[],
): { items: T[]; nextCursor: string | null } {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  return { items, nextCursor: more ? encodeCursor(key(items[items.length - 1]!)) : null };
}
