import { decodeCursor } from '../catalog/index.js';
import { checkPolicyRepository, PolicySpecSchema, resolvePolicyVms, retentionStatus, type Policy } from '../policy.js';
import { describeRetention } from '../retention.js';
import { findPolicy, type ApiContext } from './context.js';
import { IdParam, page, Pagination, type Routes } from './kit.js';

/** Tag `policies`: create, read, change, delete; each change reloads the scheduler. */
export function registerPolicyRoutes(
  routes: Routes,
  ctx: Pick<ApiContext, 'catalog' | 'repos' | 'scheduler' | 'vcenters'>,
): void {
  const { catalog, repos, scheduler, vcenters } = ctx;
  const policyView = (p: Policy) => ({
    ...p,
    retentionStatus: retentionStatus(p),
    /** what the retention keeps, in words (one line a rule) */
    retentionKeeps: p.retention ? describeRetention(p.retention) : [],
    nextRuns: scheduler.nextRuns(p.id),
    resolvedVms: resolvePolicyVms(p, vcenters.inventory(), vcenters.errors()),
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/policies',
    summary: 'List policies',
    tag: 'policies',
    permission: 'read',
    query: Pagination,
    handler: async ({ query }) => {
      await vcenters.refresh();
      const c = decodeCursor(query.cursor, 1);
      const all = catalog.policies.list().filter((p) => !c || p.name > (c[0] as string));
      return page(all.slice(0, query.limit + 1).map(policyView), query.limit, (p) => [p.name]);
    },
  });
  routes.add({
    method: 'GET',
    url: '/api/v1/policies/:id',
    summary: 'Get a policy',
    tag: 'policies',
    permission: 'read',
    params: IdParam,
    handler: async ({ params }) => {
      const p = findPolicy(catalog, params.id);
      await vcenters.refresh();
      return policyView(p);
    },
  });
  routes.add({
    method: 'POST',
    url: '/api/v1/policies',
    summary: 'Create a policy',
    tag: 'policies',
    permission: 'policies',
    status: 201,
    body: PolicySpecSchema,
    handler: async ({ body, audit: a }) => {
      checkPolicyRepository(body, repos.names(), vcenters.names);
      await vcenters.refresh();
      const p = catalog.policies.create(body);
      a({ policy: p.id, name: p.name });
      scheduler.reload();
      return policyView(p);
    },
  });
  routes.add({
    method: 'PUT',
    url: '/api/v1/policies/:id',
    summary: 'Replace a policy',
    tag: 'policies',
    permission: 'policies',
    params: IdParam,
    body: PolicySpecSchema,
    handler: async ({ params, body, audit: a }) => {
      checkPolicyRepository(body, repos.names(), vcenters.names);
      await vcenters.refresh();
      const p = catalog.policies.update(findPolicy(catalog, params.id).id, body);
      a({ policy: p.id, name: p.name });
      scheduler.reload();
      return policyView(p);
    },
  });
  routes.add({
    method: 'DELETE',
    url: '/api/v1/policies/:id',
    summary: 'Delete a policy',
    tag: 'policies',
    permission: 'policies',
    params: IdParam,
    handler: ({ params, audit: a }) => {
      const p = findPolicy(catalog, params.id);
      catalog.policies.delete(p.id);
      a({ policy: p.id, name: p.name });
      scheduler.reload();
      return { deleted: p.id };
    },
  });
}
