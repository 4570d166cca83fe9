import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { makeDisk } from './helpers/disks.js';
import { freePort, startNbdkit, type Daemon } from './helpers/servers.js';
import {
  api,
  makeToken,
  startServer,
  startWebhookReceiver,
  until,
  waitJob,
  type RunningServer,
} from './helpers/coffer-server.js';

/** A tiny SMTP receiver (RFC 5321 happy path: EHLO, MAIL, RCPT, DATA, QUIT) that records each message. */
async function startSmtpReceiver(): Promise<{
  port: number;
  messages: { from: string; to: string[]; data: string }[];
  close(): Promise<void>;
}> {
  const messages: { from: string; to: string[]; data: string }[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    let buf = '';
    let inData = false;
    let cur = { from: '', to: [] as string[], data: '' };
    s.write('220 localhost test SMTP\r\n');
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          cur.data = buf.slice(0, end);
          buf = buf.slice(end + 5);
          inData = false;
          messages.push(cur);
          cur = { from: '', to: [], data: '' };
          s.write('250 OK queued\r\n');
          continue;
        }
        const i = buf.indexOf('\r\n');
        if (i < 0) return;
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const cmd = line.slice(0, 4).toUpperCase();
        if (cmd === 'EHLO' || cmd === 'HELO') s.write('250-localhost\r\n250 8BITMIME\r\n');
        else if (cmd === 'MAIL') (cur.from = line), s.write('250 OK\r\n');
        else if (cmd === 'RCPT') cur.to.push(line), s.write('250 OK\r\n');
        else if (cmd === 'DATA') (inData = true), s.write('354 go ahead\r\n');
        else if (cmd === 'QUIT') s.end('221 bye\r\n');
        else s.write('250 OK\r\n');
      }
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return {
    port,
    messages,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

describe('coffer server: notifications, retries, limits, cancel', () => {
  const tmp = tempDir('coffer-server-notify-');
  const dir = tmp.path;
  const repo = join(dir, 'repo');
  const disk = join(dir, 'quick.raw');
  let server: RunningServer;
  let hook: Awaited<ReturnType<typeof startWebhookReceiver>>;
  let smtp: Awaited<ReturnType<typeof startSmtpReceiver>>;
  let nbd: Daemon;
  let admin: string;

  before(async () => {
    makeDisk(disk, 512 * 1024, 'quick');
    assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024']).code, 0);
    hook = await startWebhookReceiver();
    smtp = await startSmtpReceiver();
    const nbdPort = await freePort();
    nbd = startNbdkit(dir, nbdPort, 'pattern', ['size=256M', 'rdelay=200ms'], ['delay']);
    // nothing listens there: "connection refused" is worth a retry (the NBD server may be restarting)
    const closedPort = await freePort();
    server = await startServer({
      dir,
      dataDir: join(dir, 'data'),
      env: { REPO_PW: TEST_PASSWORD, HOOK_TOKEN: 'hook-secret' },
      config: {
        repositories: [{ name: 'main', location: repo, passwordEnv: 'REPO_PW' }],
        inventory: [
          { name: 'quick', disks: [disk] },
          { name: 'slow', disks: [`nbd://127.0.0.1:${nbdPort}/`] },
          { name: 'ghost', disks: [join(dir, 'missing.raw')] },
          { name: 'unreachable', disks: [`nbd://127.0.0.1:${closedPort}/`] },
          // missing at first (fails, not retried), then made: the next backup recovers
          { name: 'flaky', disks: [join(dir, 'flaky.raw')] },
        ],
        retries: { maxAttempts: 3, backoffSeconds: 0.2 },
        limits: { perSource: 1, perRepository: 4 },
        slaCheckSeconds: 1,
        notifications: {
          webhooks: [
            {
              url: hook.url,
              events: ['job.failed', 'job.first-failure', 'job.recovered', 'sla.breach'],
              tokenEnv: 'HOOK_TOKEN',
            },
          ],
          smtp: {
            host: '127.0.0.1',
            port: smtp.port,
            from: 'coffer@example.test',
            to: ['ops@example.test'],
            events: ['job.failed'],
          },
        },
      },
    });
    admin = makeToken(join(dir, 'data'), 'admin');
  });

  after(async () => {
    await server?.stop();
    await nbd?.stop();
    await hook?.close();
    await smtp?.close();
    tmp.cleanup();
  });

  it('retries a retryable failure with backoff, then notifies by webhook and e-mail', async () => {
    await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'unreachables', repository: 'main', vms: [{ name: 'unreachable' }] },
    });
    const j = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'backup', policy: 'unreachables' },
    });
    const job = await waitJob(server.url, admin, j.body.items[0].id);
    assert.equal(job.status, 'failed');
    assert.equal(job.attempt, 3);
    const retries = job.logs.filter((l: { message: string }) => /^retrying in/.test(l.message));
    assert.equal(retries.length, 2);
    const started = job.logs
      .filter((l: { message: string }) => /^started \(attempt/.test(l.message))
      .map((l: { time: string }) => Date.parse(l.time));
    assert.equal(started.length, 3);
    // backoffSeconds 0.2: 0.2 s before the second attempt, 0.4 s before the third
    assert.ok(started[1]! - started[0]! >= 200, `first backoff ${started[1]! - started[0]!} ms`);
    assert.ok(started[2]! - started[1]! >= 400, `second backoff ${started[2]! - started[1]!} ms`);
    assert.ok(started[2]! - started[1]! < 2000, 'a retry does not wait for much longer than its backoff');
    const got = await until('webhook', () =>
      hook.received.find((r) => r.body.event === 'job.failed' && r.body.job.id === job.id),
    );
    assert.equal(got.headers.authorization, 'Bearer hook-secret');
    const mail = await until('e-mail', () =>
      smtp.messages.find((m) => m.data.includes(`backup job ${job.id} of VM unreachable failed`)),
    );
    assert.match(mail.from, /coffer@example\.test/);
    assert.match(mail.to.join(), /ops@example\.test/);
    assert.match(mail.data, /Subject: \[coffer\] job\.failed/);
  });

  it('a failure that cannot succeed (missing disk) is not retried; first failure and recovery are notified', async () => {
    const p = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'flakies', repository: 'main', vms: [{ name: 'flaky' }, { name: 'ghost' }] },
    });
    assert.equal(p.status, 201, p.text);
    const run = async (vm: string) => {
      const j = await api(server.url, 'POST', '/api/v1/jobs', {
        token: admin,
        body: { kind: 'backup', policy: 'flakies', vm },
      });
      assert.equal(j.status, 202, j.text);
      return waitJob(server.url, admin, j.body.items[0].id);
    };
    const ghost = await run('ghost');
    assert.equal(ghost.status, 'failed');
    assert.equal(ghost.error.code, 'SOURCE_UNREADABLE');
    assert.equal(ghost.attempt, 1, 'no such file: not retried');
    assert.ok(!ghost.logs.some((l: { message: string }) => /^retrying in/.test(l.message)), JSON.stringify(ghost.logs));
    const f1 = await run('flaky');
    assert.equal(f1.status, 'failed');
    const first = await until('first failure', () =>
      hook.received.find((r) => r.body.event === 'job.first-failure' && r.body.job.id === f1.id),
    );
    assert.match(first.body.summary, /backup job \d+ of VM flaky first failure \(previous backup none\)/);
    const f2 = await run('flaky');
    assert.equal(f2.status, 'failed');
    makeDisk(join(dir, 'flaky.raw'), 256 * 1024, 'flaky');
    const ok = await run('flaky');
    assert.equal(ok.status, 'succeeded', JSON.stringify(ok.logs));
    const rec = await until('recovery', () =>
      hook.received.find((r) => r.body.event === 'job.recovered' && r.body.job.id === ok.id),
    );
    assert.match(rec.body.summary, new RegExp(`of VM flaky recovered \\(previous backup job ${f2.id} failed\\)`));
    // the second failure in a row was not a first failure
    await until('job.failed of the second failure', () =>
      hook.received.find((r) => r.body.event === 'job.failed' && r.body.job.id === f2.id),
    );
    assert.ok(!hook.received.some((r) => r.body.event === 'job.first-failure' && r.body.job.id === f2.id));
    const vms = await api(server.url, 'GET', '/api/v1/vms?limit=100', { token: admin });
    const byName = (n: string) => vms.body.items.find((v: { name: string }) => v.name === n);
    assert.equal(byName('flaky').protected, true);
    assert.equal(byName('flaky').failing, false);
    assert.equal(byName('ghost').protected, false, 'a VM without a restore point is unprotected');
    assert.equal(byName('ghost').covered, true);
    assert.equal(byName('ghost').failing, true);
    const dash = await api(server.url, 'GET', '/api/v1/dashboard', { token: admin });
    assert.ok(
      dash.body.failingVms.some((v: { name: string }) => v.name === 'ghost'),
      JSON.stringify(dash.body),
    );
  });

  it('notifies an SLA breach once when a VM misses its RPO', async () => {
    // RPO of 2 seconds: compliant right after the backup, breached soon after
    const p = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'tight', repository: 'main', vms: [{ name: 'quick' }], rpoHours: 2 / 3600 },
    });
    assert.equal(p.status, 201, p.text);
    const j = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'backup', policy: 'tight' },
    });
    assert.equal((await waitJob(server.url, admin, j.body.items[0].id)).status, 'succeeded');
    // (a breach without any restore point may have been notified before the backup; this one has a restore point)
    const late = (r: { body: { event: string; vm: string; lastPoint: unknown } }) =>
      r.body.event === 'sla.breach' && r.body.vm === 'quick' && r.body.lastPoint !== null;
    const breach = await until('sla.breach webhook', () => hook.received.find(late), 20_000);
    assert.match(breach.body.summary, /VM quick breaches its RPO/);
    const vms = await api(server.url, 'GET', '/api/v1/vms', { token: admin });
    assert.equal(vms.body.items.find((v: { name: string }) => v.name === 'quick').rpoCompliant, false);
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(hook.received.filter(late).length, 1, 'notified once per breach');
  });

  it('runs one job per source at a time and cancels queued and running jobs', async () => {
    await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'slow', repository: 'main', vms: [{ name: 'slow' }] },
    });
    const a = (
      await api(server.url, 'POST', '/api/v1/jobs', { token: admin, body: { kind: 'backup', policy: 'slow' } })
    ).body.items[0].id;
    const b = (
      await api(server.url, 'POST', '/api/v1/jobs', { token: admin, body: { kind: 'backup', policy: 'slow' } })
    ).body.items[0].id;
    const q = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'backup', policy: 'tight' },
    });
    await until(
      'job a running',
      async () => (await api(server.url, 'GET', `/api/v1/jobs/${a}`, { token: admin })).body.status === 'running',
    );
    // another VM's job is not held up by the slow one
    assert.equal((await waitJob(server.url, admin, q.body.items[0].id)).status, 'succeeded');
    assert.equal(
      (await api(server.url, 'GET', `/api/v1/jobs/${b}`, { token: admin })).body.status,
      'queued',
      'same source: waits',
    );
    const viewer = makeToken(join(dir, 'data'), 'viewer');
    assert.equal((await api(server.url, 'POST', `/api/v1/jobs/${a}/cancel`, { token: viewer })).status, 403);
    assert.equal((await api(server.url, 'POST', `/api/v1/jobs/${a}/cancel`, { token: admin })).status, 200);
    const ca = await waitJob(server.url, admin, a);
    assert.equal(ca.status, 'cancelled');
    await until(
      'job b running',
      async () => (await api(server.url, 'GET', `/api/v1/jobs/${b}`, { token: admin })).body.status === 'running',
    );
    await api(server.url, 'POST', `/api/v1/jobs/${b}/cancel`, { token: admin });
    assert.equal((await waitJob(server.url, admin, b)).status, 'cancelled');
    const again = await api(server.url, 'POST', `/api/v1/jobs/${b}/cancel`, { token: admin });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'CONFLICT');
    assert.equal(
      (await api(server.url, 'GET', '/api/v1/restore-points?vm=slow', { token: admin })).body.items.length,
      0,
    );
  });
});
