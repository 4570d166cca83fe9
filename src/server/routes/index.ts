import { registerAdminRoutes } from './admin.js';
import { registerAuthRoutes } from './auth.js';
import type { ApiContext } from './context.js';
import { registerInstantRecoveryRoutes } from './instant-recoveries.js';
import { registerJobRoutes } from './jobs.js';
import type { Routes } from './kit.js';
import { registerPolicyRoutes } from './policies.js';
import { registerProxyRoutes } from './proxies.js';
import { registerRepositoryRoutes } from './repositories.js';
import { registerRestorePointRoutes } from './restore-points.js';
import { registerServerRoutes } from './server.js';
import { registerDashboardRoutes, registerVmRoutes } from './vms.js';

export type { ApiContext } from './context.js';
export { errorReply, jsonParseCounter, parseJsonBody, Routes } from './kit.js';

/** Every API route, one module per OpenAPI tag (this order is the order of the OpenAPI document's paths). */
export function registerApi(routes: Routes, ctx: ApiContext): void {
  registerServerRoutes(routes, ctx);
  registerAuthRoutes(routes, ctx);
  registerRestorePointRoutes(routes, ctx);
  registerVmRoutes(routes, ctx);
  registerRepositoryRoutes(routes, ctx);
  registerDashboardRoutes(routes, ctx);
  registerPolicyRoutes(routes, ctx);
  registerJobRoutes(routes, ctx);
  registerInstantRecoveryRoutes(routes, ctx);
  registerProxyRoutes(routes, ctx);
  registerAdminRoutes(routes, ctx);
}
