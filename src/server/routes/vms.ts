import { decodeCursor } from '../catalog/index.js';
import { vmStatuses } from '../vm-status.js';
import type { ApiContext } from './context.js';
import { page, Pagination, type Routes } from './kit.js';

type VmContext = Pick<ApiContext, 'catalog' | 'repos' | 'vcenters'>;

/** Tag `vms`: VMs with their protection status. */
export function registerVmRoutes(routes: Routes, { catalog, vcenters }: VmContext): void {
  routes.add({
    method: 'GET',
    url: '/api/v1/vms',
    summary: 'VMs with protection status, last result and RPO compliance',
    tag: 'vms',
    permission: 'read',
    query: Pagination,
    handler: async ({ query }) => {
      await vcenters.refresh();
      const all = vmStatuses(catalog, catalog.policies.list(), vcenters.inventory());
      const c = decodeCursor(query.cursor, 1);
      const rest = c ? all.filter((v) => v.name > (c[0] as string)) : all;
      return page(rest.slice(0, query.limit + 1), query.limit, (v) => [v.name]);
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/vcenters',
    summary: 'The configured vCenters (names only; the targets of a restore-vm job), with the last read error',
    tag: 'vms',
    permission: 'read',
    handler: () => {
      const errors = vcenters.errors();
      return { items: vcenters.names.map((name) => ({ name, error: errors.get(name) ?? null })) };
    },
  });
}

/**
 * Tag `vms` too: the console's summary
 * (registered after the repositories, where it always was in the OpenAPI document).
 */
export function registerDashboardRoutes(routes: Routes, { catalog, repos, vcenters }: VmContext): void {
  routes.add({
    method: 'GET',
    url: '/api/v1/dashboard',
    summary: 'Summary for the console: VM counts, storage, a 14-day trend',
    tag: 'vms',
    permission: 'read',
    handler: () => {
      const vms = vmStatuses(catalog, catalog.policies.list(), vcenters.inventory());
      const since = new Date(Date.now() - 13 * 86400_000).toISOString().slice(0, 10);
      return {
        vms: {
          total: vms.length,
          /** covered by an enabled policy and holding a restore point */
          protected: vms.filter((v) => v.protected).length,
          /** everything else: no policy, or a policy but no restore point yet */
          unprotected: vms.filter((v) => !v.protected).length,
          /** the newest finished backup failed */
          failing: vms.filter((v) => v.failing).length,
          compliant: vms.filter((v) => v.rpoCompliant === true).length,
          breached: vms.filter((v) => v.rpoCompliant === false).length,
        },
        repositories: repos.stats(),
        trend: catalog.restorePoints.dailyTrend(since),
        failures: catalog.jobs.failuresByDay(since),
        /** the VMs whose newest finished backup failed, with that failure */
        failingVms: vms
          .filter((v) => v.failing)
          .map((v) => ({
            name: v.name,
            job: v.lastJob!.id,
            finishedAt: v.lastJob!.finishedAt,
            error: v.lastJob!.error,
          })),
        jobs: catalog.jobs.countByStatus(),
      };
    },
  });
}
