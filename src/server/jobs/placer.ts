import type { Catalog, Job, ProxyRecord } from '../catalog/index.js';
import {
  cannotServe,
  needsOf,
  place,
  type PlacementLimits,
  type ProxyLoad,
  type VmPlacementInfo,
} from './placement.js';
import type { JobQueue } from './queue.js';

export interface PlacerDeps {
  catalog: Pick<Catalog, 'jobs' | 'proxies' | 'placementLock'>;
  queue: Pick<JobQueue, 'due'>;
  limits: PlacementLimits;
  /** the inventory's placement facts of a VM (cluster, datastores), if any */
  vmInfo(vm: string): VmPlacementInfo | undefined;
  /** a proxy whose last heartbeat is older than this is offline */
  onlineMs: number;
}

/** due jobs read per page, and at most this many pages (10,000 jobs) per claim */
const PAGE = 200;
const MAX_PAGES = 50;

/** A proxy with its state as the API shows it. */
export interface ProxyView extends ProxyRecord {
  state: 'online' | 'draining' | 'drained' | 'offline';
  running: number;
  /** the ids of the jobs it runs now */
  jobs: number[];
}

/**
 * Placement over the catalog (placement.ts's rules): which due jobs a proxy takes now, and why the others wait (written
 * on the job). Every proxy asks for itself: the server's own runner at each tick, remote proxies through the API.
 */
export class Placer {
  constructor(private readonly deps: PlacerDeps) {}

  /** every proxy, with its load and state */
  proxies(now = Date.now()): ProxyView[] {
    const running = this.deps.catalog.jobs.list({ status: 'running', limit: 100_000 });
    return this.deps.catalog.proxies.list().map((p) => {
      const jobs = running.filter((j) => j.runner === p.owner).map((j) => j.id);
      const online = now - Date.parse(p.lastHeartbeat) < this.deps.onlineMs;
      const state = !online ? 'offline' : p.drained ? (jobs.length ? 'draining' : 'drained') : 'online';
      return { ...p, state, running: jobs.length, jobs };
    });
  }

  /**
   * choose() and the claims of what it chose as one step (catalog.placementLock): with replicas on PostgreSQL two
   * proxies asking two replicas at once would otherwise both count the same running jobs and both take a job, and a
   * limit (per datastore, per repository, per VM) would be passed. `claim` claims one job (the queue's lease claim);
   * the jobs it claimed are returned, to be started after the step.
   */
  claim(claimant: string, free: number, claim: (job: Job) => boolean, now = Date.now()): Job[] {
    return this.deps.catalog.placementLock(() => this.choose(claimant, free, now).filter((job) => claim(job)));
  }

  /**
   * The due jobs `claimant` (a proxy's owner) should take now, at most `free`, oldest first; the reason of every job
   * that cannot start anywhere is recorded on it. `free` 0 only records the reasons.
   */
  choose(claimant: string, free: number, now = Date.now()): Job[] {
    const { catalog } = this.deps;
    const running = catalog.jobs.list({ status: 'running', limit: 100_000 });
    const loads: ProxyLoad[] = catalog.proxies.list().map((proxy) => ({
      proxy,
      online: now - Date.parse(proxy.lastHeartbeat) < this.deps.onlineMs,
      running: running.filter((j) => j.runner === proxy.owner).length,
    }));
    // looked up once per job and claim: placement counts every running job's datastores for every due job
    const known = new Map<number, readonly string[]>();
    const datastoresOf = (j: Job) => {
      let ds = known.get(j.id);
      if (ds === undefined) {
        ds = j.kind === 'backup' && j.vm ? (this.deps.vmInfo(j.vm)?.datastores ?? []) : [];
        known.set(j.id, ds);
      }
      return ds;
    };
    const chosen: Job[] = [];
    // oldest first, a page at a time: the next page only while the asker still has free slots. Without paging, a run
    // of 5,000 VMs queued policy by policy kept every proxy outside the first 200 jobs' clusters idle (scale16).
    for (let page = 0, after = 0; page < MAX_PAGES; page++) {
      const due = this.deps.queue.due(PAGE, after);
      for (const job of due) this.placeOne(job, claimant, free, loads, running, chosen, datastoresOf, page === 0);
      if (due.length < PAGE || chosen.length >= free) break;
      after = due[due.length - 1]!.id;
    }
    return chosen;
  }

  private placeOne(
    job: Job,
    claimant: string,
    free: number,
    loads: ProxyLoad[],
    running: Job[],
    chosen: Job[],
    datastoresOf: (job: Job) => readonly string[],
    /** the first page: every job's wait reason is worked out and recorded; later pages only look for the asker's */
    detailed: boolean,
  ): void {
    const { catalog, limits } = this.deps;
    const needs = needsOf(job, job.vm ? this.deps.vmInfo(job.vm) : undefined);
    if (!detailed) {
      const mine = loads.find((l) => l.proxy.owner === claimant);
      if (!mine || cannotServe(mine.proxy.capabilities, needs) !== undefined) return;
    }
    const out = place(job, needs, claimant, loads, running, limits, datastoresOf);
    if (out.take && chosen.length < free) {
      chosen.push(job);
      running.push({ ...job, status: 'running', runner: claimant });
      const mine = loads.find((l) => l.proxy.owner === claimant);
      if (mine) mine.running++;
    } else if (!out.take && out.waits) {
      if (job.waitReason !== out.reason) catalog.jobs.setWaitReason(job.id, out.reason);
    } else if (job.waitReason !== null) {
      catalog.jobs.setWaitReason(job.id, null);
    }
  }
}
