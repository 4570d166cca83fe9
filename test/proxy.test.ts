import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { api, startServer, until, type RunningServer } from './helpers/coffer-server.js';
import { makeDisk } from './helpers/disks.js';
import { pgNativeUnavailable, startPostgres, type RunningPostgres } from './helpers/postgres.js';
import { startProxy, type RunningProxy } from './helpers/proxy.js';
import { freePort, startNbdkit, type Daemon } from './helpers/servers.js';

/**
 * An HTTP relay in front of the server on 127.0.0.1: forwards every request, except those `drop` says to cut (their
 * connection is destroyed, nothing reaches the server).
 */
async function startRelay(
  target: string,
  drop: (method: string, url: string) => boolean,
): Promise<{ url: string; close(): Promise<void> }> {
  const to = new URL(target);
  const srv = createServer((req, res) => {
    if (drop(req.method ?? '', req.url ?? '')) {
      req.socket.destroy();
      return;
    }
    const up = request(
      { host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

interface JobView {
  id: number;
  vm: string;
  status: string;
  attempt: number;
  proxy: string | null;
  runner: string | null;
  waitReason: string | null;
  error: { code: string; message: string } | null;
  progress: { bytesDone: number } | null;
}

/**
 * Issue 16, backup proxies: one `coffer server` (`--no-local-proxy`: only proxies run jobs, job leases of 2 s) and
 * `coffer proxy` processes on this machine; on SQLite, and on a real PostgreSQL (test/helpers/postgres.ts) without the
 * slow kill -9 case (the lease sweep on PostgreSQL is test/server-replicas'). The VMs are plain disk sources (raw
 * files; an nbdkit disk slowed by its delay filter, so that a job is still running when its proxy is killed). No
 * vCenter here: a proxy runs the same src/jobs use case as the server (test/server-vsphere covers it there).
 */
for (const engine of ['sqlite', 'postgres'] as const)
  describe(`backup proxies on ${engine}: placement, register, version, kill -9 mid-job, drain, revoked token`, {
    skip: engine === 'postgres' ? pgNativeUnavailable() : undefined,
  }, () => {
    const tmp = tempDir('coffer-proxy-');
    const dir = tmp.path;
    const repo = join(dir, 'repo');
    let server: RunningServer;
    let nbd: Daemon | undefined;
    let pg: RunningPostgres | undefined;
    let catalogArgs: string[] = [];
    const proxies: RunningProxy[] = [];
    let admin = '';
    const tokens: Record<string, string> = {};

    const job = async (id: number): Promise<JobView & { logs: { message: string }[] }> =>
      (await api(server.url, 'GET', `/api/v1/jobs/${id}`, { token: admin })).body;
    const backup = async (vm: string): Promise<number> => {
      const r = await api(server.url, 'POST', '/api/v1/jobs', {
        token: admin,
        body: { kind: 'backup', policy: 'all', vm },
      });
      assert.equal(r.status, 202, r.text);
      return r.body.items[0].id;
    };
    const finished = (id: number, timeoutMs = 60_000) =>
      until(
        `job ${id} to finish`,
        async () => {
          const j = await job(id);
          return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : undefined;
        },
        timeoutMs,
      );
    const points = async (vm: string) =>
      (await api(server.url, 'GET', `/api/v1/restore-points?vm=${vm}`, { token: admin })).body.items as unknown[];

    before(async () => {
      for (const vm of ['f1', 'f2', 'f3']) makeDisk(join(dir, `${vm}.raw`), 1024 * 1024, vm);
      const r = coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']);
      assert.equal(r.code, 0, r.stderr);
      const nbdPort = await freePort();
      nbd = startNbdkit(dir, nbdPort, 'pattern', ['size=8M', 'rdelay=40ms'], ['delay']);
      if (engine === 'postgres') {
        pg = await startPostgres();
        catalogArgs = ['--catalog', pg.createDatabase('coffer')];
      }
      const config = {
        repositories: [{ name: 'main', location: repo, passwordEnv: 'TEST_REPO_PASSWORD' }],
        inventory: [
          ...['f1', 'f2', 'f3'].map((vm) => ({ name: vm, disks: [join(dir, `${vm}.raw`)] })),
          { name: 's1', disks: [`nbd://127.0.0.1:${nbdPort}/`], datastores: ['vsan-1'] },
        ],
        retries: { maxAttempts: 1 },
      };
      server = await startServer({
        dir,
        dataDir: join(dir, 'data'),
        config,
        env: { TEST_REPO_PASSWORD: TEST_PASSWORD },
        extraArgs: ['--no-local-proxy', '--lease-seconds', '2', ...catalogArgs],
      });
      const token = (role: string, name: string) => {
        const t = coffer(['token', 'create', '--data', server.dataDir, ...catalogArgs, '--role', role, '--name', name]);
        assert.equal(t.code, 0, t.stderr);
        return t.stdout.trim().split('\n').pop()!;
      };
      admin = token('admin', 'admin');
      // proxy tokens through the API, as an admin would (the CLI path is the admin token's)
      for (const name of ['p1', 'p2']) {
        const t = await api(server.url, 'POST', '/api/v1/tokens', { token: admin, body: { name, role: 'proxy' } });
        assert.equal(t.status, 201, t.text);
        tokens[name] = t.body.token;
      }
      const p = await api(server.url, 'POST', '/api/v1/policies', {
        token: admin,
        body: { name: 'all', repository: 'main', vms: ['f1', 'f2', 'f3', 's1'].map((name) => ({ name })) },
      });
      assert.equal(p.status, 201, p.text);
    });

    after(async () => {
      for (const p of proxies) await p.kill();
      await server?.kill();
      await nbd?.stop();
      pg?.stop();
      tmp.cleanup();
    });

    it('a job waits, saying why, while no proxy can run it; a proxy registers and runs it', async () => {
      const id = await backup('f1');
      const waiting = await until('the wait reason', async () => {
        const j = await job(id);
        return j.waitReason ? j : undefined;
      });
      assert.equal(waiting.status, 'queued');
      assert.match(waiting.waitReason!, /no online proxy can run it/);

      proxies.push(startProxy(dir, server.url, 'p1', tokens.p1!));
      const done = await finished(id);
      assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
      assert.equal(done.proxy, 'p1');
      assert.equal(done.runner, 'proxy:p1');
      assert.equal(done.waitReason, null);
      assert.ok(done.logs.some((l) => l.message === 'started (attempt 1 of 1) on proxy p1'));
      assert.equal((await points('f1')).length, 1);

      const list = await api(server.url, 'GET', '/api/v1/proxies', { token: admin });
      assert.equal(list.status, 200, list.text);
      const p1 = list.body.items.find((p: { name: string }) => p.name === 'p1');
      assert.equal(p1.state, 'online');
      assert.equal(p1.local, false);
      assert.equal(p1.version, (await api(server.url, 'GET', '/api/health')).body.version);
      assert.ok(Date.now() - Date.parse(p1.lastHeartbeat) < 60_000);
      assert.deepEqual(p1.capabilities.kinds, ['backup', 'verify', 'prune']);
      assert.equal(p1.tokenId, undefined, 'the token id is not shown');
      assert.ok(!list.body.items.some((p: { local: boolean }) => p.local), '--no-local-proxy: no own proxy');
    });

    it('the protocol refuses another Coffer version, other tokens, and a proxy token elsewhere', async () => {
      const body = {
        name: 'old',
        version: '0.0.1-other',
        concurrency: 1,
        capabilities: {
          kinds: ['backup'],
          transports: ['disk'],
          repositories: null,
          vcenters: null,
          clusters: null,
          datastores: null,
        },
      };
      const v = await api(server.url, 'POST', '/api/v1/proxy/register', { token: tokens.p2!, body });
      assert.equal(v.status, 409, v.text);
      assert.equal(v.body.error.code, 'PROXY_VERSION');
      assert.match(v.body.error.message, /runs Coffer 0\.0\.1-other, this server .*: run the same version on both/);
      const notProxy = await api(server.url, 'POST', '/api/v1/proxy/register', { token: admin, body });
      assert.equal(notProxy.status, 403, notProxy.text);
      assert.equal(notProxy.body.error.code, 'PROXY_REFUSED');
      const elsewhere = await api(server.url, 'GET', '/api/v1/jobs', { token: tokens.p2! });
      assert.equal(elsewhere.status, 401, elsewhere.text);
      // a proxy that never registered under that token claims nothing
      // p1's name, online, from another proxy's token: refused, and p1 keeps its name
      const clash = await api(server.url, 'POST', '/api/v1/proxy/register', {
        token: tokens.p2!,
        body: { ...body, name: 'p1', version: (await api(server.url, 'GET', '/api/health')).body.version },
      });
      assert.equal(clash.status, 403, clash.text);
      assert.equal(clash.body.error.code, 'PROXY_REFUSED');
      assert.match(clash.body.error.message, /proxy name p1 is in use by another online proxy.*its own --name/);
      const claim = await api(server.url, 'POST', '/api/v1/proxy/claim', {
        token: tokens.p2!,
        body: { name: 'p1', free: 1 },
      });
      assert.equal(claim.status, 403, claim.text);
      assert.equal(claim.body.error.code, 'PROXY_REFUSED');
    });

    it('a second proxy registers', async () => {
      proxies.push(startProxy(dir, server.url, 'p2', tokens.p2!));
      await until('p2 online', async () => {
        const r = await api(server.url, 'GET', '/api/v1/proxies', { token: admin });
        return r.body.items.some((p: { name: string; state: string }) => p.name === 'p2' && p.state === 'online');
      });
    });

    it('the same token and name started twice: the second is refused, naming the running instance (scale16)', async () => {
      const first = proxies.find((p) => p.name === 'p2')!;
      const running = new RegExp(`proxy p2 is already running as [^ ]+:${first.pid}:[0-9a-f]{6} \\(last heartbeat`);
      const version = (await api(server.url, 'GET', '/api/health')).body.version;
      const caps = { kinds: ['backup'], transports: ['disk'], repositories: null, vcenters: null, clusters: null };
      const dup = await api(server.url, 'POST', '/api/v1/proxy/register', {
        token: tokens.p2!,
        body: { name: 'p2', version, concurrency: 1, capabilities: { ...caps, datastores: null }, instance: 'x:1:abc' },
      });
      assert.equal(dup.status, 409, dup.text);
      assert.equal(dup.body.error.code, 'CONFLICT');
      assert.match(dup.body.error.message, running);
      // a second `coffer proxy` process: it says why and keeps waiting (the first may be dead and aging out)
      const second = startProxy(dir, server.url, 'p2', tokens.p2!);
      try {
        // (the log file appears once its stream has opened)
        const log = () => (existsSync(second.logFile) ? readFileSync(second.logFile, 'utf8') : '');
        await until('the second p2 to log the refusal', () => running.test(log()));
        assert.match(readFileSync(second.logFile, 'utf8'), /register: \[CONFLICT\] .*; retrying/);
      } finally {
        await second.stop();
      }
      const list = await api(server.url, 'GET', '/api/v1/proxies', { token: admin });
      const p2 = list.body.items.find((p: { name: string }) => p.name === 'p2');
      assert.equal(p2.state, 'online');
      assert.match(p2.instance, new RegExp(`:${first.pid}:`), 'still the first process');
    });

    it('kill -9 of the proxy running a job: requeued once, completed by another proxy, one restore point', {
      skip: engine === 'postgres' ? 'SQLite only (time)' : undefined,
    }, async () => {
      const id = await backup('s1');
      const running = await until('the slow job running with progress', async () => {
        const j = await job(id);
        return j.status === 'running' && (j.progress?.bytesDone ?? 0) > 0 ? j : undefined;
      });
      const victim = proxies.find((p) => p.name === running.proxy)!;
      assert.ok(victim, `running on ${running.proxy}`);
      await victim.kill();
      const done = await finished(id, 90_000);
      assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
      assert.equal(done.attempt, 2, 'ran again, once');
      assert.notEqual(done.proxy, victim.name, 'on the other proxy');
      assert.ok(done.logs.some((l) => l.message.startsWith(`lost: `) && l.message.includes(`proxy:${victim.name}`)));
      assert.equal((await points('s1')).length, 1, 'exactly one restore point');
      proxies.splice(proxies.indexOf(victim), 1);
      const state = await until('the killed proxy offline', async () => {
        const r = await api(server.url, 'GET', '/api/v1/proxies', { token: admin });
        const p = r.body.items.find((x: { name: string }) => x.name === victim.name);
        return p.state === 'offline' ? p : undefined;
      });
      assert.equal(state.running, 0);
    });

    it('kill -9 of a proxy after its backup committed, before it reported: the retry returns that point', {
      skip: engine === 'postgres' ? 'SQLite only (time)' : undefined,
    }, async () => {
      // p3 talks to the server through a relay that, when p3 reports the job's outcome, kills p3 with SIGKILL and
      // drops the report: the restore point is committed in the repository, the catalog never hears of it (a proxy VM
      // crashing, or its network cut, in that window). The surviving proxy is drained so that p3 takes the job.
      const live = proxies[0]!;
      const d = await api(server.url, 'POST', `/api/v1/proxies/${live.name}/drain`, { token: admin });
      assert.equal(d.status, 200, d.text);
      const t = await api(server.url, 'POST', '/api/v1/tokens', { token: admin, body: { name: 'p3', role: 'proxy' } });
      assert.equal(t.status, 201, t.text);
      let victim: RunningProxy | undefined;
      const cut: string[] = [];
      const relay = await startRelay(server.url, (method, url) => {
        if (method !== 'POST' || !/^\/api\/v1\/proxy\/jobs\/\d+\/finish$/.test(url)) return false;
        cut.push(url);
        if (victim) process.kill(victim.pid, 'SIGKILL');
        return true;
      });
      try {
        victim = startProxy(dir, relay.url, 'p3', t.body.token);
        proxies.push(victim);
        const inRepo = () => {
          const l = coffer(['list', '--repo', repo, '--json']);
          assert.equal(l.code, 0, l.stderr);
          return (JSON.parse(l.stdout) as { vm: { name: string } }[]).filter((p) => p.vm.name === 'f3').length;
        };
        const before = { catalog: (await points('f3')).length, repository: inRepo() };
        const id = await backup('f3');
        await victim.exited;
        assert.deepEqual(cut, [`/api/v1/proxy/jobs/${id}/finish`], 'p3 was killed at its report of this job');
        assert.equal(inRepo(), before.repository + 1, 'the point p3 committed is in the repository');
        const u = await api(server.url, 'POST', `/api/v1/proxies/${live.name}/undrain`, { token: admin });
        assert.equal(u.status, 200, u.text);
        const done = (await finished(id, 90_000)) as Awaited<ReturnType<typeof job>> & {
          result: { adopted?: boolean };
        };
        assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
        assert.equal(done.attempt, 2, 'ran again, once');
        assert.equal(done.proxy, live.name);
        assert.equal(done.result.adopted, true, JSON.stringify(done.result));
        assert.ok(done.logs.some((l) => /committed by an earlier attempt of this job/.test(l.message)));
        assert.equal(inRepo(), before.repository + 1, 'no second restore point in the repository');
        assert.equal((await points('f3')).length, before.catalog + 1, 'the catalog lists it once');
      } finally {
        proxies.splice(proxies.indexOf(victim!), 1);
        await relay.close();
      }
    });

    it('a drained proxy takes no new job; undrained it does', async () => {
      const live = proxies[0]!;
      for (const p of proxies) {
        const d = await api(server.url, 'POST', `/api/v1/proxies/${p.name}/drain`, { token: admin });
        assert.equal(d.status, 200, d.text);
        assert.equal(d.body.state, 'drained');
      }
      const id = await backup('f2');
      const waiting = await until('the drained wait reason', async () => {
        const j = await job(id);
        return j.waitReason?.includes(`${live.name} is drained`) ? j : undefined;
      });
      assert.equal(waiting.status, 'queued');
      // on SQLite the proxy killed above is still listed: offline
      if (engine === 'sqlite') assert.match(waiting.waitReason!, /p\d is offline/);
      const u = await api(server.url, 'POST', `/api/v1/proxies/${live.name}/undrain`, { token: admin });
      assert.equal(u.status, 200, u.text);
      const done = await finished(id);
      assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
      assert.equal(done.proxy, live.name);
      const unknown = await api(server.url, 'POST', '/api/v1/proxies/nope/drain', { token: admin });
      assert.equal(unknown.status, 404, unknown.text);
    });

    it('a revoked token: the proxy is refused and exits with PROXY_REFUSED (56)', async () => {
      const live = proxies[0]!;
      const list = await api(server.url, 'GET', '/api/v1/tokens', { token: admin });
      const t = list.body.items.find((x: { name: string; role: string }) => x.name === live.name && x.role === 'proxy');
      const del = await api(server.url, 'DELETE', `/api/v1/tokens/${t.id}`, { token: admin });
      assert.ok(del.status < 300, del.text);
      const code = await live.exited;
      assert.equal(code, 56, readFileSync(live.logFile, 'utf8'));
      assert.match(readFileSync(live.logFile, 'utf8'), /PROXY_REFUSED/);
      proxies.splice(proxies.indexOf(live), 1);
    });
  });

describe('coffer proxy: bad arguments are refused before anything is sent', () => {
  const tmp = tempDir('coffer-proxy-args-');
  after(() => tmp.cleanup());

  it('plain http to another host, an unknown job kind, a missing token file, a non-token', () => {
    const tokenFile = join(tmp.path, 'token');
    writeFileSync(tokenFile, 'cft_abc\n');
    const run = (args: string[]) => coffer(['proxy', '--token-file', tokenFile, ...args]);
    const plain = run(['--server', 'http://192.0.2.1:8080']);
    assert.equal(plain.code, 56, plain.stderr);
    assert.match(plain.stderr, /PROXY_REFUSED.*must be https:\/\//);
    const kind = run(['--server', 'https://192.0.2.1:8443', '--kinds', 'backup,restore']);
    assert.equal(kind.code, 2, kind.stderr);
    assert.match(kind.stderr, /--kinds must be a comma-separated list of backup, verify, prune/);
    const missing = coffer(['proxy', '--server', 'https://192.0.2.1', '--token-file', join(tmp.path, 'none')]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /cannot read the token file/);
    writeFileSync(tokenFile, 'not a token at all\n');
    const garbage = run(['--server', 'https://192.0.2.1:8443']);
    assert.equal(garbage.code, 2, garbage.stderr);
    assert.match(garbage.stderr, /does not hold a token/);
  });
});
