import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { makeDisk } from './helpers/disks.js';
import { freePort, startNbdkit, type Daemon } from './helpers/servers.js';
import { api, makeToken, startServer, until, waitJob, type RunningServer } from './helpers/coffer-server.js';

describe('coffer server: config validation, restart mid-job, schedules, TLS', () => {
  const tmp = tempDir('coffer-server-life-');
  const dir = tmp.path;
  const repo = join(dir, 'repo');
  const disk = join(dir, 'fast.raw');
  let nbd: Daemon | undefined;
  let nbdPort = 0;
  let server: RunningServer | undefined;
  const config = () => ({
    repositories: [{ name: 'main', location: repo, passwordEnv: 'TEST_REPO_PASSWORD' }],
    inventory: [
      { name: 'fast', disks: [disk] },
      // 256 MiB of non-zero data behind nbdkit's delay filter: a backup that takes long enough to be interrupted
      { name: 'slow', disks: [`nbd://127.0.0.1:${nbdPort}/`] },
    ],
    retries: { maxAttempts: 1 },
  });

  before(() => {
    makeDisk(disk, 1024 * 1024, 'fast');
    const r = coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']);
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    await server?.kill();
    await nbd?.stop();
    tmp.cleanup();
  });

  it('refuses an invalid config file with the path of the bad field', () => {
    const cases: [unknown, RegExp][] = [
      [
        { repositories: [{ name: 'main', location: repo }] },
        /repositories\[0\]: exactly one of passwordFile and passwordEnv is required/,
      ],
      [
        { repositories: [{ name: 'main', location: repo, passwordEnv: 'X' }], limits: { perRepository: 0 } },
        /limits\.perRepository: /,
      ],
      [
        { inventory: [{ name: 'a', disks: ['x'] }], notifications: { webhooks: [{ url: 'ftp://x/' }] } },
        /notifications\.webhooks\[0\]\.url: /,
      ],
      [{ repositorys: [] }, /repositorys/],
      ['{ not json', /is not valid JSON/],
    ];
    for (const [cfg, re] of cases) {
      const f = join(dir, 'bad-config.json');
      writeFileSync(f, typeof cfg === 'string' ? cfg : JSON.stringify(cfg));
      const r = coffer(['server', '--listen', '127.0.0.1:1', '--data', join(dir, 'bad-data'), '--config', f]);
      assert.equal(r.code, 2, `${JSON.stringify(cfg)}: ${r.stderr}`);
      assert.match(r.stderr, /coffer: error \[USAGE\]: (invalid )?config file/);
      assert.match(r.stderr, re);
    }
    const role = coffer(['token', 'create', '--data', join(dir, 'bad-data'), '--role', 'root']);
    assert.equal(role.code, 2);
    assert.match(role.stderr, /--role must be one of admin, operator, restore-operator, viewer, not "root"/);
    const listen = coffer(['server', '--listen', 'localhost', '--data', join(dir, 'bad-data')]);
    assert.equal(listen.code, 2);
    assert.match(listen.stderr, /--listen must be HOST:PORT/);
  });

  it('marks a job interrupted by a crash as failed and loses nothing else; the next scheduled run works', async () => {
    nbdPort = await freePort();
    nbd = startNbdkit(dir, nbdPort, 'pattern', ['size=256M', 'rdelay=200ms'], ['delay']);
    const dataDir = join(dir, 'data');
    const env = { TEST_REPO_PASSWORD: TEST_PASSWORD };
    server = await startServer({ dir, dataDir, config: config(), env });
    const admin = makeToken(dataDir, 'admin');
    const p = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'all', repository: 'main', vms: [{ name: 'fast' }, { name: 'slow' }] },
    });
    assert.equal(p.status, 201, p.text);
    const first = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'backup', policy: 'all', vm: 'fast' },
    });
    assert.equal((await waitJob(server.url, admin, first.body.items[0].id)).status, 'succeeded');
    const slow = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'backup', policy: 'all', vm: 'slow' },
    });
    const slowId = slow.body.items[0].id as number;
    await until(
      'the slow job to make progress',
      async () =>
        (await api(server!.url, 'GET', `/api/v1/jobs/${slowId}`, { token: admin })).body.progress?.bytesDone > 0,
    );
    await server.kill();

    server = await startServer({ dir, dataDir, config: config(), env });
    const job = (await api(server.url, 'GET', `/api/v1/jobs/${slowId}`, { token: admin })).body;
    assert.equal(job.status, 'failed');
    assert.equal(job.error.message, 'interrupted by server restart');
    assert.ok(job.logs.some((l: { message: string }) => l.message === 'interrupted by server restart'));
    // nothing else lost: the policy, the earlier job and its restore point
    assert.equal((await api(server.url, 'GET', '/api/v1/policies/all', { token: admin })).status, 200);
    assert.equal(
      (await api(server.url, 'GET', `/api/v1/jobs/${first.body.items[0].id}`, { token: admin })).body.status,
      'succeeded',
    );
    const rps = await until('restore points after restart', async () => {
      const r = await api(server!.url, 'GET', '/api/v1/restore-points?vm=fast', { token: admin });
      return r.body.items.length === 1 ? r.body.items : undefined;
    });
    assert.equal(rps[0].vm, 'fast');
    assert.equal(
      (await api(server.url, 'GET', '/api/v1/restore-points?vm=slow', { token: admin })).body.items.length,
      0,
      'no half restore point',
    );

    // a schedule every 2 seconds (croner: seconds first) on the fast VM runs after the restart
    const put = await api(server.url, 'PUT', '/api/v1/policies/all', {
      token: admin,
      body: { name: 'all', repository: 'main', vms: [{ name: 'fast' }], schedule: '*/2 * * * * *' },
    });
    assert.equal(put.status, 200, put.text);
    assert.ok(put.body.nextRuns.backup);
    const scheduled = await until('a scheduled job', async () => {
      const r = await api(server!.url, 'GET', '/api/v1/jobs?vm=fast&status=succeeded', { token: admin });
      return r.body.items.find((j: { trigger: string }) => j.trigger === 'schedule');
    });
    assert.equal(scheduled.requestedBy, 'schedule:all');
    await api(server.url, 'PUT', '/api/v1/policies/all', {
      token: admin,
      body: { name: 'all', repository: 'main', vms: [{ name: 'fast' }] },
    });
    const points = await api(server.url, 'GET', '/api/v1/restore-points?vm=fast', { token: admin });
    assert.ok(points.body.items.length >= 2);

    // SIGTERM mid-job: the job ends failed ("interrupted by server shutdown"), the server exits 0 and removes its pid file
    const again = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'slow', repository: 'main', vms: [{ name: 'slow' }] },
    });
    assert.equal(again.status, 201);
    const s2 = (
      await api(server.url, 'POST', '/api/v1/jobs', { token: admin, body: { kind: 'backup', policy: 'slow' } })
    ).body.items[0].id as number;
    await until(
      'the second slow job to run',
      async () => (await api(server!.url, 'GET', `/api/v1/jobs/${s2}`, { token: admin })).body.status === 'running',
    );
    // connected before the shutdown starts (fetch resolves with the response headers): a request that only reaches
    // the server once it is closing is not a stream it has to end (it was reset now and then on Node 24)
    const stream = await fetch(`${server.url}/api/v1/jobs/${s2}/events`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(stream.status, 200);
    const events = stream.text();
    const t0 = Date.now();
    await server.stop();
    assert.equal(server.child.exitCode, 0);
    assert.ok(Date.now() - t0 < 10_000, 'shutdown is prompt');
    assert.match(await events, /interrupted by server shutdown/);
    assert.equal(existsSync(join(dir, `server-${server.port}.pid`)), false);
    server = await startServer({ dir, dataDir, config: config(), env });
    const j2 = (await api(server.url, 'GET', `/api/v1/jobs/${s2}`, { token: admin })).body;
    assert.equal(j2.status, 'failed');
    assert.equal(j2.error.message, 'interrupted by server shutdown');

    // the same repository stays consistent for the CLI
    const v = coffer(['verify', '--repo', repo, '--json']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    await server.stop();
    server = undefined;
  });

  it('serves HTTPS with --tls-cert/--tls-key', async () => {
    const key = join(dir, 'tls.key');
    const cert = join(dir, 'tls.crt');
    const r = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    server = await startServer({
      dir,
      dataDir: join(dir, 'data-tls'),
      extraArgs: ['--tls-cert', cert, '--tls-key', key],
      scheme: 'https',
    });
    let hsts: unknown;
    const body = await until(
      'https health',
      () =>
        new Promise<string | undefined>((res) => {
          const req = request(`${server!.url}/api/health`, { ca: readFileSync(cert) }, (resp) => {
            let d = '';
            hsts = resp.headers['strict-transport-security'];
            resp.on('data', (c) => (d += c));
            resp.on('end', () => res(resp.statusCode === 200 ? d : undefined));
          });
          req.on('error', () => res(undefined));
          req.end();
        }),
    );
    assert.equal(JSON.parse(body).status, 'ok');
    assert.match(String(hsts), /^max-age=\d+/, 'HSTS under TLS');
    await server.stop();
    server = undefined;
  });
});
