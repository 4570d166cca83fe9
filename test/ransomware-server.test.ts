import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { COFFER_BIN, coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { expectOk } from './helpers/more-cli.js';
import {
  api,
  makeToken,
  startServer,
  startWebhookReceiver,
  until,
  waitJob,
  type RunningServer,
} from './helpers/coffer-server.js';

/** bench/ransomware-sim.mjs: guest-like churn and an in-place openssl encryption of an ext4 image (debugfs). */
const SIM = resolve(COFFER_BIN, '../../../bench/ransomware-sim.mjs');

function sim(img: string, ...args: string[]): { changedBytes: number; files: number } {
  const r = spawnSync(process.execPath, [SIM, img, ...args], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `ransomware-sim ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/**
 * The server's response to a suspicious restore point, with a real server, a real ext4 guest image and a real attack
 * (openssl in place, renames, notes): holds on the point and on the last clean one (retention keepLast 1 keeps
 * both), a `point.suspicious` webhook, the state and holds in the API, a file-level indicators job that finds the
 * notes and renames (`point.indicators`); and a policy's recoverability check every 2 points.
 */
describe('coffer server: suspicious points held and notified, policy checks, file indicators', () => {
  const tmp = tempDir('coffer-server-cyber-');
  const dir = tmp.path;
  const dataDir = join(dir, 'data');
  const repo = join(dir, 'repo');
  const img = join(dir, 'guest.raw');
  let server: RunningServer;
  let hook: Awaited<ReturnType<typeof startWebhookReceiver>>;
  let admin: string;
  let policyId = '';
  const points: string[] = [];

  const backup = async () => {
    const j = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'backup', policy: policyId, vm: 'guest' },
    });
    assert.equal(j.status, 202, j.text);
    const job = await waitJob(server.url, admin, j.body.items[0].id, 120_000);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.logs));
    points.push(job.result.id);
    return job;
  };
  const pointsOf = async (): Promise<Map<string, any>> => {
    const r = await api(server.url, 'GET', '/api/v1/restore-points?vm=guest', { token: admin });
    assert.equal(r.status, 200, r.text);
    return new Map(r.body.items.map((p: any) => [p.id, p]));
  };
  const checkJobs = async (): Promise<any[]> => {
    const r = await api(server.url, 'GET', '/api/v1/jobs?kind=check', { token: admin });
    assert.equal(r.status, 200, r.text);
    return r.body.items;
  };

  before(async () => {
    sim(img, 'make', '--seed', 'server', '--size-mib', '64');
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    writeFileSync(join(dir, 'repo.pw'), `${TEST_PASSWORD}\n`);
    hook = await startWebhookReceiver();
    server = await startServer({
      dir,
      dataDir,
      config: {
        repositories: [{ name: 'main', location: repo, passwordFile: join(dir, 'repo.pw') }],
        inventory: [{ name: 'guest', disks: [img] }],
        retries: { maxAttempts: 1, backoffSeconds: 0 },
        notifications: { webhooks: [{ url: hook.url, events: ['point.suspicious', 'point.indicators'] }] },
      },
    });
    admin = makeToken(dataDir, 'admin');
  });

  after(async () => {
    await server?.stop();
    await hook?.close();
    tmp.cleanup();
  });

  it('validates the signals and check sections of a policy', async () => {
    const bad = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'bad', repository: 'main', vms: [{ name: 'guest' }], signals: { suspiciousScore: 500 } },
    });
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.body.error.message, /signals\.suspiciousScore/);
    const bad2 = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'bad', repository: 'main', vms: [{ name: 'guest' }], check: { everyPoints: 0 } },
    });
    assert.equal(bad2.status, 400, bad2.text);
    const r = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: {
        name: 'cyber',
        repository: 'main',
        vms: [{ name: 'guest' }],
        retention: { keepLast: 1 },
        signals: { holdDays: 7 },
        check: { everyPoints: 2 },
      },
    });
    assert.equal(r.status, 201, r.text);
    policyId = r.body.id;
    assert.deepEqual(r.body.signals, { holdOnSuspicious: true, holdDays: 7, fileIndicators: true });
    assert.deepEqual(r.body.check, { everyPoints: 2, timeoutMinutes: 10 });
  });

  it('a policy check every 2 points: queued after the second backup, e2fsck ok, recorded', async () => {
    const first = await backup();
    assert.equal(first.result.checkJob, undefined);
    assert.equal((await checkJobs()).length, 0);
    sim(img, 'churn', '--seed', 'server-1');
    const second = await backup();
    assert.equal(second.result.signals.suspicious, false);
    assert.equal(typeof second.result.checkJob, 'number');
    const check = await waitJob(server.url, admin, second.result.checkJob, 120_000);
    assert.equal(check.status, 'succeeded', JSON.stringify(check.logs));
    assert.equal(check.result.ok, true);
    assert.equal(check.result.pointId, points[1]);
    assert.ok(existsSync(join(repo, 'checks', points[1]!)));
    // retention keepLast 1: the first point is gone
    const pts = await pointsOf();
    assert.deepEqual([...pts.keys()], [points[1]]);
    assert.equal(pts.get(points[1]!).status.check.ok, true);
  });

  it('a suspicious point: held with the last clean one, notified, marked in the API; retention keeps both', async () => {
    const a = sim(img, 'attack', '--seed', 'server-attack', '--percent', '25');
    assert.ok(a.files > 20, `files encrypted: ${a.files}`);
    const job = await backup();
    const suspicious = points[2]!;
    const clean = points[1]!;
    assert.equal(job.result.signals.suspicious, true, JSON.stringify(job.result.signals));
    const inc = job.result.incident;
    assert.equal(inc.pointId, suspicious);
    assert.equal(inc.lastClean, clean);
    assert.deepEqual(
      inc.holds.map((h: any) => [h.pointId, h.role]),
      [
        [suspicious, 'suspicious'],
        [clean, 'last-clean'],
      ],
    );
    const days = (Date.parse(inc.holds[0].until) - Date.now()) / 86_400_000;
    assert.ok(days > 6.9 && days <= 7, `hold for ${days} days`);
    const msgs = job.logs.map((l: any) => l.message).join('\n');
    assert.match(msgs, /is SUSPICIOUS \(score \d+\)/);
    assert.match(msgs, new RegExp(`retention: kept ${clean} \\(.*\\): hold`));
    // keepLast 1 would remove the clean point: the hold keeps it
    const pts = await pointsOf();
    assert.deepEqual([...pts.keys()].sort(), [clean, suspicious].sort());
    assert.equal(pts.get(suspicious).status.state, 'suspicious');
    assert.equal(pts.get(suspicious).status.holds.length, 1);
    assert.match(pts.get(clean).status.holds[0].reason, /last clean point before suspicious/);
    assert.equal(pts.get(clean).status.state, 'clean');
    assert.equal(readdirSync(join(repo, 'holds')).sort().join(), [clean, suspicious].sort().join());
    const n = await until('point.suspicious webhook', () =>
      hook.received.find((r) => r.body.event === 'point.suspicious'),
    );
    assert.equal(n.body.pointId, suspicious);
    assert.equal(n.body.lastClean, clean);
    assert.ok(n.body.score >= 50);
    assert.match(n.body.summary, /is suspicious \(score \d+\): disk 0: .*incompressible/);
    assert.equal(n.body.holds.length, 2);
    // no policy check for the suspicious point yet (1 of 2 since the checked one)
    assert.ok(!('checkJob' in job.result));
  });

  it('the file-level indicators job of the suspicious point finds the notes and the renames', async () => {
    const jobs = (await checkJobs()).filter((j) => j.params.files === true);
    assert.equal(jobs.length, 1);
    const j = await waitJob(server.url, admin, jobs[0].id, 120_000);
    assert.equal(j.status, 'succeeded', JSON.stringify(j.logs));
    const r = j.result;
    assert.equal(r.found, true);
    assert.equal(r.pointId, points[2]);
    assert.equal(r.againstId, points[1]);
    assert.ok(r.ransomNotes.count >= 3, JSON.stringify(r.ransomNotes));
    assert.match(r.ransomNotes.examples[0], /README_RESTORE_FILES\.txt$/);
    assert.equal(r.renames.extension, '.locked');
    assert.ok(r.renames.count > 20);
    assert.ok(r.entropyRewrites.count > 10, JSON.stringify(r.entropyRewrites));
    assert.match(r.reasons.join('\n'), /ransom note/);
    const n = await until('point.indicators webhook', () =>
      hook.received.find((x) => x.body.event === 'point.indicators'),
    );
    assert.equal(n.body.pointId, points[2]);
    assert.equal((await pointsOf()).get(points[2]!).status.indicators.found, true);
  });
});
