import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { pgNativeUnavailable, startPostgres } from './helpers/postgres.js';
import type { CofferError } from '../src/shared/index.js';
import { catalogSuite } from '../src/server/catalog/catalog.test.js';
import { openPostgresCatalog } from '../src/server/catalog/index.js';
import { MIGRATIONS } from '../src/server/catalog/migrations.js';
import { PostgresDb } from '../src/server/catalog/postgres-db.js';

// A real PostgreSQL (Debian's package, initdb in a temporary directory, test/helpers/postgres.ts); each test its own
// database.
const skip = pgNativeUnavailable();
const pg = skip ? undefined : await startPostgres();
after(() => pg?.stop());
let n = 0;
const freshDb = () => pg!.createDatabase(`t${process.pid}_${++n}`);

if (!skip) catalogSuite('postgres', () => ({ catalog: openPostgresCatalog(freshDb()), cleanup: () => undefined }));

const job = {
  kind: 'backup' as const,
  trigger: 'manual' as const,
  policyId: null,
  repository: 'main',
  params: { disks: ['/d'], tags: [] },
  maxAttempts: 1,
  now: '2026-01-01T00:00:00.000Z',
  requestedBy: 'user:a',
};

describe('postgres catalog', { skip }, () => {
  it('the same migrations as SQLite; a second replica opening it finds the schema current', () => {
    const url = freshDb();
    const a = openPostgresCatalog(url);
    const b = openPostgresCatalog(url);
    const raw = new PostgresDb(url);
    try {
      assert.equal(
        raw.get<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'")!.value,
        String(MIGRATIONS.length),
      );
      a.policies.create({
        name: 'p',
        description: '',
        enabled: true,
        repository: 'main',
        vms: [{ name: 'web01' }],
        rpoHours: 24,
        pruneAfterForget: false,
        tags: [],
      });
      assert.deepEqual(
        b.policies.list().map((p) => p.name),
        ['p'],
        'replicas share one catalog',
      );
    } finally {
      raw.close();
      a.close();
      b.close();
    }
  });

  it('two replicas claiming the same queue: every job is claimed exactly once (FOR UPDATE SKIP LOCKED)', () => {
    const url = freshDb();
    const a = openPostgresCatalog(url);
    const b = openPostgresCatalog(url);
    try {
      const ids = Array.from({ length: 40 }, (_, i) => a.jobs.insert({ ...job, vm: `vm${i}` })!);
      const won = { a: 0, b: 0 };
      // interleaved: each replica tries every job, as two JobRunners polling due() would
      for (const id of ids) {
        const first = id % 2 ? a : b;
        const second = first === a ? b : a;
        if (first.jobs.claim(id, 1, job.now, first === a ? 'a' : 'b', '2026-01-01T00:01:00.000Z'))
          won[first === a ? 'a' : 'b']++;
        if (second.jobs.claim(id, 1, job.now, second === a ? 'a' : 'b', '2026-01-01T00:01:00.000Z'))
          won[second === a ? 'a' : 'b']++;
      }
      assert.equal(won.a + won.b, ids.length);
      assert.deepEqual(a.jobs.countByStatus(), [{ status: 'running', n: 40 }]);
    } finally {
      a.close();
      b.close();
    }
  });

  it('a claim does not wait for a row another transaction holds (SKIP LOCKED)', () => {
    const url = freshDb();
    const a = openPostgresCatalog(url);
    const holder = new PostgresDb(url);
    try {
      const id = a.jobs.insert({ ...job, vm: 'web01' })!;
      holder.exec('BEGIN');
      holder.get('SELECT id FROM jobs WHERE id = ? FOR UPDATE', [id]);
      assert.equal(a.jobs.claim(id, 1, job.now, 'a', '2026-01-01T00:01:00.000Z'), false, 'skipped, not blocked');
      holder.exec('ROLLBACK');
      assert.equal(a.jobs.claim(id, 1, job.now, 'a', '2026-01-01T00:01:00.000Z'), true);
    } finally {
      holder.close();
      a.close();
    }
  });

  it('PostgreSQL restarted: the query in flight fails CATALOG_UNAVAILABLE, the next one reconnects', () => {
    const url = freshDb();
    const c = openPostgresCatalog(url);
    try {
      c.jobs.insert({ ...job, vm: 'web01' });
      pg!.restart();
      assert.throws(
        () => c.jobs.list({ limit: 5 }),
        (e: CofferError) => e.code === 'CATALOG_UNAVAILABLE' && !/\/\/coffer:[^*]/.test(e.message),
      );
      assert.equal(c.jobs.list({ limit: 5 }).length, 1, 'reconnected, data kept');
    } finally {
      c.close();
    }
  });

  it('an unreachable catalog is CATALOG_UNAVAILABLE with the password hidden', () => {
    assert.throws(
      () => openPostgresCatalog('postgres://coffer:secret@127.0.0.1:1/nothing'),
      (e: CofferError) =>
        e.code === 'CATALOG_UNAVAILABLE' && !e.message.includes('secret') && e.message.includes('coffer:***@'),
    );
  });
});
