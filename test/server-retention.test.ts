// The server applies each policy's retention after a backup (engine forget, per VM), runs prune jobs (one at a time
// per repository), and the repository stays clean for `coffer verify --read-data`. Real disk images, the built CLI,
// the real server process.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { makeDisk, mutate } from './helpers/disks.js';
import { expectOk } from './helpers/more-cli.js';
import { api, makeToken, startServer, waitJob, type RunningServer } from './helpers/coffer-server.js';

type Log = { level: string; message: string };

describe('coffer server: policy retention and prune jobs', () => {
  const tmp = tempDir('coffer-server-retention-');
  const dir = tmp.path;
  const dataDir = join(dir, 'data');
  const repo = join(dir, 'repo');
  const pw = join(dir, 'repo.pw');
  const disk = join(dir, 'vm1.raw');
  const disk2 = join(dir, 'vm2.raw');
  let server: RunningServer;
  let admin: string;
  let operator: string;
  const points: string[] = [];

  const backupJob = async (policy: string, vm: string) => {
    const j = await api(server.url, 'POST', '/api/v1/jobs', { token: operator, body: { kind: 'backup', policy, vm } });
    assert.equal(j.status, 202, j.text);
    const job = await waitJob(server.url, admin, j.body.items[0].id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.logs));
    return job;
  };
  const pointsOf = async (vm: string): Promise<string[]> => {
    const r = await api(server.url, 'GET', `/api/v1/restore-points?vm=${vm}`, { token: admin });
    assert.equal(r.status, 200, r.text);
    return r.body.items.map((p: { id: string }) => p.id).sort();
  };
  const messages = (job: { logs: Log[] }) => job.logs.map((l) => l.message);

  before(async () => {
    makeDisk(disk, 2 * 1024 * 1024, 'ret-vm1');
    makeDisk(disk2, 1024 * 1024, 'ret-vm2');
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    writeFileSync(pw, TEST_PASSWORD + '\n');
    server = await startServer({
      dir,
      dataDir,
      config: {
        repositories: [{ name: 'main', location: repo, passwordFile: pw }],
        inventory: [
          { name: 'vm1', disks: [disk] },
          { name: 'vm2', disks: [disk2] },
        ],
        retries: { maxAttempts: 1, backoffSeconds: 0 },
      },
    });
    admin = makeToken(dataDir, 'admin');
    operator = makeToken(dataDir, 'operator');
  });

  after(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  it('refuses a retention that keeps nothing', async () => {
    for (const retention of [{}, { keepLast: 0, keepDaily: 0 }]) {
      const r = await api(server.url, 'POST', '/api/v1/policies', {
        token: admin,
        body: { name: 'empty', repository: 'main', vms: [{ name: 'vm1' }], retention },
      });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.body.error.code, 'USAGE');
      assert.match(r.body.error.message, /body\.retention: must keep something/);
    }
  });

  it('keepLast 2: the third backup forgets the oldest point of that VM only; the job log says what was kept and why', async () => {
    const p = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'keep2', repository: 'main', vms: [{ name: 'vm1' }], retention: { keepLast: 2 } },
    });
    assert.equal(p.status, 201, p.text);
    assert.deepEqual(p.body.retentionStatus, { configured: true, applied: true, status: 'applied after each backup' });
    assert.equal(p.body.pruneAfterForget, false);
    // another VM's point in the same repository, backed up without retention: never looked at
    const other = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'other', repository: 'main', vms: [{ name: 'vm2' }] },
    });
    assert.equal(other.status, 201, other.text);
    assert.deepEqual(other.body.retentionStatus, { configured: false, applied: false, status: 'none' });
    const vm2Job = await backupJob('other', 'vm2');
    assert.ok(!messages(vm2Job).some((m) => m.startsWith('retention')), JSON.stringify(vm2Job.logs));

    for (let i = 0; i < 3; i++) {
      // each backup changes 256 KiB: the forgotten point leaves chunks only it referenced (garbage for prune)
      if (i > 0) mutate(disk, 0, 256 * 1024, `ret-change-${i}`);
      const job = await backupJob('keep2', 'vm1');
      points.push(job.result.id);
      const m = messages(job);
      if (i < 2) {
        assert.ok(m.includes(`retention: ${i + 1} kept, 0 removed`), JSON.stringify(m));
      } else {
        assert.ok(m.includes('retention: 2 kept, 1 removed'), JSON.stringify(m));
        assert.ok(
          m.includes(`retention: removed ${points[0]} (${job.result.retention.removed[0].time})`),
          JSON.stringify(m),
        );
        for (const id of points.slice(1))
          assert.ok(
            m.some((x) => x.startsWith(`retention: kept ${id} `) && x.endsWith(': last')),
            JSON.stringify(m),
          );
        assert.deepEqual(
          job.result.retention.removed.map((r: { id: string }) => r.id),
          [points[0]],
        );
        assert.ok(!m.some((x) => /prune/.test(x)), 'no prune without pruneAfterForget');
      }
    }
    assert.deepEqual(await pointsOf('vm1'), points.slice(1).sort());
    assert.equal((await pointsOf('vm2')).length, 1);
    // the repository agrees with the catalog
    const listed = expectOk(coffer(['list', '--repo', repo, '--json']));
    const ids = (Array.isArray(listed) ? listed : (listed.items ?? listed.points)).map((x: { id: string }) => x.id);
    assert.ok(!ids.includes(points[0]) && ids.includes(points[1]) && ids.includes(points[2]), JSON.stringify(ids));
  });

  it('a held point (coffer hold add) is kept and reported as kept: hold', async () => {
    expectOk(coffer(['hold', 'add', points[1]!, '--repo', repo, '--reason', 'legal', '--json']));
    mutate(disk, 512 * 1024, 256 * 1024, 'ret-change-held');
    const job = await backupJob('keep2', 'vm1');
    points.push(job.result.id);
    const m = messages(job);
    assert.ok(m.includes('retention: 3 kept, 0 removed'), JSON.stringify(m));
    assert.ok(
      m.includes(
        `retention: kept ${points[1]} (${job.result.retention.kept.find((k: { id: string }) => k.id === points[1]).time}): hold`,
      ),
      JSON.stringify(m),
    );
    assert.deepEqual(await pointsOf('vm1'), points.slice(1).sort());
  });

  it('a prune job (operator) deletes the garbage; a second one is refused while it is pending; verify --read-data is clean', async () => {
    const j = await api(server.url, 'POST', '/api/v1/jobs', {
      token: operator,
      body: { kind: 'prune', repository: 'main' },
    });
    assert.equal(j.status, 202, j.text);
    assert.equal(j.body.items[0].kind, 'prune');
    const second = await api(server.url, 'POST', '/api/v1/jobs', {
      token: operator,
      body: { kind: 'prune', repository: 'main' },
    });
    const job = await waitJob(server.url, admin, j.body.items[0].id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.logs));
    // the first one may already have finished when the second request came: then the second is a prune of its own
    if (second.status === 202)
      assert.equal((await waitJob(server.url, admin, second.body.items[0].id)).status, 'succeeded');
    else {
      assert.equal(second.status, 409, second.text);
      assert.equal(second.body.error.code, 'CONFLICT');
    }
    assert.ok(job.result.chunksDeleted > 0, JSON.stringify(job.result));
    assert.equal(job.result.points, 4); // vm1: 3 (one held), vm2: 1
    assert.ok(
      messages(job).some((x) => /^prune: 4 restore points, \d+ chunks referenced; deleted [1-9]\d* chunks/.test(x)),
      JSON.stringify(job.logs),
    );
    const listed = await api(server.url, 'GET', '/api/v1/jobs?kind=prune', { token: admin });
    assert.ok(listed.body.items.some((x: { id: number }) => x.id === job.id));
    const v = expectOk(coffer(['verify', '--repo', repo, '--read-data', '--json']));
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(v.points, 4);
    // every remaining point restores (the held one too)
    for (const id of points.slice(1))
      expectOk(coffer(['restore', id, '--repo', repo, '--disk', '0', '--target', join(dir, `r-${id}.raw`), '--json']));
  });

  it('a viewer and a restore-operator may not start a prune', async () => {
    for (const role of ['viewer', 'restore-operator']) {
      const r = await api(server.url, 'POST', '/api/v1/jobs', {
        token: makeToken(dataDir, role, `p-${role}`),
        body: { kind: 'prune', repository: 'main' },
      });
      assert.equal(r.status, 403, r.text);
    }
  });

  it('another process holding the gc lease: the prune job is skipped, not failed or retried', async () => {
    // a live lease of another prune, as `coffer prune` writes it (plaintext JSON, FORMAT.md §Locking), held by this
    // test process (alive, same host): the engine refuses a second prune
    const now = Date.now();
    mkdirSync(join(repo, 'locks', 'gc'), { recursive: true });
    const lease = join(repo, 'locks', 'gc', 'feedfacefeedface-000000');
    writeFileSync(
      lease,
      JSON.stringify({
        holder: 'feedfacefeedface',
        host: hostname(),
        pid: process.pid,
        operation: 'gc-mark',
        acquiredAt: now - 1000,
        expiresAt: now + 600_000,
      }),
    );
    const j = await api(server.url, 'POST', '/api/v1/jobs', {
      token: operator,
      body: { kind: 'prune', repository: 'main' },
    });
    assert.equal(j.status, 202, j.text);
    const job = await waitJob(server.url, admin, j.body.items[0].id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.logs));
    assert.equal(job.attempt, 1);
    assert.equal(job.result.skipped, true);
    assert.ok(
      messages(job).some((x) => /^prune skipped: gc is locked by gc-mark/.test(x)),
      JSON.stringify(job.logs),
    );
    const { rmSync } = await import('node:fs');
    rmSync(lease);
  });

  it('pruneAfterForget: a backup whose retention removed points queues a prune of the repository', async () => {
    const p = await api(server.url, 'PUT', `/api/v1/policies/keep2`, {
      token: admin,
      body: {
        name: 'keep2',
        repository: 'main',
        vms: [{ name: 'vm1' }],
        retention: { keepLast: 1 },
        pruneAfterForget: true,
      },
    });
    assert.equal(p.status, 200, p.text);
    mutate(disk, 0, 256 * 1024, 'ret-change-auto');
    const job = await backupJob('keep2', 'vm1');
    const m = messages(job);
    // kept: the new point (last) and the held one; removed: the two others
    assert.ok(m.includes('retention: 2 kept, 2 removed'), JSON.stringify(m));
    const queued = m.map((x) => /^queued prune job (\d+) \(pruneAfterForget\)$/.exec(x)).find(Boolean);
    assert.ok(queued, JSON.stringify(m));
    const pj = await waitJob(server.url, admin, Number(queued![1]));
    assert.equal(pj.status, 'succeeded', JSON.stringify(pj.logs));
    assert.equal(pj.kind, 'prune');
    assert.equal(pj.requestedBy, 'policy:keep2');
    assert.ok(pj.result.chunksDeleted > 0, JSON.stringify(pj.result));
    assert.deepEqual(await pointsOf('vm1'), [points[1]!, job.result.id].sort());
    const v = expectOk(coffer(['verify', '--repo', repo, '--read-data', '--json']));
    assert.equal(v.ok, true, JSON.stringify(v));
  });
  it('points made by hand with the CLI are left alone by the policy; removeOtherPoints: true applies the rules to them', async () => {
    mutate(disk, 0, 128 * 1024, 'ret-change-manual');
    const manual = expectOk(coffer(['backup', '--repo', repo, '--vm', 'vm1', disk, '--json'])).id as string;
    mutate(disk, 0, 128 * 1024, 'ret-change-after-manual');
    const p = await api(server.url, 'PUT', `/api/v1/policies/keep2`, {
      token: admin,
      body: { name: 'keep2', repository: 'main', vms: [{ name: 'vm1' }], retention: { keepLast: 1 } },
    });
    assert.equal(p.status, 200, p.text);
    assert.ok(
      p.body.retentionKeeps.some((l: string) => /only restore points this policy made/.test(l)),
      JSON.stringify(p.body.retentionKeeps),
    );
    assert.match(p.body.retentionKeeps[0], /^keepLast 1: the 1 newest restore point/);
    const job = await backupJob('keep2', 'vm1');
    const m = messages(job);
    // the policy's points: the held one (hold), the new one (last); the previous policy point goes, the manual stays
    assert.ok(m.includes('retention: 2 kept, 1 removed'), JSON.stringify(m));
    assert.ok(!m.some((x) => x.includes(manual)), 'the hand-made point is not even looked at');
    assert.deepEqual(await pointsOf('vm1'), [points[1]!, manual, job.result.id].sort());
    // told to: the rules apply to every point of the VM; the manual one goes too
    const p2 = await api(server.url, 'PUT', `/api/v1/policies/keep2`, {
      token: admin,
      body: {
        name: 'keep2',
        repository: 'main',
        vms: [{ name: 'vm1' }],
        retention: { keepLast: 1, removeOtherPoints: true },
      },
    });
    assert.equal(p2.status, 200, p2.text);
    mutate(disk, 0, 128 * 1024, 'ret-change-other');
    const job2 = await backupJob('keep2', 'vm1');
    const m2 = messages(job2);
    assert.ok(m2.includes('retention: 2 kept, 2 removed'), JSON.stringify(m2));
    assert.ok(
      m2.some((x) => x.startsWith(`retention: removed ${manual} `)),
      JSON.stringify(m2),
    );
    assert.deepEqual(await pointsOf('vm1'), [points[1]!, job2.result.id].sort());
  });
});
