import type { ApiContext } from './context.js';
import { IdParam, type Routes } from './kit.js';

/** Tag `repositories`: configured repositories and their statistics. */
export function registerRepositoryRoutes(routes: Routes, { repos }: Pick<ApiContext, 'repos'>): void {
  routes.add({
    method: 'GET',
    url: '/api/v1/repositories',
    summary: 'Configured repositories with storage used and dedup ratio',
    tag: 'repositories',
    permission: 'read',
    handler: () => ({ items: repos.stats(), nextCursor: null }),
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/repositories/:id/refresh',
    summary: 'Re-read restore points and statistics of a repository',
    tag: 'repositories',
    permission: 'operate',
    params: IdParam,
    handler: async ({ params }) => {
      repos.config(params.id);
      await repos.sync(params.id);
      return repos.stats().find((r) => r.name === params.id);
    },
  });
}
