import type { Catalog } from '../catalog/index.js';
import type { ServerConfig } from '../config.js';
import type { Placer } from '../jobs/placer.js';
import type { JobQueue } from '../jobs/queue.js';
import type { RemoteProxies } from '../jobs/remote-proxies.js';
import type { JobRunner } from '../jobs/runner.js';
import type { Policy } from '../policy.js';
import type { RepositoryManager } from '../repositories.js';
import type { Scheduler } from '../scheduler.js';
import type { Vcenters } from '../vcenters.js';

/** What the route modules work with (built once by server.ts). */
export interface ApiContext {
  catalog: Catalog;
  config: ServerConfig;
  repos: RepositoryManager;
  queue: JobQueue;
  runner: Pick<JobRunner, 'cancel'>;
  placer: Pick<Placer, 'proxies'>;
  remoteProxies: RemoteProxies;
  scheduler: Pick<Scheduler, 'nextRuns' | 'reload' | 'enqueueBackups'>;
  vcenters: Vcenters;
  startedAt: Date;
}

/** A policy by id or name (NOT_FOUND otherwise). */
export function findPolicy(catalog: Pick<Catalog, 'policies'>, ref: string): Policy {
  // ids first: a name never shadows an id (names of the id form are refused when a policy is saved)
  const all = catalog.policies.list();
  return all.find((p) => p.id === ref) ?? all.find((p) => p.name === ref) ?? catalog.policies.get(ref);
}
