import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { api, createPolicyFiringSoon, startServer, until, type RunningServer } from './helpers/coffer-server.js';
import { pgNativeUnavailable, startPostgres, type RunningPostgres } from './helpers/postgres.js';
import { startProxy, type RunningProxy } from './helpers/proxy.js';
import { listSnapshots, startVcsim, vcLogin, type Vcsim } from './helpers/vsphere.js';

interface JobView {
  id: number;
  vm: string;
  status: string;
  trigger: string;
  attempt: number;
  proxy: string | null;
  error: unknown;
}

/** removes the test directory; a stopped process's log pipe may still be flushing into it: try again shortly after */
async function cleanup(tmp: { cleanup(): void }): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      return tmp.cleanup();
    } catch (e) {
      if (i >= 20) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const PER_DATASTORE = 3;
const CONCURRENCY = 2;

/** The server config of both scale runs: the repository, the simulator as vCenter "lab", the limits under test. */
function serverConfig(repo: string, vc: Vcsim): { config: unknown; env: Record<string, string> } {
  return {
    config: {
      repositories: [{ name: 'main', location: repo, passwordEnv: 'TEST_REPO_PASSWORD' }],
      vcenters: [
        {
          name: 'lab',
          url: `vsphere://${vc.host}:${vc.port}`,
          userEnv: 'VC_USER',
          passwordEnv: 'VC_PASS',
          thumbprint: vc.thumbprint,
        },
      ],
      retries: { maxAttempts: 3, backoffSeconds: 1 },
      limits: { perDatastore: PER_DATASTORE, perRepository: 16 },
    },
    env: { TEST_REPO_PASSWORD: TEST_PASSWORD, VC_USER: vc.username, VC_PASS: vc.password },
  };
}

/**
 * Issue 16 at scale (scale16): the test vCenter (vcsim) with two clusters of 30 VMs each (1 MiB disks, all on
 * LocalDS_0), two `coffer server` replicas on one real PostgreSQL (`--no-local-proxy`: only proxies run jobs) and three
 * `coffer proxy` processes, placed per cluster with `--clusters` (pa1, pa2 in DC0_C0; pb1 in DC0_C1), each talking to
 * a replica of its own. One policy over the 60 VMs, scheduled once. While the run is under way, PostgreSQL is
 * restarted (pg_ctl stop, then start: every connection of both replicas breaks) while proxies hold jobs; later a proxy
 * running a job and the scheduler leader are killed with SIGKILL at once (the lost job is requeued once its lease
 * expires and runs on the other proxy of its cluster; the follower takes the scheduler over). Then: every
 * VM has exactly one job (run keys) and one restore point (in the catalog and in the repository itself), each job ran
 * on a proxy of its VM's cluster, the running counts sampled from the API never passed limits.perDatastore (every VM
 * is on LocalDS_0) nor a proxy's concurrency, and no Coffer snapshot is left on any VM.
 */
describe('scale: 60 VMs in two clusters, two replicas on PostgreSQL, three proxies; PostgreSQL restarted, a proxy and the leader killed', {
  skip: pgNativeUnavailable(),
}, () => {
  const tmp = tempDir('coffer-scale-');
  const dir = tmp.path;
  const repo = join(dir, 'repo');
  let pg: RunningPostgres | undefined;
  let vc: Vcsim | undefined;
  const servers: RunningServer[] = [];
  const proxies: RunningProxy[] = [];

  before(async () => {
    const r = coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']);
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    for (const p of proxies) await p.stop();
    for (const s of servers) await s.stop();
    await vc?.stop();
    pg?.stop();
    await cleanup(tmp);
  });

  it('every VM: one job on a proxy of its cluster, one restore point; limits held; nothing lost or doubled', async () => {
    vc = await startVcsim({ clusters: 2, hostsPerCluster: 1, standaloneHosts: 0, vms: 30, layoutVms: false });
    const clusterOf = (vm: string) => (vm.startsWith('DC0_C0_') ? 'DC0_C0' : vm.startsWith('DC0_C1_') ? 'DC0_C1' : '');
    const vms = vc.vms.map((v) => v.name).filter((n) => clusterOf(n) !== '');
    assert.equal(vms.length, 60, `the simulator's VMs: ${vc.vms.map((v) => v.name).join(' ')}`);
    pg = await startPostgres();
    const url = pg.createDatabase('coffer');
    const { config, env } = serverConfig(repo, vc);
    const extraArgs = ['--catalog', url, '--lease-seconds', '10', '--no-local-proxy'];
    for (const name of ['a', 'b'])
      servers.push(await startServer({ dir, dataDir: join(dir, name), config, env, extraArgs }));
    const [a, b] = servers as [RunningServer, RunningServer];
    const isLeader = (s: RunningServer) => readFileSync(s.logFile, 'utf8').includes('elected scheduler leader');
    await until('a scheduler leader', () => isLeader(a) || isLeader(b));
    const leader = isLeader(a) ? a : b;
    const follower = leader === a ? b : a;
    const t = coffer(['token', 'create', '--data', a.dataDir, '--catalog', url, '--role', 'admin', '--json']);
    assert.equal(t.code, 0, t.stderr);
    const admin = JSON.parse(t.stdout).token as string;

    // pa2 talks to the leader, the others to the follower (there is no load balancer in front of the replicas here):
    // pa2 and the leader are killed together mid-run, and the survivors keep working through the follower
    const placed = { pa1: 'DC0_C0', pa2: 'DC0_C0', pb1: 'DC0_C1' } as const;
    for (const [name, cluster] of Object.entries(placed)) {
      const tok = await api(b.url, 'POST', '/api/v1/tokens', { token: admin, body: { name, role: 'proxy' } });
      assert.equal(tok.status, 201, tok.text);
      const server = (name === 'pa2' ? leader : follower).url;
      const extra = ['--clusters', cluster, '--transports', 'http', '--concurrency', String(CONCURRENCY)];
      proxies.push(startProxy(dir, server, name, tok.body.token, extra, { pollMs: 200 }));
    }
    await until('three proxies online', async () => {
      const r = await api(a.url, 'GET', '/api/v1/proxies', { token: admin });
      return r.body.items.filter((p: { state: string }) => p.state === 'online').length === 3;
    });

    // the policy through replica b; the leader picks it up from the shared catalog
    const policy = { name: 'all', repository: 'main', vms: [{ vcenter: 'lab', pattern: 'DC0_C*' }] };
    const created = await createPolicyFiringSoon(b.url, admin, policy, { leadMs: 8_000, slackMs: 4_000 });
    const p = await api(b.url, 'GET', `/api/v1/policies/${created.id}`, { token: admin });
    assert.deepEqual(p.body.resolvedVms.vms.map((v: { name: string }) => v.name).sort(), [...vms].sort());
    // (the VMs' clusters and datastores reach placement from the server's vCenter inventory, not the policy)

    // sample the running jobs from the API until the run is over (PostgreSQL restarted once, mid-run)
    let maxRunning = 0;
    const maxPerProxy = new Map<string, number>();
    let restarted = false;
    let killedJob: JobView | undefined;
    let live = [a, b];
    let failedPolls = 0;
    let jobs: JobView[] = [];
    const seen: unknown[] = [];
    await until(
      'the scheduled run to finish',
      async () => {
        const r = await api(live[failedPolls % live.length]!.url, 'GET', '/api/v1/jobs?limit=500', { token: admin });
        if (r.status !== 200) {
          failedPolls++; // 503 CATALOG_UNAVAILABLE while PostgreSQL restarts
          return false;
        }
        jobs = r.body.items as JobView[];
        const running = jobs.filter((j) => j.status === 'running');
        maxRunning = Math.max(maxRunning, running.length);
        for (const name of Object.keys(placed)) {
          const n = running.filter((j) => j.proxy === name).length;
          maxPerProxy.set(name, Math.max(maxPerProxy.get(name) ?? 0, n));
        }
        const done = jobs.filter((j) => j.status === 'succeeded').length;
        if (!restarted && running.length > 0 && done >= 10) {
          seen.push({ restartAt: { running: running.map((j) => [j.id, j.proxy]), done } });
          restarted = true;
          pg!.restart();
        } else if (restarted && !killedJob && done >= 15) {
          // kill -9 of a proxy running a job and of the scheduler leader, at once. The job polled as running may
          // have finished since: freeze the proxy, give a report already sent time to land, and read the job again;
          // kill only if the server still has it running there (else let the proxy go on and try again later)
          const pa2 = proxies.find((x) => x.name === 'pa2')!;
          if (running.some((j) => j.proxy === 'pa2')) {
            pa2.pause();
            await new Promise((r) => setTimeout(r, 1_000));
            const again = await api(leader.url, 'GET', '/api/v1/jobs?limit=500', { token: admin });
            const victim =
              again.status === 200
                ? (again.body.items as JobView[]).find((j) => j.status === 'running' && j.proxy === 'pa2')
                : undefined;
            if (victim) {
              killedJob = victim;
              seen.push({ killAt: { job: victim.id, vm: victim.vm, done } });
              await pa2.kill();
              await leader.kill();
              live = [follower];
            } else pa2.resume();
          }
        }
        return jobs.length >= vms.length && jobs.every((j) => ['succeeded', 'failed', 'cancelled'].includes(j.status));
      },
      240_000,
    ).catch((e: Error) => {
      const logs = proxies.map((x) => readFileSync(x.logFile, 'utf8').split('\n').slice(-20).join('\n')).join('\n');
      throw new Error(`${e.message}; ${JSON.stringify(seen)} jobs: ${JSON.stringify(jobs)}\n${logs}`);
    });
    assert.ok(restarted, 'PostgreSQL was restarted while proxies held jobs');
    assert.ok(killedJob, 'a proxy was killed while it ran a job, with the scheduler leader');
    const lost = jobs.find((j) => j.id === killedJob!.id)!;
    assert.ok(lost.attempt >= 2, `the lost job ran again: ${JSON.stringify(lost)}`);
    assert.equal(lost.proxy, 'pa1', 'on the surviving proxy of its cluster');
    assert.ok(isLeader(follower), 'the surviving replica took the scheduler over');

    for (const vm of vms) {
      const mine = jobs.filter((j) => j.vm === vm);
      assert.equal(mine.length, 1, `one job for ${vm}: ${JSON.stringify(mine)}`);
      const j = mine[0]!;
      assert.equal(j.status, 'succeeded', `${vm}: ${JSON.stringify(j)}`);
      assert.equal(j.trigger, 'schedule');
      const ran = j.proxy as keyof typeof placed;
      assert.equal(placed[ran], clusterOf(vm), `${vm} ran on ${j.proxy}, a proxy of its cluster`);
    }
    assert.ok(maxRunning <= PER_DATASTORE, `at most ${PER_DATASTORE} backups of LocalDS_0 at once, saw ${maxRunning}`);
    for (const [name, n] of maxPerProxy) assert.ok(n <= CONCURRENCY, `${name} ran ${n} jobs at once`);

    for (const vm of vms) {
      const r = await api(follower.url, 'GET', `/api/v1/restore-points?vm=${vm}`, { token: admin });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.items.length, 1, `exactly one restore point for ${vm}`);
    }
    // the repository itself (not the catalog's cache) agrees
    const list = coffer(['list', '--repo', repo, '--json']);
    assert.equal(list.code, 0, list.stderr);
    const points = JSON.parse(list.stdout) as { vm?: string; tags?: unknown }[];
    assert.equal(points.length, vms.length, 'one restore point per VM in the repository');
    const session = await vcLogin(vc);
    for (const vm of vms)
      assert.deepEqual(await listSnapshots(session, vc.vm(vm).ref), [], `no snapshot left on ${vm}`);
  });
});

/**
 * The same run on the embedded default (issue 16, item 4): one `coffer server` on SQLite whose built-in proxy runs every
 * job, the same simulator (two clusters, 60 VMs) and policy: every VM one job and one restore point, the per-datastore
 * limit held, no snapshot left.
 */
describe('scale on the embedded default: 60 VMs in two clusters, one server on SQLite with its built-in proxy', () => {
  const tmp = tempDir('coffer-scale-sqlite-');
  const dir = tmp.path;
  const repo = join(dir, 'repo');
  let vc: Vcsim | undefined;
  let server: RunningServer | undefined;

  before(() => {
    const r = coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']);
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    await server?.stop();
    await vc?.stop();
    await cleanup(tmp);
  });

  it('every VM: one job on the built-in proxy, one restore point; the per-datastore limit held', async () => {
    vc = await startVcsim({ clusters: 2, hostsPerCluster: 1, standaloneHosts: 0, vms: 30, layoutVms: false });
    const inCluster = (vm: string) => vm.startsWith('DC0_C0_') || vm.startsWith('DC0_C1_');
    const vms = vc.vms.map((v) => v.name).filter(inCluster);
    assert.equal(vms.length, 60);
    const { config, env } = serverConfig(repo, vc);
    const dataDir = join(dir, 'data');
    server = await startServer({ dir, dataDir, config, env });
    const t = coffer(['token', 'create', '--data', dataDir, '--role', 'admin', '--json']);
    assert.equal(t.code, 0, t.stderr);
    const admin = JSON.parse(t.stdout).token as string;
    const policy = { name: 'all', repository: 'main', vms: [{ vcenter: 'lab', pattern: 'DC0_C*' }] };
    await createPolicyFiringSoon(server.url, admin, policy, { leadMs: 6_000, slackMs: 2_000 });

    let maxRunning = 0;
    let jobs: JobView[] = [];
    await until(
      'the scheduled run to finish',
      async () => {
        const r = await api(server!.url, 'GET', '/api/v1/jobs?limit=500', { token: admin });
        assert.equal(r.status, 200, r.text);
        jobs = r.body.items as JobView[];
        maxRunning = Math.max(maxRunning, jobs.filter((j) => j.status === 'running').length);
        return jobs.length >= vms.length && jobs.every((j) => ['succeeded', 'failed', 'cancelled'].includes(j.status));
      },
      240_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; jobs: ${JSON.stringify(jobs)}`);
    });
    for (const vm of vms) {
      const mine = jobs.filter((j) => j.vm === vm);
      assert.equal(mine.length, 1, `one job for ${vm}: ${JSON.stringify(mine)}`);
      assert.equal(mine[0]!.status, 'succeeded', `${vm}: ${JSON.stringify(mine[0])}`);
      assert.match(String(mine[0]!.proxy), /^local/, `${vm} ran on the built-in proxy: ${mine[0]!.proxy}`);
    }
    assert.ok(maxRunning <= PER_DATASTORE, `at most ${PER_DATASTORE} backups of LocalDS_0 at once, saw ${maxRunning}`);
    const list = coffer(['list', '--repo', repo, '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.equal((JSON.parse(list.stdout) as unknown[]).length, vms.length, 'one restore point per VM');
    const session = await vcLogin(vc);
    for (const vm of vms)
      assert.deepEqual(await listSnapshots(session, vc.vm(vm).ref), [], `no snapshot left on ${vm}`);
  });
});
