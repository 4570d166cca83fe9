import { z } from 'zod';
import { CofferError } from '../../shared/index.js';
import { createToken, createUser, ROLES, TOKEN_ROLES } from '../auth.js';
import { decodeCursor } from '../catalog/index.js';
import type { ApiContext } from './context.js';
import { IdParam, page, Pagination, type Routes } from './kit.js';

const role = z.enum(ROLES);

/** Tag `admin`: the audit log, users, API tokens. */
export function registerAdminRoutes(routes: Routes, { catalog }: Pick<ApiContext, 'catalog'>): void {
  routes.add({
    method: 'GET',
    url: '/api/v1/audit',
    summary: 'The audit log (newest first); format=ndjson exports one JSON record per line',
    tag: 'admin',
    permission: 'admin',
    query: Pagination.extend({
      actor: z.string().max(200).optional(),
      action: z.string().max(200).optional(),
      format: z.enum(['json', 'ndjson']).default('json'),
    }),
    response:
      "json: {items, nextCursor}; ndjson: one record per line, the next page's cursor in the X-Next-Cursor " +
      'header (absent at the end)',
    handler: ({ query, reply }) => {
      const c = decodeCursor(query.cursor, 1);
      const rows = catalog.audit.list({
        actor: query.actor,
        action: query.action,
        ...(c ? { beforeId: c[0] as number } : {}),
        limit: query.limit + 1,
      });
      const p = page(rows, query.limit, (r) => [r.id]);
      if (query.format === 'json') return p;
      if (p.nextCursor) void reply.header('x-next-cursor', p.nextCursor);
      return reply
        .header('content-type', 'application/x-ndjson; charset=utf-8')
        .send(p.items.map((r) => JSON.stringify(r) + '\n').join(''));
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/users',
    summary: 'List users',
    tag: 'admin',
    permission: 'admin',
    handler: () => ({ items: catalog.users.list(), nextCursor: null }),
  });
  routes.add({
    method: 'POST',
    url: '/api/v1/users',
    summary: 'Create a user',
    tag: 'admin',
    permission: 'admin',
    status: 201,
    body: z.strictObject({ username: z.string().min(1).max(64), password: z.string().min(8).max(1024), role }),
    handler: async ({ body, principal, remote, audit: a }) => {
      a({ username: body.username, role: body.role });
      await createUser(catalog, body.username, body.password, body.role, principal!.actor, remote);
      return { username: body.username, role: body.role };
    },
  });
  routes.add({
    method: 'DELETE',
    url: '/api/v1/users/:id',
    summary: 'Delete a user (and end their sessions)',
    tag: 'admin',
    permission: 'admin',
    params: IdParam,
    handler: ({ params, audit: a }) => {
      a({ username: params.id });
      if (!catalog.users.delete(params.id)) throw new CofferError('NOT_FOUND', `no user ${params.id}`);
      catalog.tokens.deleteForUser(params.id);
      return { deleted: params.id };
    },
  });
  routes.add({
    method: 'GET',
    url: '/api/v1/tokens',
    summary: 'List API tokens (never the secrets)',
    tag: 'admin',
    permission: 'admin',
    handler: () => ({ items: catalog.tokens.listApi(), nextCursor: null }),
  });
  routes.add({
    method: 'POST',
    url: '/api/v1/tokens',
    summary: 'Create an API token (the secret is shown once)',
    tag: 'admin',
    permission: 'admin',
    status: 201,
    body: z.strictObject({
      name: z.string().min(1).max(100),
      /** `proxy`: a token for `coffer proxy` (opens only the proxy protocol) */
      role: z.enum(TOKEN_ROLES),
      expiresInDays: z.number().positive().max(3650).optional(),
    }),
    handler: ({ body, principal, remote, audit: a }) => {
      const t = createToken(catalog, {
        role: body.role,
        name: body.name,
        createdBy: principal!.actor,
        remote,
        ...(body.expiresInDays ? { expiresAt: new Date(Date.now() + body.expiresInDays * 86400_000) } : {}),
      });
      a({ token: t.id, role: t.role });
      return t;
    },
  });
  routes.add({
    method: 'DELETE',
    url: '/api/v1/tokens/:id',
    summary: 'Revoke an API token',
    tag: 'admin',
    permission: 'admin',
    params: IdParam,
    handler: ({ params, audit: a }) => {
      a({ token: params.id });
      if (!catalog.tokens.deleteApi(params.id)) throw new CofferError('NOT_FOUND', `no token ${params.id}`);
      return { deleted: params.id };
    },
  });
}
