import { TOOL_VERSION } from '../../engine/index.js';
import type { ApiContext } from './context.js';
import type { Routes } from './kit.js';

/** Tag `server`: liveness. */
export function registerServerRoutes(routes: Routes, ctx: Pick<ApiContext, 'startedAt'>): void {
  routes.add({
    method: 'GET',
    url: '/api/health',
    summary: 'Liveness and version',
    tag: 'server',
    permission: null,
    handler: () => ({
      status: 'ok',
      version: TOOL_VERSION,
      uptimeSeconds: Math.round((Date.now() - ctx.startedAt.getTime()) / 1000),
    }),
  });
}
