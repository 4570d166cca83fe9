#!/usr/bin/env node
// Scheduler and queue sizing (issue 16, scale16; docs/BENCHMARKS.md "Scheduler and queue at 5,000 VMs"): the real
// catalog, queue, scheduler and placement code (dist/), no data moved. VMS VMs in POLICIES policies on the static
// inventory, spread over CLUSTERS clusters with DATASTORES datastores each; PROXIES simulated proxies (one per
// cluster at least, `clusters` capability, CONCURRENCY slots each), spread over REPLICAS server processes (forked
// workers, PostgreSQL only: each worker owns its own catalog connection, as a replica does). One scheduled run of every
// policy (Scheduler.enqueueBackups with run keys), then every proxy claims through Placer.claim + JobQueue.claim (the
// same calls as POST /api/v1/proxy/claim), "runs" each job for JOB_MS (a timer; LOG_LINES log lines and a progress
// update, as a real job writes) and finishes it (JobQueue.finish). Measured: enqueue time, claim throughput, claim
// latency (p50/p99 of one claim call), the time until the run is drained, fairness (when each policy's last job
// finished), and the catalog's size after the run.
//
// Usage: npm run build && node scripts/run-tests.mjs postgres-helper-nothing  (compiles dist-test, for the PostgreSQL
// helper)  then: nice -n 10 node bench/scheduler-scale.mjs [--engine sqlite|postgres|both] [--vms 5000]
//   [--policies 50] [--proxies 50] [--concurrency 4] [--replicas 2] [--clusters 10] [--datastores 5]
//   [--per-datastore 4] [--job-ms 0] [--log-lines 8] [--poll-ms 1000] [--pg-url postgres://...] [--json]
import { fork } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(join(root, 'dist', p));

const { values: o } = parseArgs({
  options: {
    engine: { type: 'string', default: 'both' },
    vms: { type: 'string', default: '5000' },
    policies: { type: 'string', default: '50' },
    proxies: { type: 'string', default: '50' },
    concurrency: { type: 'string', default: '4' },
    replicas: { type: 'string', default: '2' },
    clusters: { type: 'string', default: '10' },
    datastores: { type: 'string', default: '5' },
    'per-datastore': { type: 'string', default: '4' },
    'job-ms': { type: 'string', default: '0' },
    'log-lines': { type: 'string', default: '8' },
    'poll-ms': { type: 'string', default: '1000' },
    'pg-url': { type: 'string' },
    worker: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const n = (k) => Number(o[k]);
const cfg = {
  vms: n('vms'),
  policies: n('policies'),
  proxies: n('proxies'),
  concurrency: n('concurrency'),
  replicas: n('replicas'),
  clusters: n('clusters'),
  datastores: n('datastores'),
  perDatastore: n('per-datastore'),
  jobMs: n('job-ms'),
  logLines: n('log-lines'),
  pollMs: n('poll-ms'),
};

// ---- the simulated estate -----------------------------------------------------------------------------------------
const vmName = (i) => `p${String(i % cfg.policies).padStart(3, '0')}-vm${String(i).padStart(5, '0')}`;
const clusterOf = (i) => `c${i % cfg.clusters}`;
const datastoreOf = (i) => `${clusterOf(i)}-ds${Math.floor(i / cfg.clusters) % cfg.datastores}`;
const inventory = Array.from({ length: cfg.vms }, (_, i) => ({
  name: vmName(i),
  disks: [`/vms/${vmName(i)}.raw`],
  cluster: clusterOf(i),
  datastores: [datastoreOf(i)],
}));
const byName = new Map(inventory.map((v) => [v.name, v]));
const proxyName = (k) => `px${String(k).padStart(3, '0')}`;
const proxyCluster = (k) => `c${k % cfg.clusters}`;

async function parts(catalog) {
  const { JobQueue } = await dist('server/jobs/queue.js');
  const { RetryPolicy } = await dist('server/jobs/retry-policy.js');
  const { Placer } = await dist('server/jobs/placer.js');
  const retry = new RetryPolicy({ maxAttempts: 1, backoffSeconds: 0 });
  const queue = new JobQueue(catalog, retry, { leaseMs: 300_000 });
  const placer = new Placer({
    catalog,
    queue,
    limits: { perSource: 1, perRepository: () => 100_000, perDatastore: cfg.perDatastore },
    vmInfo: (vm) => byName.get(vm),
    onlineMs: 3_600_000,
  });
  return { queue, placer };
}

async function openEngine(engine, where) {
  const { openCatalog } = await dist('server/catalog/index.js');
  return openCatalog(where, engine === 'postgres' ? where : undefined);
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

/** One server process's proxies: claim until the run is drained; returns the latencies and counts. */
async function runProxies(engine, where, proxyIds, total) {
  const catalog = await openEngine(engine, where);
  const { queue, placer } = await parts(catalog);
  const latencies = [];
  let claimed = 0;
  let emptyClaims = 0;
  const finishedAt = new Map();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const remaining = () => catalog.jobs.list({ status: 'queued', limit: 1 }).length;
  await Promise.all(
    proxyIds.map(async (k) => {
      const owner = `proxy:${proxyName(k)}`;
      let running = 0;
      const inflight = new Set();
      for (;;) {
        const free = cfg.concurrency - running;
        if (free > 0) {
          const t = performance.now();
          catalog.proxies.heartbeat(owner, new Date().toISOString());
          const jobs = placer.claim(owner, free, (j) => queue.claim(j, owner, `proxy ${proxyName(k)}`));
          latencies.push(performance.now() - t);
          if (jobs.length === 0) emptyClaims++;
          for (const job of jobs) {
            claimed++;
            running++;
            const p = (async () => {
              await new Promise((r) => setTimeout(r, cfg.jobMs));
              for (let l = 0; l < cfg.logLines; l++) queue.log(job.id, 'info', `simulated step ${l} of ${job.vm}`);
              queue.progress(job.id, { unit: 'bytes', done: 1 << 30, total: 1 << 30 });
              queue.finish(job.id, 'succeeded', null, { id: 'simulated', mode: 'incremental' });
              finishedAt.set(job.id, performance.now() - t0);
              running--;
            })();
            inflight.add(p);
            void p.finally(() => inflight.delete(p));
          }
          if (jobs.length > 0) continue;
        }
        if (running === 0 && remaining() === 0) break;
        // as a real proxy: asks again after --poll-ms (default 1 s, `coffer proxy`'s) or when one of its jobs ends
        await Promise.race([new Promise((r) => setTimeout(r, cfg.pollMs)), ...inflight]);
      }
    }),
  );
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  catalog.close();
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return { latencies, claimed, emptyClaims, elapsedMs, cpuMs, finishedAt: [...finishedAt], total };
}

async function catalogBytes(engine, where, catalog) {
  if (engine === 'postgres') {
    // the catalog's Db is not exposed; ask through a fresh pg-native client
    const { createRequire } = await import('node:module');
    const Client = createRequire(import.meta.url)('pg-native');
    const c = new Client();
    c.connectSync(where);
    const [{ bytes }] = c.querySync('SELECT pg_database_size(current_database())::bigint AS bytes');
    const tables = c.querySync(
      'SELECT relname AS name, pg_total_relation_size(relid)::bigint AS bytes FROM pg_catalog.pg_statio_user_tables ORDER BY 2 DESC LIMIT 4',
    );
    c.end();
    return { total: Number(bytes), tables: tables.map((t) => ({ name: t.name, bytes: Number(t.bytes) })) };
  }
  void catalog;
  const files = readdirSync(where).filter((f) => f.startsWith('catalog.db'));
  return { total: files.reduce((s, f) => s + statSync(join(where, f)).size, 0), tables: [] };
}

async function bench(engine) {
  let pg;
  let where;
  let tmp;
  if (engine === 'postgres') {
    if (o['pg-url']) where = o['pg-url'];
    else {
      const { startPostgres } = await import(join(root, 'dist-test', 'test', 'helpers', 'postgres.js')).catch(() => {
        throw new Error(
          'dist-test/test/helpers/postgres.js missing: run `node scripts/run-tests.mjs x` once, or --pg-url',
        );
      });
      pg = await startPostgres();
      where = pg.createDatabase('bench');
    }
  } else {
    tmp = mkdtempSync(join(tmpdir(), 'coffer-sched-bench-'));
    where = tmp;
  }
  try {
    const catalog = await openEngine(engine, where);
    const { queue } = await parts(catalog);
    const { Scheduler } = await dist('server/scheduler.js');
    const { PolicySpecSchema } = await dist('server/policy.js');
    const vcenters = { inventory: () => inventory, errors: () => new Map(), refresh: async () => {} };
    const log = { info() {}, warn() {}, debug() {} };
    const scheduler = new Scheduler(catalog.policies, queue, vcenters, log);
    const policies = [];
    for (let p = 0; p < cfg.policies; p++) {
      const name = `p${String(p).padStart(3, '0')}`;
      policies.push(
        catalog.policies.create(PolicySpecSchema.parse({ name, repository: 'main', vms: [{ pattern: `${name}-*` }] })),
      );
    }
    const now = new Date().toISOString();
    for (let k = 0; k < cfg.proxies; k++) {
      catalog.proxies.upsert({
        owner: `proxy:${proxyName(k)}`,
        name: proxyName(k),
        local: false,
        version: 'bench',
        tokenId: null,
        capabilities: {
          kinds: ['backup', 'verify', 'prune'],
          transports: ['disk', 'http'],
          repositories: null,
          vcenters: null,
          clusters: [proxyCluster(k)],
          datastores: null,
        },
        concurrency: cfg.concurrency,
        registeredAt: now,
        lastHeartbeat: now,
      });
    }
    // one scheduled run of every policy, as the leader fires it
    const at = new Date(Math.floor(Date.now() / 60_000) * 60_000).toISOString();
    const e0 = performance.now();
    let queued = 0;
    for (const p of policies)
      queued += scheduler.enqueueBackups(p, 'schedule', `schedule:${p.name}`, undefined, at).length;
    const enqueueMs = performance.now() - e0;
    // the same time fired again (another replica, a catch-up): run keys queue nothing
    const a0 = performance.now();
    let again = 0;
    for (const p of policies)
      again += scheduler.enqueueBackups(p, 'schedule', `schedule:${p.name}`, undefined, at).length;
    const againMs = performance.now() - a0;
    catalog.close();

    // the proxies, spread over the server processes
    const replicas = engine === 'postgres' ? Math.max(1, cfg.replicas) : 1;
    const groups = Array.from({ length: replicas }, (_, r) =>
      Array.from({ length: cfg.proxies }, (_, k) => k).filter((k) => k % replicas === r),
    );
    const results = await Promise.all(
      groups.map((ids) =>
        replicas === 1
          ? runProxies(engine, where, ids, queued)
          : new Promise((res, rej) => {
              const child = fork(fileURLToPath(import.meta.url), [
                ...process.argv.slice(2),
                '--worker',
                JSON.stringify({ engine, where, ids }),
              ]);
              child.on('message', res);
              child.on('error', rej);
              child.on('exit', (code) => code !== 0 && rej(new Error(`worker exited with ${code}`)));
            }),
      ),
    );
    const latencies = results.flatMap((r) => r.latencies).sort((x, y) => x - y);
    const claimed = results.reduce((s, r) => s + r.claimed, 0);
    const drainMs = Math.max(...results.map((r) => r.elapsedMs));
    const check = await openEngine(engine, where);
    const jobs = check.jobs.list({ limit: 100_000 });
    const succeeded = jobs.filter((j) => j.status === 'succeeded').length;
    const perVm = new Map();
    for (const j of jobs) perVm.set(j.vm, (perVm.get(j.vm) ?? 0) + 1);
    const doubled = [...perVm.values()].filter((c) => c !== 1).length;
    // fairness: when each policy's last job finished, relative to the whole run
    const finished = new Map(results.flatMap((r) => r.finishedAt));
    const lastOfPolicy = new Map();
    for (const j of jobs) {
      const t = finished.get(j.id) ?? 0;
      lastOfPolicy.set(j.policyId, Math.max(lastOfPolicy.get(j.policyId) ?? 0, t));
    }
    const lasts = [...lastOfPolicy.values()].sort((x, y) => x - y);
    const size = await catalogBytes(engine, where, check);
    check.close();
    return {
      engine,
      ...cfg,
      replicas,
      queued,
      enqueueMs: Math.round(enqueueMs),
      enqueuePerJobMs: +(enqueueMs / Math.max(1, queued)).toFixed(3),
      refireMs: Math.round(againMs),
      refireQueued: again,
      claimed,
      succeeded,
      vmsWithOtherThanOneJob: doubled,
      drainMs: Math.round(drainMs),
      jobsPerSecond: Math.round((claimed / drainMs) * 1000),
      // CPU of the server processes per job (claim + finish + logs): what the shared machine's load does not inflate
      serverCpuMsPerJob: +(results.reduce((s, r) => s + r.cpuMs, 0) / Math.max(1, claimed)).toFixed(2),
      claimCalls: latencies.length,
      claimP50Ms: +quantile(latencies, 0.5).toFixed(2),
      claimP99Ms: +quantile(latencies, 0.99).toFixed(2),
      claimMaxMs: +(latencies.at(-1) ?? 0).toFixed(2),
      policyLastFinishFirstMs: Math.round(lasts[0] ?? 0),
      policyLastFinishLastMs: Math.round(lasts.at(-1) ?? 0),
      catalogBytes: size.total,
      catalogBytesPerJob: Math.round(size.total / Math.max(1, jobs.length)),
      largestTables: size.tables,
    };
  } finally {
    pg?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

if (o.worker) {
  const { engine, where, ids } = JSON.parse(o.worker);
  const r = await runProxies(engine, where, ids, 0);
  process.send(r, () => process.exit(0));
} else {
  const engines = o.engine === 'both' ? ['sqlite', 'postgres'] : [o.engine];
  const out = [];
  for (const e of engines) {
    const r = await bench(e);
    out.push(r);
    if (!o.json) {
      console.log(
        `${e}: ${r.queued} jobs queued in ${r.enqueueMs} ms (${r.enqueuePerJobMs} ms/job; the same time again: ` +
          `${r.refireQueued} in ${r.refireMs} ms); ${r.proxies} proxies x ${r.concurrency} on ${r.replicas} ` +
          `process(es): ${r.claimed} claimed, ${r.succeeded} succeeded, ${r.vmsWithOtherThanOneJob} VMs with != 1 job, ` +
          `drained in ${r.drainMs} ms = ${r.jobsPerSecond} jobs/s (${r.serverCpuMsPerJob} ms CPU/job); claim p50 ${r.claimP50Ms} ms, p99 ${r.claimP99Ms} ms, ` +
          `max ${r.claimMaxMs} ms over ${r.claimCalls} calls; policies' last job done between ${r.policyLastFinishFirstMs}` +
          ` and ${r.policyLastFinishLastMs} ms; catalog ${(r.catalogBytes / 1048576).toFixed(1)} MiB ` +
          `(${r.catalogBytesPerJob} B/job) ${JSON.stringify(r.largestTables)}`,
      );
    }
  }
  if (o.json) console.log(JSON.stringify(out, null, 2));
}
