import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { api, makeToken, startServer, until, type RunningServer } from './helpers/coffer-server.js';
import { openSqlite } from '../src/server/catalog/index.js';
import { freePort } from './helpers/servers.js';

/** Sends raw bytes to the server and returns everything it answers until it closes (framework-level errors). */
function rawRequest(port: number, data: string): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(data));
    let out = '';
    s.on('data', (d) => {
      out += d.toString('utf8');
      const end = out.indexOf('\r\n\r\n');
      const len = /content-length: (\d+)/i.exec(out);
      if (end >= 0 && len && out.length >= end + 4 + Number(len[1])) s.end();
    });
    s.on('error', (e) => (out ? undefined : reject(e)));
    s.on('close', () => {
      const end = out.indexOf('\r\n\r\n');
      resolve({ status: Number(out.slice(9, 12)), headers: out.slice(0, end), body: out.slice(end + 4) });
    });
  });
}

/** Reads a Server-Sent Events stream until it ends; `opened` resolves once the first bytes arrived. */
function readStream(url: string, token: string): { opened: Promise<void>; done: Promise<string> } {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const done = (async () => {
    const r = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200);
    let text = '';
    const dec = new TextDecoder();
    for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
      text += dec.decode(chunk, { stream: true });
      open();
    }
    return text;
  })();
  return { opened, done };
}

/** Issue 21 items 6-11: the server against anonymous abuse, revocation, headers and error shapes, validation. */
describe('coffer server: hardening (issue 21)', () => {
  const tmp = tempDir('coffer-server-hardening-');
  const dir = tmp.path;
  const dataDir = join(dir, 'data');
  const repo = join(dir, 'repo');
  let server: RunningServer;
  let admin: string;
  let config: unknown;
  // an NBD "server" that accepts connections and never answers: a backup from it stays running (a real TCP peer)
  let silentNbd: Server;
  const sockets: Socket[] = [];

  before(async () => {
    const r = coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']);
    assert.equal(r.code, 0, r.stderr);
    writeFileSync(join(dir, 'repo.pw'), TEST_PASSWORD + '\n');
    const nbdPort = await freePort();
    silentNbd = createServer((s) => sockets.push(s));
    await new Promise<void>((res) => silentNbd.listen(nbdPort, '127.0.0.1', () => res()));
    config = {
      repositories: [{ name: 'main', location: repo, passwordFile: join(dir, 'repo.pw') }],
      inventory: [{ name: 'stuck', disks: [`nbd://127.0.0.1:${nbdPort}/disk`] }],
      retries: { maxAttempts: 1, backoffSeconds: 0 },
      http: { bodyLimitBytes: 2 * 1024 * 1024 },
    };
    server = await startServer({ dir, dataDir, config });
    admin = makeToken(dataDir, 'admin');
  });

  after(async () => {
    await server?.stop();
    for (const s of sockets) s.destroy();
    await new Promise((r) => silentNbd?.close(r));
    tmp.cleanup();
  });

  const parsedBodies = async (): Promise<number> => {
    const m = await api(server.url, 'GET', '/metrics', { token: admin });
    const line = m.text.split('\n').find((l) => l.startsWith('coffer_http_json_bodies_parsed_total '));
    assert.ok(line, m.text);
    return Number(line.split(' ')[1]);
  };

  it('answers an anonymous deeply nested 1 MB body with 401 without parsing it (item 6)', async () => {
    const nested = '['.repeat(512 * 1024) + ']'.repeat(512 * 1024);
    const before = await parsedBodies();
    for (const [method, path] of [
      ['POST', '/api/v1/policies'],
      ['PUT', '/api/v1/policies/x'],
      ['POST', '/api/v1/users'],
      ['POST', '/api/v1/no-such-route'],
      ['DELETE', '/api/v1/policies/x'],
    ] as const) {
      const r = await api(server.url, method, path, { body: nested });
      const unknown = path.includes('no-such');
      assert.equal(r.status, unknown ? 404 : 401, `${method} ${path}: ${r.text}`);
      assert.equal(r.body.error.code, unknown ? 'NOT_FOUND' : 'UNAUTHENTICATED');
      const v = await api(server.url, method, path, { body: nested, token: makeViewer() });
      assert.equal(v.status, unknown ? 404 : 403, `${method} ${path} as viewer: ${r.text}`);
    }
    assert.equal(
      await parsedBodies(),
      before,
      'no body of an unauthenticated or unauthorised request reached the JSON parser',
    );
    // an authenticated request with the same body: parsed, refused by the depth cap with a coded 400
    const r = await api(server.url, 'POST', '/api/v1/policies', { body: nested, token: admin });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.body.error.code, 'USAGE');
    assert.match(r.body.error.message, /nested deeper than 32/);
    assert.equal(await parsedBodies(), before + 1);
    const ok = await api(server.url, 'POST', '/api/v1/policies', {
      body: { name: 'deep', vms: ['a'], schedule: '0 1 * * *', repository: 'nope', extra: [[[[1]]]] },
      token: admin,
    });
    assert.equal(ok.status, 400); // an unknown field, not the depth cap
    assert.doesNotMatch(ok.body.error.message, /nested/);
  });

  it('revokes everywhere: logout, tokens of a deleted user, open event streams (item 8)', async () => {
    const mk = await api(server.url, 'POST', '/api/v1/users', {
      token: admin,
      body: { username: 'alice', password: 'alice-password-1', role: 'admin' },
    });
    assert.equal(mk.status, 201, mk.text);
    const loginAlice = async () => {
      const l = await api(server.url, 'POST', '/api/v1/auth/login', {
        body: { username: 'alice', password: 'alice-password-1' },
      });
      assert.equal(l.status, 200, l.text);
      return l.body.token as string;
    };
    // logout revokes the session on the server, not just in the client
    const s1 = await loginAlice();
    assert.equal((await api(server.url, 'GET', '/api/v1/me', { token: s1 })).status, 200);
    const out = await api(server.url, 'POST', '/api/v1/auth/logout', { token: s1 });
    assert.equal(out.status, 200, out.text);
    assert.equal((await api(server.url, 'GET', '/api/v1/me', { token: s1 })).status, 401);
    // alice creates a token with her session, and that token creates another one
    const s2 = await loginAlice();
    const t1 = await api(server.url, 'POST', '/api/v1/tokens', {
      token: s2,
      body: { name: 'alice-ci', role: 'admin' },
    });
    assert.equal(t1.status, 201, t1.text);
    const t2 = await api(server.url, 'POST', '/api/v1/tokens', {
      token: t1.body.token,
      body: { name: 'alice-ci-child', role: 'viewer' },
    });
    assert.equal(t2.status, 201, t2.text);
    const viewerToken = makeToken(dataDir, 'viewer', 'stream-viewer');
    // a job that stays running, followed by three streams
    const pol = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'stuck', repository: 'main', vms: [{ name: 'stuck' }] },
    });
    assert.equal(pol.status, 201, pol.text);
    const job = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'backup', policy: 'stuck' },
    });
    assert.equal(job.status, 202, job.text);
    const id = job.body.items[0].id;
    await until(
      'job running',
      async () => (await api(server.url, 'GET', `/api/v1/jobs/${id}`, { token: admin })).body.status === 'running',
    );
    const events = `${server.url}/api/v1/jobs/${id}/events`;
    const byChild = readStream(events, t2.body.token);
    const byViewer = readStream(events, viewerToken);
    const bySession = readStream(events, s2);
    await Promise.all([byChild.opened, byViewer.opened, bySession.opened]);
    // deleting alice ends her sessions, her tokens and the tokens they created, and their streams
    assert.equal((await api(server.url, 'DELETE', '/api/v1/users/alice', { token: admin })).status, 200);
    for (const t of [s2, t1.body.token, t2.body.token])
      assert.equal((await api(server.url, 'GET', '/api/v1/me', { token: t })).status, 401);
    for (const s of [byChild, bySession]) assert.match(await s.done, /event: error\ndata: \{"code":"UNAUTHENTICATED"/);
    // revoking an API token ends its stream
    const list = await api(server.url, 'GET', '/api/v1/tokens', { token: admin });
    const v = list.body.items.find((t: { name: string }) => t.name === 'stream-viewer');
    assert.equal((await api(server.url, 'DELETE', `/api/v1/tokens/${v.id}`, { token: admin })).status, 200);
    assert.match(await byViewer.done, /event: error\ndata: \{"code":"UNAUTHENTICATED"/);
    assert.equal(
      (await api(server.url, 'GET', `/api/v1/jobs/${id}`, { token: admin })).body.status,
      'running',
      'the streams ended by revocation, not because the job ended',
    );
    await api(server.url, 'POST', `/api/v1/jobs/${id}/cancel`, { token: admin });
  });

  it('sends no-store and nosniff on API answers, keeps catalog.db private, shapes framework errors (item 11)', async () => {
    const mk = await api(server.url, 'POST', '/api/v1/users', {
      token: admin,
      body: { username: 'bob', password: 'bob-password-1', role: 'viewer' },
    });
    assert.equal(mk.status, 201, mk.text);
    const login = await api(server.url, 'POST', '/api/v1/auth/login', {
      body: { username: 'bob', password: 'bob-password-1' },
    });
    const tok = await api(server.url, 'POST', '/api/v1/tokens', {
      token: admin,
      body: { name: 'hdr', role: 'viewer' },
    });
    const denied = await api(server.url, 'GET', '/api/v1/policies');
    for (const r of [login, tok, denied]) {
      assert.equal(r.headers.get('cache-control'), 'no-store');
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    }
    for (const f of ['catalog.db', 'catalog.db-wal', 'catalog.db-shm']) {
      assert.equal(statSync(join(dataDir, f)).mode & 0o777, 0o600, f);
    }
    const shape = (r: { status: number; body: string }, status: number, code: string) => {
      assert.equal(r.status, status, r.body);
      const b = JSON.parse(r.body) as { error: { code: string; message: string } };
      assert.equal(b.error.code, code, r.body);
      assert.equal(typeof b.error.message, 'string');
      assert.deepEqual(Object.keys(b), ['error']);
    };
    const get = (path: string, extra = '') =>
      rawRequest(
        server.port,
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${admin}\r\n${extra}Connection: close\r\n\r\n`,
      );
    shape(await get('/api/v1/policies/%E0%A4%A'), 400, 'USAGE'); // bad percent-encoding
    shape(await get('/api/v1/policies/' + 'a'.repeat(10_000)), 414, 'USAGE');
    shape(await get('/api/v1/policies', `X-Big: ${'b'.repeat(20_000)}\r\n`), 431, 'USAGE');
    shape(await get('/api/v1/no-such-route'), 404, 'NOT_FOUND');
    shape(await rawRequest(server.port, 'NONSENSE\r\n\r\n'), 400, 'USAGE');
    const bad = await api(server.url, 'POST', '/api/v1/policies', { token: admin, body: '{"name": ' });
    shape({ status: bad.status, body: bad.text }, 400, 'USAGE');
  });

  it('refuses credentials in source URLs, unsupported schemes, 7-field crons, id-like names, control characters (item 9)', async () => {
    const policy = (body: Record<string, unknown>) =>
      api(server.url, 'POST', '/api/v1/policies', {
        token: admin,
        body: { repository: 'main', vms: [{ name: 'stuck' }], ...body },
      });
    for (const src of [
      'vsphere://administrator:s3cret@vc.example/vm-1',
      'nbd://user:s3cret@127.0.0.1:10809/disk',
      'nbds://tok3n-s3cret@host/x',
      'file://me@localhost/tmp/x',
    ]) {
      const r = await policy({ name: 'creds', vms: [{ name: 'adhoc', disks: [src] }] });
      assert.equal(r.status, 400, src);
      assert.equal(r.body.error.code, 'USAGE');
      assert.match(r.body.error.message, /credentials in source URLs are refused.*passwordFile or passwordEnv/, src);
      assert.ok(!r.text.includes('s3cret'), 'the refusal does not echo the secret');
    }
    const ftp = await policy({ name: 'ftp', vms: [{ name: 'adhoc', disks: ['ftp://host/disk.raw'] }] });
    assert.equal(ftp.status, 400);
    assert.match(ftp.body.error.message, /unsupported source ftp:\/\//);
    const ctl = await policy({ name: 'ctl', vms: [{ name: 'adhoc', disks: ['/tmp/disk\u0000.raw'] }] });
    assert.equal(ctl.status, 400);
    assert.match(ctl.body.error.message, /control characters/);
    const seven = await policy({ name: 'seven', schedule: '* * * * * * *' });
    assert.equal(seven.status, 400, seven.text);
    assert.match(seven.body.error.message, /7 fields/);
    assert.equal((await policy({ name: 'five', schedule: '0 3 * * *' })).status, 201);
    assert.equal(
      (await policy({ name: 'six', schedule: '0 0 3 * * *' })).status,
      201,
      'the documented 6-field form (seconds first) stays',
    );
    // a name of the id form would shadow another policy's id on GET/PUT/DELETE by id
    const five = (await api(server.url, 'GET', '/api/v1/policies', { token: admin })).body.items.find(
      (p: { name: string }) => p.name === 'five',
    );
    const shadow = await policy({ name: five.id });
    assert.equal(shadow.status, 400, shadow.text);
    assert.match(shadow.body.error.message, /must not look like a policy id/);
    const got = await api(server.url, 'GET', `/api/v1/policies/${five.id}`, { token: admin });
    assert.equal(got.body.name, 'five');
    // NUL and other control characters in restore targets and guest paths
    for (const target of ['a\u0000b.raw', 'x\ny.raw']) {
      const r = await api(server.url, 'POST', '/api/v1/jobs', {
        token: admin,
        body: { kind: 'restore', repository: 'main', pointId: 'abc', disk: 0, target },
      });
      assert.equal(r.status, 400, r.text);
      assert.match(r.body.error.message, /target: must not contain control characters/);
    }
    const nul = await api(server.url, 'GET', '/api/v1/restore-points/abc/disks/0/files?path=%2Fetc%00x', {
      token: admin,
    });
    assert.equal(nul.status, 400, nul.text);
    assert.match(nul.body.error.message, /path: must not contain NUL/);
  });

  it('bounds what anonymous requests write to the audit log; retention and an NDJSON export (item 7)', async () => {
    const anonymousRows = async () => {
      const r = await api(server.url, 'GET', '/api/v1/audit?actor=anonymous&limit=500', { token: admin });
      assert.equal(r.status, 200, r.text);
      return r.body.items as { target: string; action: string }[];
    };
    const before = (await anonymousRows()).length;
    const long = 'x'.repeat(5000);
    for (let i = 0; i < 20; i++) {
      assert.equal((await api(server.url, 'POST', `/api/v1/policies/${long}${i}/x`, { body: {} })).status, 404);
      assert.equal((await api(server.url, 'DELETE', `/api/v1/policies/p${i}?${long}`)).status, 401);
      assert.equal((await api(server.url, 'DELETE', `/api/v1/policies/${long}${i}`)).status, 414);
      assert.equal((await api(server.url, 'PUT', `/api/v1/no-such-${long}${i}`, { body: {} })).status, 404);
    }
    const rows = await anonymousRows();
    assert.ok(rows.length - before <= 2, `80 anonymous requests wrote ${rows.length - before} audit rows`);
    for (const r of rows) {
      assert.ok(r.target.length <= 512 + 20, `target of ${r.target.length} chars`);
      assert.ok(r.action.length <= 512 + 30, `action of ${r.action.length} chars`);
    }
    // export: NDJSON pages, admin only
    const p1 = await api(server.url, 'GET', '/api/v1/audit?format=ndjson&limit=2', { token: admin });
    assert.equal(p1.status, 200);
    assert.match(p1.headers.get('content-type') ?? '', /application\/x-ndjson/);
    const lines1 = p1.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: number });
    assert.equal(lines1.length, 2);
    const next = p1.headers.get('x-next-cursor');
    assert.ok(next);
    const p2 = await api(server.url, 'GET', `/api/v1/audit?format=ndjson&limit=2&cursor=${encodeURIComponent(next)}`, {
      token: admin,
    });
    const lines2 = p2.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: number });
    assert.ok(lines2[0]!.id < lines1[1]!.id);
    assert.equal((await api(server.url, 'GET', '/api/v1/audit?format=ndjson', { token: makeViewer() })).status, 403);
    // retention (default 365 days): a row older than that is deleted when the server starts (and every hour)
    await server.stop();
    const db = openSqlite(join(dataDir, 'catalog.db'));
    db.prepare(
      'INSERT INTO audit(time, actor, action, target, remote, status, details) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ).run(new Date(Date.now() - 400 * 86400_000).toISOString(), 'user:old', 'old.action', 'x', 'local', 200, '{}');
    db.prepare(
      'INSERT INTO audit(time, actor, action, target, remote, status, details) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ).run(
      new Date(Date.now() - 300 * 86400_000).toISOString(),
      'user:recent',
      'recent.action',
      'x',
      'local',
      200,
      '{}',
    );
    db.close();
    server = await startServer({ dir, dataDir, config });
    assert.equal((await api(server.url, 'GET', '/api/v1/audit?actor=user:old', { token: admin })).body.items.length, 0);
    assert.equal(
      (await api(server.url, 'GET', '/api/v1/audit?actor=user:recent', { token: admin })).body.items.length,
      1,
    );
  });

  it('cuts a trickled body at the request timeout with 408 in the error shape (item 10)', async () => {
    // a second server with a 2 s request timeout (the default is 30 s); the body never completes
    const slow = await startServer({
      dir,
      dataDir: join(dir, 'data-slow'),
      config: { http: { requestTimeoutSeconds: 2 } },
    });
    try {
      const tok = makeToken(join(dir, 'data-slow'), 'admin');
      const answer = await new Promise<string>((resolve, reject) => {
        const s = connect(slow.port, '127.0.0.1', () => {
          s.write(
            `POST /api/v1/policies HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${tok}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`,
          );
        });
        let out = '';
        let sent = 0;
        // one byte every 200 ms: the request never completes on its own (it would need 5.5 hours)
        const trickle = setInterval(() => s.writable && s.write(' ') && sent++, 200);
        s.on('data', (d) => (out += d.toString('utf8')));
        s.on('error', () => undefined);
        s.on('close', () => {
          clearInterval(trickle);
          // node alone checks its requestTimeout every 30 s (about 150 bytes here): the cut must come long before
          // that, at the 2 s timeout (about 10 bytes); 100 bytes (20 s) is a 10x margin, not a timing measurement
          if (sent >= 100) reject(new Error(`the request was cut only after ${sent} trickled bytes`));
          else if (out) resolve(out);
          else reject(new Error(`closed without an answer after ${sent} bytes`));
        });
      });
      assert.match(answer, /^HTTP\/1\.1 408 /);
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as {
        error: { code: string; message: string };
      };
      assert.equal(body.error.code, 'USAGE');
      assert.match(body.error.message, /request timeout/);
      assert.equal((await api(slow.url, 'GET', '/api/health')).status, 200);
    } finally {
      await slow.stop();
    }
  });

  let viewer: string | undefined;
  const makeViewer = () => (viewer ??= makeToken(dataDir, 'viewer'));
});
