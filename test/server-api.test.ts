import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { makeDisk } from './helpers/disks.js';
import {
  api,
  makeToken,
  startServer,
  startWebhookReceiver,
  until,
  waitJob,
  type RunningServer,
} from './helpers/coffer-server.js';

const ROLES = ['admin', 'operator', 'restore-operator', 'viewer'] as const;

describe('coffer server: REST API, jobs, RBAC', () => {
  const tmp = tempDir('coffer-server-api-');
  const dir = tmp.path;
  const dataDir = join(dir, 'data');
  const repo = join(dir, 'repo');
  const disk = join(dir, 'vm1-disk0.raw');
  const disk2 = join(dir, 'vm1-disk1.raw');
  let server: RunningServer;
  let hook: Awaited<ReturnType<typeof startWebhookReceiver>>;
  const tokens: Record<string, string> = {};
  let admin: string;
  let pointId: string;

  before(async () => {
    makeDisk(disk, 3 * 1024 * 1024 + 4096, 'vm1');
    makeDisk(disk2, 1024 * 1024, 'vm1-b');
    const r = coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']);
    assert.equal(r.code, 0, r.stderr);
    writeFileSync(join(dir, 'repo.pw'), TEST_PASSWORD + '\n');
    hook = await startWebhookReceiver();
    server = await startServer({
      dir,
      dataDir,
      config: {
        repositories: [{ name: 'main', location: repo, passwordFile: join(dir, 'repo.pw') }],
        inventory: [
          { name: 'vm1', disks: [disk, disk2] },
          { name: 'ghost', disks: [join(dir, 'missing.raw')] },
        ],
        retries: { maxAttempts: 1, backoffSeconds: 0 },
        http: { bodyLimitBytes: 4096, loginMaxFailures: 5 },
        notifications: { webhooks: [{ url: hook.url, events: ['job.failed'] }] },
      },
    });
    for (const role of ROLES) tokens[role] = makeToken(dataDir, role);
    admin = tokens.admin!;
  });

  after(async () => {
    await server?.stop();
    await hook?.close();
    tmp.cleanup();
  });

  it('serves health and the OpenAPI document without authentication', async () => {
    const h = await api(server.url, 'GET', '/api/health');
    assert.equal(h.status, 200);
    assert.equal(h.body.status, 'ok');
    const o = await api(server.url, 'GET', '/api/openapi.json');
    assert.equal(o.status, 200);
    assert.equal(o.body.openapi, '3.0.3');
    for (const p of [
      '/api/v1/restore-points',
      '/api/v1/restore-points/{id}/disks/{disk}/files',
      '/api/v1/restore-points/{id}/disks/{disk}/files/content',
      '/api/v1/vms',
      '/api/v1/policies',
      '/api/v1/policies/{id}',
      '/api/v1/repositories',
      '/api/v1/jobs',
      '/api/v1/jobs/{id}',
      '/api/v1/audit',
    ]) {
      assert.ok(o.body.paths[p], `OpenAPI lacks ${p}`);
    }
    assert.ok(o.body.paths['/api/v1/policies'].post.requestBody.content['application/json'].schema.properties.schedule);
  });

  it('answers 401 with one body for a missing, malformed, unknown or revoked token', async () => {
    const none = await api(server.url, 'GET', '/api/v1/vms');
    const bad = await api(server.url, 'GET', '/api/v1/vms', { headers: { authorization: 'Bearer not a token!' } });
    const unknown = await api(server.url, 'GET', '/api/v1/vms', { token: 'cft_' + 'A'.repeat(43) });
    const basic = await api(server.url, 'GET', '/api/v1/vms', { headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } });
    for (const r of [none, bad, unknown, basic]) {
      assert.equal(r.status, 401);
      assert.deepEqual(r.body, none.body);
      assert.equal(r.body.error.code, 'UNAUTHENTICATED');
      assert.doesNotMatch(r.text, /at .*\.js:\d+/); // no stack trace
    }
    const t = await api(server.url, 'POST', '/api/v1/tokens', {
      token: admin,
      body: { name: 'short-lived', role: 'viewer' },
    });
    assert.equal(t.status, 201);
    assert.equal((await api(server.url, 'GET', '/api/v1/vms', { token: t.body.token })).status, 200);
    assert.equal((await api(server.url, 'DELETE', `/api/v1/tokens/${t.body.id}`, { token: admin })).status, 200);
    const revoked = await api(server.url, 'GET', '/api/v1/vms', { token: t.body.token });
    assert.equal(revoked.status, 401);
    assert.deepEqual(revoked.body, none.body);
  });

  it('rejects invalid policies with the path of each bad field', async () => {
    const bad = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: {
        name: 'p-bad',
        repository: 'main',
        vms: [{ name: 'vm1' }],
        schedule: 'every tuesday',
        retention: { keepDaily: -1 },
      },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'USAGE');
    assert.match(bad.body.error.message, /body\.schedule: invalid cron expression "every tuesday"/);
    assert.match(bad.body.error.message, /body\.retention\.keepDaily: /);
    const noRepo = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'p-bad', repository: 'nope', vms: [{ name: 'vm1' }] },
    });
    assert.equal(noRepo.status, 400);
    assert.match(noRepo.body.error.message, /repository: unknown repository "nope"/);
    const extra = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'p-bad', repository: 'main', vms: [{ name: 'vm1' }], shedule: '* * * * *' },
    });
    assert.equal(extra.status, 400);
    assert.match(extra.body.error.message, /shedule/);
    const vms = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'p-bad', repository: 'main', vms: [] },
    });
    assert.match(vms.body.error.message, /body\.vms: /);
  });

  it('rejects malformed (400) and oversized (413) bodies', async () => {
    const malformed = await api(server.url, 'POST', '/api/v1/policies', { token: admin, body: '{"name": ' });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.error.code, 'USAGE');
    assert.match(malformed.body.error.message, /JSON/);
    const big = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'big', repository: 'main', vms: [{ name: 'vm1' }], description: 'x'.repeat(10_000) },
    });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'USAGE');
    const wrongType = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: 'name=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(wrongType.status, 415);
  });

  it('backs up a VM through a policy, lists its restore point, restores it byte for byte', async () => {
    const p = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: {
        name: 'gold',
        repository: 'main',
        vms: [{ pattern: 'vm*' }],
        rpoHours: 24,
        retention: { keepLast: 7 },
        tags: ['api'],
      },
    });
    assert.equal(p.status, 201, p.text);
    assert.deepEqual(
      p.body.resolvedVms.vms.map((v: { name: string }) => v.name),
      ['vm1'],
    );
    assert.equal(p.body.retentionStatus.status, 'applied after each backup');
    const j = await api(server.url, 'POST', '/api/v1/jobs', {
      token: tokens.operator,
      body: { kind: 'backup', policy: 'gold' },
    });
    assert.equal(j.status, 202, j.text);
    const job = await waitJob(server.url, admin, j.body.items[0].id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.logs));
    assert.equal(job.vm, 'vm1');
    assert.ok(job.logs.some((l: { message: string }) => /restore point/.test(l.message)));
    assert.ok(
      job.logs.some((l: { message: string }) => l.message === 'retention: 1 kept, 0 removed'),
      JSON.stringify(job.logs),
    );
    assert.ok(
      job.logs.some((l: { message: string }) => /^retention: kept [0-9a-f]+ \(.*\): last$/.test(l.message)),
      JSON.stringify(job.logs),
    );
    assert.equal(job.requestedBy, 'token:operator (' + job.requestedBy.split('(')[1]);

    const rps = await api(server.url, 'GET', '/api/v1/restore-points?vm=vm1', { token: tokens.viewer });
    assert.equal(rps.status, 200);
    assert.equal(rps.body.items.length, 1);
    pointId = rps.body.items[0].id;
    assert.equal(pointId, job.result.id);
    assert.deepEqual(
      rps.body.items[0].disks.map((d: { sizeBytes: number }) => d.sizeBytes),
      [3 * 1024 * 1024 + 4096, 1024 * 1024],
    );
    // the policy's tags, the tag by which its retention knows the points it made (issue 20), and the job's run tag (a
    // retry of a lost attempt that had committed returns that point: issue 16)
    assert.deepEqual(rps.body.items[0].tags, [
      'api',
      `coffer-policy:${p.body.id}`,
      `coffer-job:${job.id}:${Date.parse(job.createdAt)}`,
    ]);
    // issue 18: the point's state (suspicious / failed / verified / clean), anomaly score and reasons
    assert.equal(rps.body.items[0].status.state, 'clean');
    assert.equal(rps.body.items[0].status.score, 0);
    assert.deepEqual(rps.body.items[0].status.reasons, []);

    for (const d of [0, 1]) {
      const r = await api(server.url, 'POST', '/api/v1/jobs', {
        token: tokens['restore-operator'],
        body: { kind: 'restore', repository: 'main', pointId, disk: d, target: `vm1-restored-${d}.raw` },
      });
      assert.equal(r.status, 202, r.text);
      const rj = await waitJob(server.url, admin, r.body.items[0].id);
      assert.equal(rj.status, 'succeeded', JSON.stringify(rj.logs));
      const restored = readFileSync(join(dataDir, 'restores', `vm1-restored-${d}.raw`));
      assert.ok(restored.equals(readFileSync(d === 0 ? disk : disk2)), `disk ${d} differs after restore`);
    }

    const vms = await api(server.url, 'GET', '/api/v1/vms', { token: tokens.viewer });
    const vm1 = vms.body.items.find((v: { name: string }) => v.name === 'vm1');
    assert.equal(vm1.protected, true);
    assert.equal(vm1.rpoCompliant, true);
    assert.equal(vm1.lastJob.status, 'succeeded');
    assert.equal(vm1.lastPoint.id, pointId);
    const ghost = vms.body.items.find((v: { name: string }) => v.name === 'ghost');
    assert.equal(ghost.protected, false);
    assert.equal(ghost.rpoCompliant, null);

    const repos = await api(server.url, 'GET', '/api/v1/repositories', { token: tokens.viewer });
    assert.equal(repos.body.items[0].name, 'main');
    assert.equal(repos.body.items[0].points, 1);
    assert.ok(repos.body.items[0].storedBytes > 0);
    assert.ok(repos.body.items[0].dedupRatio > 0);
  });

  it('streams a job log over Server-Sent Events', async () => {
    const j = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'verify', repository: 'main', readDataPercent: 100 },
    });
    assert.equal(j.status, 202);
    const r = await fetch(`${server.url}/api/v1/jobs/${j.body.items[0].id}/events`, {
      headers: { authorization: `Bearer ${tokens.viewer}` },
    });
    assert.equal(r.headers.get('content-type'), 'text/event-stream');
    const text = await r.text(); // the stream ends when the job has finished
    assert.match(text, /event: log\ndata: .*started/);
    assert.match(text, /event: status\ndata: \{"status":"succeeded"/);
  });

  it('refuses restore targets outside the restore directories and unknown restore points', async () => {
    const out = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'restore', repository: 'main', pointId, disk: 0, target: '/etc/passwd', force: true },
    });
    assert.equal(out.status, 400);
    assert.match(out.body.error.message, /target: "\/etc\/passwd" is outside the restore directories/);
    const up = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'restore', repository: 'main', pointId, disk: 0, target: '../escape.raw' },
    });
    assert.equal(up.status, 400);
    const missing = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'restore', repository: 'main', pointId: 'f'.repeat(32), disk: 0, target: 'x.raw' },
    });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'NOT_FOUND');
  });

  it('enforces the RBAC matrix (role x endpoint class)', async () => {
    const classes: Record<string, (t: string, role: string) => Promise<number>> = {
      read: async (t) => (await api(server.url, 'GET', '/api/v1/restore-points', { token: t })).status,
      restore: async (t, role) =>
        (
          await api(server.url, 'POST', '/api/v1/jobs', {
            token: t,
            body: { kind: 'restore', repository: 'main', pointId, disk: 1, target: `rbac-${role}.raw` },
          })
        ).status,
      operate: async (t) =>
        (await api(server.url, 'POST', '/api/v1/jobs', { token: t, body: { kind: 'verify', repository: 'main' } }))
          .status,
      // one prune at a time per repository: each started one is awaited before the next role asks
      prune: async (t) => {
        const r = await api(server.url, 'POST', '/api/v1/jobs', {
          token: t,
          body: { kind: 'prune', repository: 'main' },
        });
        if (r.status === 202) assert.equal((await waitJob(server.url, admin, r.body.items[0].id)).status, 'succeeded');
        return r.status;
      },
      policies: async (t, role) => {
        const r = await api(server.url, 'POST', '/api/v1/policies', {
          token: t,
          body: { name: `rbac-${role}`, repository: 'main', vms: [{ name: 'vm1' }] },
        });
        if (r.status === 201) await api(server.url, 'DELETE', `/api/v1/policies/${r.body.id}`, { token: t });
        return r.status;
      },
      admin: async (t) => (await api(server.url, 'GET', '/api/v1/audit', { token: t })).status,
      // downloading file content: the permission check comes first; past it this disk (no filesystem) answers 422
      download: async (t) =>
        (await api(server.url, 'GET', `/api/v1/restore-points/${pointId}/disks/0/files/content?path=/x`, { token: t }))
          .status,
    };
    const expected: Record<string, Record<string, number>> = {
      admin: { read: 200, restore: 202, operate: 202, prune: 202, policies: 201, admin: 200, download: 422 },
      operator: { read: 200, restore: 202, operate: 202, prune: 202, policies: 201, admin: 403, download: 422 },
      'restore-operator': {
        read: 200,
        restore: 202,
        operate: 403,
        prune: 403,
        policies: 403,
        admin: 403,
        download: 422,
      },
      viewer: { read: 200, restore: 403, operate: 403, prune: 403, policies: 403, admin: 403, download: 403 },
    };
    const got: Record<string, Record<string, number>> = {};
    for (const role of ROLES) {
      got[role] = {};
      for (const [cls, call] of Object.entries(classes)) got[role]![cls] = await call(tokens[role]!, role);
    }
    assert.deepEqual(got, expected);
    const forbidden = await api(server.url, 'GET', '/api/v1/users', { token: tokens.viewer });
    assert.equal(forbidden.body.error.code, 'FORBIDDEN');
    // let the restore and verify jobs the matrix started finish before other tests count jobs
    const running = await api(server.url, 'GET', '/api/v1/jobs?limit=20', { token: admin });
    for (const j of running.body.items) await waitJob(server.url, admin, j.id);
  });

  it('logs in local users with scrypt-hashed passwords; sessions carry the user role', async () => {
    const c = await api(server.url, 'POST', '/api/v1/users', {
      token: admin,
      body: { username: 'alice', password: 'correct horse', role: 'viewer' },
    });
    assert.equal(c.status, 201, c.text);
    const dup = await api(server.url, 'POST', '/api/v1/users', {
      token: admin,
      body: { username: 'alice', password: 'correct horse', role: 'viewer' },
    });
    assert.equal(dup.status, 409);
    const wrong = await api(server.url, 'POST', '/api/v1/auth/login', {
      body: { username: 'alice', password: 'wrong horse' },
    });
    const nobody = await api(server.url, 'POST', '/api/v1/auth/login', {
      body: { username: 'mallory', password: 'wrong horse' },
    });
    assert.equal(wrong.status, 401);
    assert.deepEqual(wrong.body, nobody.body);
    const ok = await api(server.url, 'POST', '/api/v1/auth/login', {
      body: { username: 'alice', password: 'correct horse' },
    });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.role, 'viewer');
    const me = await api(server.url, 'GET', '/api/v1/me', { token: ok.body.token });
    assert.deepEqual(me.body, { actor: 'user:alice', role: 'viewer' });
    assert.equal(
      (
        await api(server.url, 'POST', '/api/v1/jobs', {
          token: ok.body.token,
          body: { kind: 'verify', repository: 'main' },
        })
      ).status,
      403,
    );
    const users = await api(server.url, 'GET', '/api/v1/users', { token: admin });
    assert.doesNotMatch(users.text, /scrypt|password/);
  });

  it('keeps an audit log of changes and restores (who, what, when, from where)', async () => {
    const a = await api(server.url, 'GET', '/api/v1/audit?limit=500', { token: admin });
    assert.equal(a.status, 200);
    const restore = a.body.items.find(
      (e: any) => e.action === 'POST /api/v1/jobs' && e.details.kind === 'restore' && e.status === 202,
    );
    assert.ok(restore, 'a restore is audited');
    assert.match(restore.actor, /^token:restore-operator/);
    assert.equal(restore.remote, '127.0.0.1');
    assert.match(restore.time, /^\d{4}-\d\d-\d\dT/);
    assert.equal(restore.details.pointId, pointId);
    assert.ok(
      a.body.items.some(
        (e: any) => e.action === 'POST /api/v1/policies' && e.status === 201 && e.details.name === 'gold',
      ),
    );
    assert.ok(
      a.body.items.some((e: any) => e.action === 'POST /api/v1/jobs' && e.status === 403),
      'denied attempts are audited too',
    );
    assert.ok(a.body.items.some((e: any) => e.action === 'token.create' && e.actor === 'cli:token-create'));
    assert.ok(a.body.items.some((e: any) => e.action === 'auth.login' && e.status === 401));
    assert.doesNotMatch(a.text, /correct horse/);
  });

  it('paginates with limit and cursor', async () => {
    const j = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'backup', policy: 'gold', vm: 'vm1' },
    });
    assert.equal((await waitJob(server.url, admin, j.body.items[0].id)).status, 'succeeded');
    const first = await api(server.url, 'GET', '/api/v1/restore-points?limit=1', { token: tokens.viewer });
    assert.equal(first.body.items.length, 1);
    assert.ok(first.body.nextCursor);
    const second = await api(server.url, 'GET', `/api/v1/restore-points?limit=1&cursor=${first.body.nextCursor}`, {
      token: tokens.viewer,
    });
    assert.equal(second.body.items.length, 1);
    assert.notEqual(second.body.items[0].id, first.body.items[0].id);
    assert.equal(second.body.items[0].id, pointId);
    assert.equal(second.body.nextCursor, null);
    const bad = await api(server.url, 'GET', '/api/v1/restore-points?limit=0&cursor=zzz', { token: tokens.viewer });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /query\.limit/);
    const jobs = await api(server.url, 'GET', '/api/v1/jobs?limit=2&kind=backup', { token: tokens.viewer });
    assert.equal(jobs.body.items.length, 2);
  });

  it('notifies a webhook when a job fails; exposes Prometheus metrics', async () => {
    const p = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'ghosts', repository: 'main', vms: [{ name: 'ghost' }] },
    });
    assert.equal(p.status, 201);
    const j = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'backup', policy: 'ghosts' },
    });
    const job = await waitJob(server.url, admin, j.body.items[0].id);
    assert.equal(job.status, 'failed');
    assert.equal(job.error.code, 'SOURCE_UNREADABLE');
    const got = await until('webhook', () =>
      hook.received.find((r) => r.body.event === 'job.failed' && r.body.job.id === job.id),
    );
    assert.equal(got.body.job.vm, 'ghost');
    assert.match(got.body.summary, /failed/);

    assert.equal((await api(server.url, 'GET', '/metrics')).status, 401);
    const m = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${tokens.viewer}` } });
    assert.equal(m.status, 200);
    assert.match(m.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    const text = await m.text();
    assert.match(text, /^coffer_jobs\{kind="backup",status="succeeded"\} 2$/m);
    assert.match(text, /^coffer_jobs\{kind="backup",status="failed"\} 1$/m);
    assert.match(text, /^coffer_vm_rpo_compliant\{vm="vm1"\} 1$/m);
    assert.match(text, /^coffer_vm_rpo_compliant\{vm="ghost"\} 0$/m);
    assert.match(text, /^coffer_repository_stored_bytes\{repository="main"\} [1-9]\d*$/m);
    assert.match(text, /^# TYPE coffer_http_requests_total counter$/m);
  });

  it('throttles password guessing per remote address (late in this file: it blocks logins from 127.0.0.1)', async () => {
    // two logins failed above (alice, mallory); three more reach the limit of 5
    for (let i = 0; i < 3; i++)
      assert.equal(
        (await api(server.url, 'POST', '/api/v1/auth/login', { body: { username: 'alice', password: `guess ${i}` } }))
          .status,
        401,
      );
    const right = await api(server.url, 'POST', '/api/v1/auth/login', {
      body: { username: 'alice', password: 'correct horse' },
    });
    assert.equal(right.status, 401, 'blocked even with the right password');
    assert.equal(right.body.error.message, 'wrong user name or password');
    const a = await api(server.url, 'GET', '/api/v1/audit?action=auth.login&limit=1', { token: admin });
    assert.equal(a.body.items[0].details.throttled, true);
    assert.equal((await api(server.url, 'GET', '/api/v1/me', { token: admin })).status, 200, 'tokens are not affected');
  });

  it('browses files of a restore point disk (a disk without partition table or filesystem: coded errors)', async () => {
    // real ext4/FAT browsing and downloads: test/server-files.test.ts; this disk holds no filesystem
    const r = await api(server.url, 'GET', `/api/v1/restore-points/${pointId}/disks/0/files`, { token: tokens.viewer });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.scheme, 'none');
    assert.deepEqual(
      r.body.items.map((p: { number: number; filesystem: string | null }) => [p.number, p.filesystem]),
      [[0, null]],
    );
    const ls = await api(server.url, 'GET', `/api/v1/restore-points/${pointId}/disks/0/files?path=/`, {
      token: tokens.viewer,
    });
    assert.equal(ls.status, 422, ls.text);
    assert.match(ls.body.error.code, /^FS_(UNSUPPORTED|CORRUPT)$/);
  });
});
