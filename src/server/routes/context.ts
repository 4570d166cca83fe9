import type { Catalog } from '../catalog/index.js';
import type { ServerConfig } from '../config.js';
import type { JobQueue } from '../jobs/queue.js';
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
  scheduler: Pick<Scheduler, 'nextRuns' | 'reload' | 'enqueueBackups'>;
  vcenters: Vcenters;
  startedAt: Date;
}

/** A policy by id or name (NOT_FOUND otherwise). */
export function findPolicy(catalog: Pick<Catalog, 'policies'>, ref: string): Policy {
  return catalog.policies.list().find((p) => p.id === ref || p.name === ref) ?? catalog.policies.get(ref);
}
