#!/usr/bin/env node
// Writes test/golden/catalog-v1.db: a server catalog (schema version 1) written by the code of the release before the
// catalog was split into per-table modules, kept forever so that every later Coffer is tested on opening it
// (src/server/catalog/catalog.test.ts). Usage: node test/golden/make-catalog-v1.mjs OLD_BUILD/dist/server
// (OLD_BUILD: a checkout of commit 59b1a17 or earlier, built). Golden files are never regenerated.
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const out = resolve('test/golden/catalog-v1.db');
if (existsSync(out)) throw new Error(`${out} exists; golden files are never regenerated`);
const old = resolve(process.argv[2] ?? '');
const { openCatalog, audit } = await import(join(old, 'catalog.js'));
const { createToken, createUser } = await import(join(old, 'auth.js'));
const { PolicyStore } = await import(join(old, 'policy-store.js'));
const { JobRunner } = await import(join(old, 'jobs.js'));

const dir = mkdtempSync(join(tmpdir(), 'coffer-catalog-golden-'));
const db = openCatalog(dir);
await createUser(db, 'alice', 'golden password', 'operator', 'cli:user-add');
createToken(db, { role: 'viewer', name: 'golden-token', createdBy: 'cli:token-create' });
const policy = new PolicyStore(db).create({ name: 'nightly', description: '', enabled: true, repository: 'main', vms: [{ name: 'web01' }], schedule: '0 2 * * *', rpoHours: 24, retention: { keepLast: 3 }, pruneAfterForget: false, tags: ['golden'] });
const quiet = { info() {}, warn() {}, debug() {} };
const runner = new JobRunner(db, { retries: { maxAttempts: 3, backoffSeconds: 30 }, limits: { total: 0, perRepository: 1, perSource: 1 } }, {}, {}, quiet);
const job = runner.enqueue({ kind: 'backup', repository: 'main', vm: 'web01', policyId: policy.id, params: { disks: ['/d/web01.raw'], tags: ['golden'] }, trigger: 'schedule', requestedBy: 'schedule:nightly' });
db.prepare("UPDATE jobs SET status = 'succeeded', started_at = '2026-01-02T03:00:00.000Z', finished_at = '2026-01-02T03:01:00.000Z', attempt = 1, result = ? WHERE id = ?").run(JSON.stringify({ id: 'a1b2c3' }), job.id);
runner.enqueue({ kind: 'verify', repository: 'main', params: { readDataPercent: 10 }, requestedBy: 'user:alice' });
db.prepare(
  `INSERT INTO restore_points(repository, id, vm, time, end_time, mode, parent, tags, disks, bytes_read, bytes_stored, verified)
   VALUES ('main', 'a1b2c3', 'web01', '2026-01-02T03:00:05.000Z', '2026-01-02T03:00:55.000Z', 'full', NULL, '["golden"]', ?, 1048576, 524288, ?)`,
).run(JSON.stringify([{ index: 0, sizeBytes: 1048576, chunkCount: 1, zeroChunks: 0, source: '/d/web01.raw' }]), JSON.stringify({ time: '2026-01-03T00:00:00.000Z', ok: true }));
db.prepare("INSERT INTO repo_stats(repository, stored_bytes, chunk_bytes, logical_bytes, chunks, points, updated_at, error) VALUES ('main', 600000, 524288, 1048576, 1, 1, '2026-01-02T03:01:00.000Z', NULL)").run();
db.prepare("INSERT INTO sla_state(vm, breached, since) VALUES ('web01', 0, '2026-01-02T03:01:00.000Z')").run();
audit(db, { actor: 'user:alice', action: 'POST /api/v1/policies', target: '/api/v1/policies', remote: '127.0.0.1', status: 201, details: { policy: policy.id } });
db.pragma('wal_checkpoint(TRUNCATE)');
db.close();
copyFileSync(join(dir, 'catalog.db'), out);
rmSync(dir, { recursive: true, force: true });
console.log(`wrote ${out}`);
