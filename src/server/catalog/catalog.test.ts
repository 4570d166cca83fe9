import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { CofferError } from '../../shared/index.js';
import { authenticate, createToken, hashToken, login } from '../auth.js';
import { openCatalog, openSqlite, sqliteDriver, type Catalog } from './index.js';
import { MIGRATIONS } from './migrations.js';

const LEASE = '2026-01-01T00:05:00.000Z';
const GOLDEN = fileURLToPath(new URL('../../../../test/golden/catalog-v1.db', import.meta.url));

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'coffer-catalog-'));
}

const spec = (name: string) => ({
  name,
  description: '',
  enabled: true,
  repository: 'main',
  vms: [{ name: 'web01' }],
  rpoHours: 24,
  pruneAfterForget: false,
  tags: [],
});

/**
 * The contract of the catalog's per-table interfaces (catalog.ts). Every implementation runs it: today SQLite; a
 * PostgreSQL implementation calls catalogSuite with its own opener.
 */
export function catalogSuite(name: string, open: () => { catalog: Catalog; cleanup(): void }): void {
  describe(`catalog contract: ${name}`, () => {
    const withCatalog = (fn: (c: Catalog) => void | Promise<void>) => async () => {
      const { catalog, cleanup } = open();
      try {
        await fn(catalog);
      } finally {
        catalog.close();
        cleanup();
      }
    };

    it(
      'queues, claims once, retries later, finishes; pending and due follow the status',
      withCatalog((c) => {
        const now = '2026-01-01T00:00:00.000Z';
        const id = c.jobs.insert({
          kind: 'backup',
          trigger: 'manual',
          policyId: null,
          vm: 'web01',
          repository: 'main',
          params: { disks: ['/d'], tags: [] },
          maxAttempts: 3,
          now,
          requestedBy: 'user:a',
        })!;
        const other = c.jobs.insert({
          kind: 'prune',
          trigger: 'manual',
          policyId: null,
          vm: null,
          repository: 'main',
          params: {},
          maxAttempts: 3,
          now,
          requestedBy: 'user:a',
        })!;
        assert.deepEqual(
          c.jobs.due(now, 10).map((j) => j.id),
          [id, other],
        );
        assert.deepEqual(c.jobs.due('2025-12-31T00:00:00.000Z', 10), []);
        assert.equal(c.jobs.hasPending('backup', { vm: 'web01' }), true);
        assert.equal(c.jobs.hasPending('prune', { repository: 'main' }), true);
        assert.equal(c.jobs.hasPending('prune', { repository: 'other' }), false);
        assert.equal(c.jobs.claim(id, 1, now, 'a', LEASE), true);
        assert.equal(c.jobs.claim(id, 1, now, 'b', LEASE), false, 'a running job cannot be claimed again');
        assert.deepEqual(c.jobs.runningIds(), [id]);
        c.jobs.setProgress(id, { bytesDone: 5, bytesTotal: 10 });
        assert.deepEqual(c.jobs.get(id)!.progress, { bytesDone: 5, bytesTotal: 10 });
        c.jobs.retry(id, '2026-01-01T00:01:00.000Z', { code: 'TRANSIENT', message: 'again' });
        const queued = c.jobs.get(id)!;
        assert.equal(queued.status, 'queued');
        assert.deepEqual(queued.error, { code: 'TRANSIENT', message: 'again' });
        assert.deepEqual(
          c.jobs.due(now, 10).map((j) => j.id),
          [other],
          'not before its retry time',
        );
        assert.equal(c.jobs.claim(id, 2, '2026-01-01T00:01:00.000Z', 'a', LEASE), true);
        c.jobs.finish(id, 'succeeded', null, { id: 'p1' }, '2026-01-01T00:02:00.000Z');
        const done = c.jobs.get(id)!;
        assert.equal(done.status, 'succeeded');
        assert.equal(done.attempt, 2);
        assert.deepEqual(done.result, { id: 'p1' });
        assert.equal(c.jobs.hasPending('backup', { vm: 'web01' }), false);
        assert.deepEqual(c.jobs.lastFinishedBackup('web01'), {
          id,
          status: 'succeeded',
          finishedAt: '2026-01-01T00:02:00.000Z',
          error: null,
        });
        assert.deepEqual(
          c.jobs.list({ limit: 10 }).map((j) => j.id),
          [other, id],
        );
        assert.deepEqual(
          c.jobs.list({ kind: 'backup', limit: 10 }).map((j) => j.id),
          [id],
        );
        assert.deepEqual(
          c.jobs.list({ beforeId: other, limit: 10 }).map((j) => j.id),
          [id],
        );
        assert.deepEqual(
          c.jobs.countByStatus().sort((a, b) => a.status.localeCompare(b.status)),
          [
            { status: 'queued', n: 1 },
            { status: 'succeeded', n: 1 },
          ],
        );
        assert.deepEqual(
          c.jobs.succeededDurations().map((d) => ({ ...d, s: Math.round(d.s) })),
          [{ kind: 'backup', n: 1, s: 60 }],
        );
        assert.deepEqual(c.jobLogs.append(id, 'info', 'one').seq, 1);
        assert.deepEqual(c.jobLogs.append(id, 'warn', 'two').seq, 2);
        assert.deepEqual(
          c.jobLogs.list(id, 1).map((l) => [l.seq, l.level, l.message]),
          [[2, 'warn', 'two']],
        );
      }),
    );

    it(
      'run keys: a second job with the same key is not inserted (a schedule fires once)',
      withCatalog((c) => {
        const job = (runKey?: string) =>
          c.jobs.insert({
            kind: 'backup',
            trigger: 'schedule',
            policyId: 'p1',
            vm: 'web01',
            repository: 'main',
            params: { disks: ['/d'], tags: [] },
            maxAttempts: 1,
            now: '2026-01-01T00:00:00.000Z',
            requestedBy: 'schedule:p',
            ...(runKey ? { runKey } : {}),
          });
        const first = job('p1:web01:2026-01-01T00:00:00.000Z');
        assert.equal(typeof first, 'number');
        assert.equal(job('p1:web01:2026-01-01T00:00:00.000Z'), undefined);
        assert.notEqual(job('p1:web01:2026-01-02T00:00:00.000Z'), undefined);
        assert.notEqual(job(), undefined, 'jobs without a key are never skipped');
        assert.notEqual(job(), undefined);
        assert.equal(c.jobs.list({ limit: 10 }).length, 4);
      }),
    );

    it(
      'leases: renewed only by their owner; an expired one is reclaimed once, by one caller',
      withCatalog((c) => {
        const t = (m: number) => new Date(Date.UTC(2026, 0, 1, 0, m)).toISOString();
        const ids = [1, 2].map(
          () =>
            c.jobs.insert({
              kind: 'backup',
              trigger: 'manual',
              policyId: null,
              vm: 'web01',
              repository: 'main',
              params: { disks: ['/d'], tags: [] },
              maxAttempts: 3,
              now: t(0),
              requestedBy: 'user:a',
            })!,
        );
        const [a, b] = ids as [number, number];
        assert.equal(c.jobs.claim(a, 1, t(0), 'proc-a', t(1)), true);
        assert.equal(c.jobs.claim(b, 1, t(0), 'proc-b', t(1)), true);
        assert.equal(c.jobs.get(a)!.runner, 'proc-a');
        assert.deepEqual(c.jobs.renewLeases('proc-a', [a, b], t(5)), [a], 'only the own lease is renewed');
        assert.deepEqual(
          c.jobs.expiredLeases(t(2)).map((j) => j.id),
          [b],
        );
        assert.equal(c.jobs.reclaim(a, t(2), true, { code: 'CANCELLED', message: 'lost' }), false, 'lease still held');
        assert.equal(c.jobs.reclaim(b, t(2), true, { code: 'CANCELLED', message: 'lost' }), true);
        assert.equal(c.jobs.reclaim(b, t(2), true, { code: 'CANCELLED', message: 'lost' }), false, 'only once');
        assert.equal(c.jobs.get(b)!.status, 'queued');
        assert.deepEqual(c.jobs.renewLeases('proc-b', [b], t(5)), [], 'the lost owner holds nothing any more');
        assert.equal(c.jobs.claim(b, 2, t(2), 'proc-c', t(3)), true);
        assert.equal(c.jobs.reclaim(b, t(4), false, { code: 'CANCELLED', message: 'lost again' }), true);
        const failed = c.jobs.get(b)!;
        assert.deepEqual([failed.status, failed.error?.message, failed.attempt], ['failed', 'lost again', 2]);
      }),
    );

    it(
      'policies: unique names (CONFLICT), NOT_FOUND for unknown ids',
      withCatalog((c) => {
        const p = c.policies.create(spec('nightly'));
        assert.equal(c.policies.get(p.id).name, 'nightly');
        assert.throws(
          () => c.policies.create(spec('nightly')),
          (e: CofferError) => e.code === 'CONFLICT',
        );
        const q = c.policies.create(spec('weekly'));
        assert.throws(
          () => c.policies.update(q.id, spec('nightly')),
          (e: CofferError) => e.code === 'CONFLICT',
        );
        assert.deepEqual(
          c.policies.list().map((x) => x.name),
          ['nightly', 'weekly'],
        );
        c.policies.delete(p.id);
        assert.throws(
          () => c.policies.get(p.id),
          (e: CofferError) => e.code === 'NOT_FOUND',
        );
        assert.throws(
          () => c.policies.delete(p.id),
          (e: CofferError) => e.code === 'NOT_FOUND',
        );
      }),
    );

    it(
      'users and tokens: CONFLICT on a second user, sessions end with their user, API tokens revoke',
      withCatalog((c) => {
        c.users.insert({ username: 'bob', role: 'viewer', passwordHash: 'x', createdAt: 't' });
        assert.throws(
          () => c.users.insert({ username: 'bob', role: 'admin', passwordHash: 'y', createdAt: 't' }),
          (e: CofferError) => e.code === 'CONFLICT',
        );
        const api = createToken(c, { role: 'operator', name: 'ci', createdBy: 'test' });
        createToken(c, {
          role: 'viewer',
          name: 'session of bob',
          createdBy: 'user:bob',
          kind: 'session',
          username: 'bob',
        });
        assert.deepEqual(
          c.tokens.listApi().map((t) => t.name),
          ['ci'],
        );
        assert.equal(authenticate(c, `Bearer ${api.token}`).role, 'operator');
        assert.ok(c.tokens.findByHash(hashToken(api.token))!.createdAt);
        assert.equal(c.users.delete('bob'), true);
        assert.equal(c.users.delete('bob'), false);
        c.tokens.deleteForUser('bob');
        assert.equal(c.tokens.deleteApi(api.id), true);
        assert.equal(c.tokens.deleteApi(api.id), false);
        assert.equal(c.audit.list({ action: 'token.create', limit: 10 }).length, 1);
      }),
    );

    it(
      'restore points: replace() adds, removes and updates only the verification; queries by VM',
      withCatalog((c) => {
        const point = (id: string, endTime: string, verification: unknown = null) => ({
          id,
          vm: 'web01',
          time: endTime,
          endTime,
          mode: 'full',
          parent: null,
          tags: [],
          disks: [],
          bytesRead: 10,
          bytesStored: 5,
          verification,
        });
        c.restorePoints.replace('main', [
          point('a', '2026-01-01T00:00:00.000Z'),
          point('b', '2026-01-02T00:00:00.000Z'),
        ]);
        c.restorePoints.replace('main', [
          point('b', '2026-01-02T00:00:00.000Z', { time: 't', ok: true }),
          point('c', '2026-01-03T00:00:00.000Z'),
        ]);
        c.restorePoints.replace('other', [point('b', '2026-01-02T00:00:00.000Z')]);
        assert.deepEqual(
          c.restorePoints.list({ repository: 'main', limit: 10 }).map((p) => p.id),
          ['c', 'b'],
        );
        assert.deepEqual(c.restorePoints.list({ repository: 'main', limit: 10 })[1]!.verification, {
          time: 't',
          ok: true,
        });
        assert.deepEqual(
          c.restorePoints
            .list({ limit: 10, before: ['2026-01-02T00:00:00.000Z', 'other', 'b'] })
            .map((p) => [p.repository, p.id]),
          [['main', 'b']],
        );
        assert.deepEqual(c.restorePoints.repositoriesOf('b').sort(), ['main', 'other']);
        assert.deepEqual(c.restorePoints.repositoriesOf('b', 'other'), ['other']);
        assert.equal(c.restorePoints.vmOf('main', 'c'), 'web01');
        assert.equal(c.restorePoints.vmOf('main', 'a'), undefined);
        assert.deepEqual(c.restorePoints.vms(), ['web01']);
        assert.equal(c.restorePoints.newest('web01')!.id, 'c');
        assert.equal(c.restorePoints.newest('web01', ['other'])!.id, 'b');
        assert.equal(c.restorePoints.count('web01'), 3);
        assert.deepEqual(c.restorePoints.dailyTrend('2026-01-03'), [
          { day: '2026-01-03', points: 1, bytesStored: 5, bytesRead: 10 },
        ]);
        c.repoStats.recordError('main', 't1', 'IO: down');
        assert.deepEqual(c.repoStats.get('main'), {
          storedBytes: 0,
          chunkBytes: 0,
          logicalBytes: 0,
          chunks: 0,
          points: 0,
          updatedAt: 't1',
          error: 'IO: down',
        });
        c.repoStats.record('main', {
          storedBytes: 9,
          chunkBytes: 8,
          logicalBytes: 16,
          chunks: 2,
          points: 2,
          updatedAt: 't2',
        });
        c.repoStats.recordError('main', 't3', 'IO: down again');
        assert.deepEqual(c.repoStats.get('main'), {
          storedBytes: 9,
          chunkBytes: 8,
          logicalBytes: 16,
          chunks: 2,
          points: 2,
          updatedAt: 't3',
          error: 'IO: down again',
        });
        c.slaState.set('web01', true, 't');
        assert.deepEqual(c.slaState.get('web01'), { breached: true, since: 't' });
        assert.equal(c.slaState.get('nobody'), undefined);
      }),
    );
  });
}

catalogSuite('sqlite', () => {
  const dir = tempDir();
  return { catalog: openCatalog(dir), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
});

describe('sqlite catalog files', () => {
  it('opens a catalog.db written by the release before the per-table modules (test/golden/catalog-v1.db)', async () => {
    const dir = tempDir();
    try {
      copyFileSync(GOLDEN, join(dir, 'catalog.db'));
      const c = openCatalog(dir);
      try {
        assert.equal(c.users.get('alice')!.role, 'operator');
        const session = await login(c, 'alice', 'golden password', 1, '127.0.0.1');
        assert.equal(authenticate(c, `Bearer ${session.token}`).actor, 'user:alice');
        assert.deepEqual(
          c.tokens.listApi().map((t) => [t.name, t.role, t.createdBy]),
          [['golden-token', 'viewer', 'cli:token-create']],
        );
        const [p] = c.policies.list();
        assert.equal(p!.name, 'nightly');
        assert.deepEqual(p!.retention, { keepLast: 3 });
        const job = c.jobs.get(1)!;
        assert.deepEqual(
          [job.kind, job.status, job.trigger, job.policyId, job.vm, job.attempt, job.maxAttempts],
          ['backup', 'succeeded', 'schedule', p!.id, 'web01', 1, 3],
        );
        assert.deepEqual(job.params, { disks: ['/d/web01.raw'], tags: ['golden'] });
        assert.deepEqual(job.result, { id: 'a1b2c3' });
        assert.deepEqual(
          c.jobs.due('2100-01-01T00:00:00.000Z', 10).map((j) => j.kind),
          ['verify'],
        );
        assert.equal(c.jobLogs.list(1)[0]!.message, 'queued by schedule:nightly (schedule)');
        const [rp] = c.restorePoints.list({ limit: 5 });
        assert.deepEqual(
          [rp!.repository, rp!.id, rp!.vm, rp!.bytesRead, rp!.bytesStored],
          ['main', 'a1b2c3', 'web01', 1048576, 524288],
        );
        assert.deepEqual(rp!.verification, { time: '2026-01-03T00:00:00.000Z', ok: true });
        assert.equal(c.repoStats.get('main')!.logicalBytes, 1048576);
        assert.deepEqual(c.slaState.get('web01'), { breached: false, since: '2026-01-02T03:01:00.000Z' });
        assert.equal(c.audit.list({ limit: 10 }).find((a) => a.action === 'POST /api/v1/policies')!.status, 201);
      } finally {
        c.close();
      }
      const raw = openSqlite(join(dir, 'catalog.db'), { readOnly: true });
      assert.equal(
        (raw.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string }).value,
        String(MIGRATIONS.length),
        'migrated to the newest schema (migrations.ts), the v1 data intact',
      );
      raw.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a catalog of a newer schema version (REPO_UNSUPPORTED) and leaves it alone', () => {
    const dir = tempDir();
    try {
      openCatalog(dir).close();
      const raw = openSqlite(join(dir, 'catalog.db'));
      raw.prepare("UPDATE meta SET value = '99' WHERE key = 'schema_version'").run();
      raw.close();
      assert.throws(
        () => openCatalog(dir),
        (e: CofferError) => e.code === 'REPO_UNSUPPORTED' && /schema version 99/.test(e.message),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the SQLite engine (ADR 0029)', () => {
  it('is node:sqlite where this Node has it unflagged, else better-sqlite3; COFFER_SQLITE forces or is refused', () => {
    const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
    const builtin = major >= 23 || (major === 22 && minor >= 13);
    assert.equal(sqliteDriver(), builtin ? 'node:sqlite' : 'better-sqlite3');
    const saved = process.env.COFFER_SQLITE;
    try {
      process.env.COFFER_SQLITE = 'sqlite4';
      assert.throws(
        () => sqliteDriver(),
        (e: CofferError) => e.code === 'USAGE' && /COFFER_SQLITE=sqlite4/.test(e.message),
      );
      if (!builtin) {
        process.env.COFFER_SQLITE = 'node:sqlite';
        assert.throws(
          () => openSqlite(join(tempDir(), 'x.db')),
          (e: CofferError) => e.code === 'CATALOG_UNAVAILABLE' && /has no node:sqlite/.test(e.message),
        );
      }
    } finally {
      if (saved === undefined) delete process.env.COFFER_SQLITE;
      else process.env.COFFER_SQLITE = saved;
    }
  });

  it('a duplicate key is a constraint error on this engine, told apart from other failures', () => {
    const dir = tempDir();
    try {
      const c = openCatalog(dir);
      try {
        c.users.insert({ username: 'ann', role: 'admin', passwordHash: 'x', createdAt: '2026-01-01T00:00:00.000Z' });
        assert.throws(
          () =>
            c.users.insert({
              username: 'ann',
              role: 'admin',
              passwordHash: 'y',
              createdAt: '2026-01-01T00:00:00.000Z',
            }),
          (e: CofferError) => e.code === 'CONFLICT',
        );
      } finally {
        c.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
